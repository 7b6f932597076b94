-- An AIRLOCK_HOME database written by airlock at commit 574e0da (before Alembic): a registry, a
-- vault with one secret, an export pipeline, a failed run and a Reader token. Made with sqlite3 .dump.
BEGIN TRANSACTION;
CREATE TABLE api_tokens (
	name VARCHAR(64) NOT NULL, 
	role VARCHAR(64) NOT NULL, 
	sha256 VARCHAR(64) NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (name), 
	UNIQUE (sha256)
);
INSERT INTO "api_tokens" VALUES('ci','Reader','782bcc0517410169427a4a75f38a9366c460ab5d6d8cb74b66a940cf2a4222b2','2026-12-01 10:03:43.917539');
CREATE TABLE embedded_vault_secrets (
	vault VARCHAR(24) NOT NULL, 
	name VARCHAR(127) NOT NULL, 
	version VARCHAR(32) NOT NULL, 
	ciphertext TEXT NOT NULL, 
	content_type VARCHAR(255), 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (vault, name, version)
);
INSERT INTO "embedded_vault_secrets" VALUES('oldkv','sas','bd9b3de7fbd480db79d61911e5f37109','gAAAAABrDpt2WDjQFXe5F27jJYOXRabsh9XwLdzyr-TZA7Oar3IBjc_WstEfJQficSIk3gQriWQNgtO31k_8q2gejGUakxacfEWPYcT84daFaS_xOmvBdpE=',NULL,'2026-12-01 10:03:34.535208');
CREATE TABLE embedded_vaults (
	name VARCHAR(24) NOT NULL, 
	resource_group VARCHAR(90) NOT NULL, 
	location VARCHAR(64) NOT NULL, 
	tenant_id VARCHAR(36) NOT NULL, 
	policies TEXT NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (name)
);
INSERT INTO "embedded_vaults" VALUES('oldkv','oldrg','local','f6a7df38-6023-4682-a7f0-1fbb042ffd19','[]','2026-12-01 10:03:33.206582');
CREATE TABLE resources (
	id VARCHAR(512) NOT NULL, 
	type VARCHAR(128) NOT NULL, 
	parent VARCHAR(512), 
	name VARCHAR(128) NOT NULL, 
	resource_group VARCHAR(90) NOT NULL, 
	body TEXT NOT NULL, 
	seq INTEGER NOT NULL, 
	state VARCHAR(32), 
	owner VARCHAR(256), 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO "resources" VALUES('/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/oldrg/providers/microsoft.containerregistry/registries/oldreg1','Microsoft.ContainerRegistry/registries',NULL,'oldreg1','oldrg','{"id": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/oldrg/providers/Microsoft.ContainerRegistry/registries/oldreg1", "name": "oldreg1", "type": "Microsoft.ContainerRegistry/registries", "location": "local", "properties": {"loginServer": "http://127.0.0.1:9", "exportPolicy": {"status": "enabled"}, "provisioningState": "Succeeded"}}',1,NULL,NULL,'2026-12-01 10:03:30.913517','2026-12-01 10:03:30.913517');
INSERT INTO "resources" VALUES('/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/oldrg/providers/microsoft.containerregistry/registries/oldreg1/exportpipelines/oldexport','Microsoft.ContainerRegistry/registries/exportPipelines','/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/oldrg/providers/microsoft.containerregistry/registries/oldreg1','oldexport','oldrg','{"id": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/oldrg/providers/Microsoft.ContainerRegistry/registries/oldreg1/exportPipelines/oldexport", "name": "oldexport", "type": "Microsoft.ContainerRegistry/registries/exportPipelines", "location": "local", "identity": {"type": "SystemAssigned", "principalId": "381a5838-664a-42d8-a579-11410175def6", "tenantId": "f6a7df38-6023-4682-a7f0-1fbb042ffd19"}, "properties": {"target": {"type": "AzureStorageBlobContainer", "uri": "file:///tmp/oldhome/outbox", "keyVaultUri": null, "storageAccessMode": "SasToken"}, "options": [], "provisioningState": "Succeeded"}}',2,NULL,NULL,'2026-12-01 10:03:35.462022','2026-12-01 10:03:35.462022');
INSERT INTO "resources" VALUES('/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/oldrg/providers/microsoft.containerregistry/registries/oldreg1/pipelineruns/oldrun1','Microsoft.ContainerRegistry/registries/pipelineRuns','/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/oldrg/providers/microsoft.containerregistry/registries/oldreg1','oldrun1','oldrg','{"id": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/oldrg/providers/Microsoft.ContainerRegistry/registries/oldreg1/pipelineRuns/oldrun1", "name": "oldrun1", "type": "Microsoft.ContainerRegistry/registries/pipelineRuns", "properties": {"request": {"pipelineResourceId": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/oldrg/providers/Microsoft.ContainerRegistry/registries/oldreg1/exportPipelines/oldexport", "artifacts": ["x:1"], "target": {"type": "AzureStorageBlob", "name": "b.tar"}}, "forceUpdateTag": null, "provisioningState": "Failed", "response": {"status": "Failed", "progress": {"percentage": "0"}, "startTime": "2026-12-01T10:03:36.345350Z", "finishTime": "2026-12-01T10:03:42.057367Z", "pipelineRunErrorMessage": "GET http://127.0.0.1:9/v2/: cannot reach the registry (MaxRetryError: HTTPConnection(host=''127.0.0.1'', port=9): Failed to establish a new connection: [Errno 111] Connection refused)"}}}',3,'Failed','vm:14593:341448','2026-12-01 10:03:36.345375','2026-12-01 10:03:42.057393');
CREATE TABLE trigger_imports (
	pipeline_id VARCHAR(512) NOT NULL, 
	blob VARCHAR(1024) NOT NULL, 
	version VARCHAR(256) NOT NULL, 
	run_id VARCHAR(512) NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (pipeline_id, blob, version)
);
CREATE INDEX ix_resources_state ON resources (state);
CREATE INDEX ix_resources_type ON resources (type);
CREATE INDEX ix_resources_parent ON resources (parent);
CREATE INDEX ix_resources_resource_group ON resources (resource_group);
COMMIT;
