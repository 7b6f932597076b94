"""The seed's walkthrough through the REST API, with ARM-template bodies, against real components.

Two distribution registries, two Azurite accounts over HTTPS with https-only SAS tokens, two
embedded key vaults holding the tokens (with the leading '?', as the docs store them), both
pipelines with system-assigned identities granted 'get', an export run, the copy between the
accounts, the triggered import — and equal digests on both sides.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airlock.api.app import create_app
from airlock.pipelines.trigger import SourceTrigger
from airlock.storage.location import open_blob, parse_blob_uri
from airlock.testing import azurite as az
from airlock.testing import content
from airlock.testing.azurite import AzuriteServer
from airlock.testing.content import PushedArtifact
from airlock.testing.registry_server import RegistryServer
from airlock.testing.samples import push_sample_set
from airlock.transfer.inspection import copy_blob
from airlock.wiring import open_control_plane

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

SUB = "11111111-2222-3333-4444-555555555555"
API = "?api-version=2025-06-01-preview"
TOKEN = "test-token"
H = {"Authorization": f"Bearer {TOKEN}"}


def arm(rg: str, registry: str = "") -> str:
    base = f"/subscriptions/{SUB}/resourceGroups/{rg}/providers"
    return f"{base}/Microsoft.ContainerRegistry/registries/{registry}" if registry else base


@pytest.fixture(scope="module")
def secure_azurite(workdir: Path) -> Iterator[AzuriteServer]:
    with AzuriteServer.start(workdir / "azs", accounts=("sourcesa", "targetsa"), https=True) as server:
        yield server


@pytest.fixture(scope="module")
def ca_bundle(secure_azurite: AzuriteServer) -> Iterator[None]:
    # The Azure SDK trusts Azurite's self-signed certificate through REQUESTS_CA_BUNDLE, as in real use.
    mp = pytest.MonkeyPatch()
    assert secure_azurite.ca_cert is not None
    mp.setenv("REQUESTS_CA_BUNDLE", str(secure_azurite.ca_cert))
    mp.setenv("AIRLOCK_STORAGE_HOSTS", secure_azurite.storage_host)  # the plane may send its SAS tokens there
    yield
    mp.undo()


@pytest.fixture(scope="module")
def samples(source_registry: RegistryServer) -> list[PushedArtifact]:
    return push_sample_set(source_registry.url, seed=11)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("airlock-home")


@pytest.fixture(scope="module")
def api(home: Path, ca_bundle: None) -> Iterator[TestClient]:
    app = create_app(lambda: open_control_plane(home), token=TOKEN, trigger_interval=None)
    with TestClient(app) as client:
        yield client


def put(api: TestClient, path: str, body: dict[str, Any], expect: tuple[int, ...] = (200, 201)) -> dict[str, Any]:
    r = api.put(path + API, headers=H, json=body)
    assert r.status_code in expect, r.text
    out: dict[str, Any] = r.json()
    return out


def get(api: TestClient, path: str) -> dict[str, Any]:
    r = api.get(path + API, headers=H)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def wait_run(api: TestClient, path: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        doc = get(api, path)
        if doc["properties"]["provisioningState"] in ("Succeeded", "Failed"):
            return doc
        assert time.monotonic() < deadline, f"run {path} still running"
        time.sleep(0.2)


def trigger(api: TestClient) -> SourceTrigger:
    return SourceTrigger(api.app.state.control["plane"], interval=3600)  # type: ignore[attr-defined]


def test_seed_walkthrough_with_arm_template_bodies(
    api: TestClient,
    secure_azurite: AzuriteServer,
    source_registry: RegistryServer,
    target_registry: RegistryServer,
    samples: list[PushedArtifact],
) -> None:
    # Storage: a 'transfer' container in each account; SAS tokens as the docs make them.
    for account in ("sourcesa", "targetsa"):
        az.create_container(secure_azurite, account, "transfer")
    export_sas = "?" + az.container_sas(secure_azurite, "sourcesa", "transfer", permissions="alrw", https_only=True)
    import_sas = "?" + az.container_sas(secure_azurite, "targetsa", "transfer", permissions="dlr", https_only=True)
    assert "spr=https" in export_sas

    # Registries and vaults (what `az acr create` / `az keyvault create` would have made).
    put(api, arm("sourcerg", "sourcereg"), {"location": "westus", "properties": {"loginServer": source_registry.url}})
    put(api, arm("targetrg", "targetreg"), {"location": "westus", "properties": {"loginServer": target_registry.url}})
    src_kv = put(api, arm("sourcerg") + "/Microsoft.KeyVault/vaults/sourcekv", {"location": "westus"})
    tgt_kv = put(api, arm("targetrg") + "/Microsoft.KeyVault/vaults/targetkv", {"location": "westus"})
    assert src_kv["properties"]["vaultUri"] == "https://sourcekv.vault.azure.net/"
    put(
        api,
        arm("sourcerg") + "/Microsoft.KeyVault/vaults/sourcekv/secrets/acrexportsas",
        {"properties": {"value": export_sas}},
    )
    put(
        api,
        arm("targetrg") + "/Microsoft.KeyVault/vaults/targetkv/secrets/acrimportsas",
        {"properties": {"value": import_sas}},
    )

    # The bodies of Azure/acr's ExportPipelines / ImportPipelines azuredeploy.json, as they are.
    export_pipeline = put(
        api,
        arm("sourcerg", "sourcereg") + "/exportPipelines/myExportPipeline",
        {
            "type": "Microsoft.ContainerRegistry/registries/exportPipelines/",
            "name": "sourcereg/myExportPipeline",
            "location": "westus",
            "apiVersion": "2025-06-01-preview",
            "identity": {"type": "SystemAssigned"},
            "properties": {
                "target": {
                    "type": "AzureStorageBlobContainer",
                    "uri": az.container_url(secure_azurite, "sourcesa", "transfer"),
                    "keyVaultUri": src_kv["properties"]["vaultUri"] + "secrets/acrexportsas",
                    "storageAccessMode": "SasToken",
                },
                "options": ["OverwriteBlobs", "ContinueOnErrors"],
            },
        },
    )
    import_pipeline = put(
        api,
        arm("targetrg", "targetreg") + "/importPipelines/myImportPipeline",
        {
            "type": "Microsoft.ContainerRegistry/registries/importPipelines/",
            "name": "targetreg/myImportPipeline",
            "location": "westus",
            "apiVersion": "2025-06-01-preview",
            "identity": {"type": "SystemAssigned"},
            "properties": {
                "source": {
                    "type": "AzureStorageBlobContainer",
                    "uri": az.container_url(secure_azurite, "targetsa", "transfer"),
                    "keyVaultUri": tgt_kv["properties"]["vaultUri"] + "secrets/acrimportsas",
                    "storageAccessMode": "SasToken",
                },
                "trigger": {"sourceTrigger": {"status": "Enabled"}},
                "options": ["OverwriteTags", "DeleteSourceBlobOnSuccess", "ContinueOnErrors"],
            },
        },
    )
    assert (
        export_pipeline["identity"]["principalId"] and import_pipeline["properties"]["provisioningState"] == "Succeeded"
    )

    # The template's accessPolicies resource: 'get' for each pipeline's system-assigned identity.
    for rg, kv, pipeline in (("sourcerg", "sourcekv", export_pipeline), ("targetrg", "targetkv", import_pipeline)):
        put(
            api,
            arm(rg) + f"/Microsoft.KeyVault/vaults/{kv}/accessPolicies/add",
            {
                "properties": {
                    "accessPolicies": [
                        {
                            "tenantId": pipeline["identity"]["tenantId"],
                            "objectId": pipeline["identity"]["principalId"],
                            "permissions": {"secrets": ["get"]},
                        }
                    ]
                }
            },
        )

    # PipelineRun-Export template body.
    run_path = arm("sourcerg", "sourcereg") + "/pipelineRuns/myExportRun"
    r = api.put(
        run_path + API,
        headers=H,
        json={
            "type": "Microsoft.ContainerRegistry/registries/pipelineRuns/",
            "apiVersion": "2025-06-01-preview",
            "properties": {
                "request": {
                    "pipelineResourceId": export_pipeline["id"],
                    "artifacts": [a.reference for a in samples if a.tag],
                    "source": {"type": "", "name": ""},
                    "target": {"type": "AzureStorageBlob", "name": "myblob"},
                    "catalogDigest": "",
                },
                "forceUpdateTag": "",
            },
        },
    )
    assert r.status_code == 201, r.text
    assert r.headers["Azure-AsyncOperation"].startswith("http")
    run = wait_run(api, run_path)
    assert run["properties"]["provisioningState"] == "Succeeded", run["properties"]["response"]
    response = run["properties"]["response"]
    assert response["target"]["uri"].endswith("/sourcesa/transfer/myblob")
    assert response["progress"]["percentage"] == "100" and response["startTime"] and response["finishTime"]
    op = api.get(r.headers["Azure-AsyncOperation"].split("testserver", 1)[-1], headers=H).json()
    assert op["status"] == "Succeeded"

    # Copy source account → target account (the user's own means; here airlock's copy).
    src_blob = open_blob(parse_blob_uri(response["target"]["uri"]), sas_token=export_sas[1:])
    dst_blob = open_blob(
        parse_blob_uri(az.container_url(secure_azurite, "targetsa", "transfer") + "/myblob"),
        sas_token=az.container_sas(secure_azurite, "targetsa", "transfer", permissions="racwdl"),
    )
    copied = copy_blob(src_blob, dst_blob)
    assert copied["catalogDigest"] == response["catalogDigest"]

    # The source trigger picks the blob up and imports it; DeleteSourceBlobOnSuccess removes it.
    started = trigger(api).poll()
    assert len(started) == 1 and "_" in started[0].rsplit("/", 1)[-1]
    imported = wait_run(
        api, started[0].split("/subscriptions/", 1)[0] + "/subscriptions/" + started[0].split("/subscriptions/", 1)[1]
    )
    props = imported["properties"]
    assert props["provisioningState"] == "Succeeded", props["response"]
    assert props["response"]["trigger"]["sourceTrigger"]["timestamp"]
    assert props["response"]["catalogDigest"] == response["catalogDigest"]
    assert sorted(props["response"]["importedArtifacts"]) == sorted(a.reference for a in samples if a.tag)
    assert az.list_blob_names(secure_azurite, "targetsa", "transfer") == []
    for artifact in samples:
        if artifact.tag:
            assert content.get_manifest(target_registry.url, artifact.repository, artifact.tag)[2] == artifact.digest
    assert trigger(api).poll() == []  # imported once, never again

    # Runs list, identical PUT is a no-op, a new forceUpdateTag runs it again.
    runs = get(api, arm("sourcerg", "sourcereg") + "/pipelineRuns")["value"]
    assert [x["name"] for x in runs] == ["myExportRun"]
    same = api.put(
        run_path + API,
        headers=H,
        json={
            "properties": {
                "request": {
                    "pipelineResourceId": export_pipeline["id"],
                    "artifacts": [a.reference for a in samples if a.tag],
                    "target": {"name": "myblob"},
                },
                "forceUpdateTag": "",
            }
        },
    )
    assert same.status_code == 200 and same.json()["properties"]["response"]["finishTime"] == response["finishTime"]


def test_identity_without_get_permission_fails_the_run_with_names(
    api: TestClient, secure_azurite: AzuriteServer, source_registry: RegistryServer, samples: list[PushedArtifact]
) -> None:
    put(api, arm("deniedrg", "deniedreg"), {"properties": {"loginServer": source_registry.url}})
    put(api, arm("deniedrg") + "/Microsoft.KeyVault/vaults/deniedkv", {})
    az.create_container(secure_azurite, "sourcesa", "denied")
    sas = az.container_sas(secure_azurite, "sourcesa", "denied", permissions="alrw")
    put(api, arm("deniedrg") + "/Microsoft.KeyVault/vaults/deniedkv/secrets/sas", {"properties": {"value": sas}})
    pipeline = put(
        api,
        arm("deniedrg", "deniedreg") + "/exportPipelines/noaccess",
        {
            "properties": {
                "target": {
                    "uri": az.container_url(secure_azurite, "sourcesa", "denied"),
                    "keyVaultUri": "https://deniedkv.vault.azure.net/secrets/sas",
                }
            }
        },
    )
    path = arm("deniedrg", "deniedreg") + "/pipelineRuns/deniedrun"
    put(
        api,
        path,
        {
            "properties": {
                "request": {
                    "pipelineResourceId": pipeline["id"],
                    "artifacts": ["charts/mychart:0.1.0"],
                    "target": {"name": "x.tar"},
                }
            }
        },
    )
    run = wait_run(api, path)
    message = run["properties"]["response"]["pipelineRunErrorMessage"]
    assert run["properties"]["provisioningState"] == "Failed"
    for needle in ("deniedkv", "'sas'", pipeline["identity"]["principalId"], "'get'"):
        assert needle in message
    assert sas.split("sig=")[1][:10] not in message


@pytest.mark.parametrize(
    ("path_suffix", "body", "status", "needle"),
    [
        ("/exportPipelines/abc", {"properties": {"target": {"uri": "file:///tmp/x"}}}, 400, "5 to 50"),
        ("/exportPipelines/with-dash", {"properties": {"target": {"uri": "file:///tmp/x"}}}, 400, "5 to 50"),
        ("/exportPipelines/pipeline1", {"properties": {"target": {"uri": "file:///tmp/x"}, "bogus": 1}}, 400, "bogus"),
        ("/exportPipelines/pipeline1", {"properties": {"target": {"uri": 5}}}, 400, "target.uri"),
        (
            "/exportPipelines/pipeline1",
            {"properties": {"target": {"uri": "file:///tmp/x"}, "options": ["Nope"]}},
            400,
            "options",
        ),
        (
            "/exportPipelines/pipeline1",
            {"properties": {"target": {"uri": "https://a.blob.core.windows.net/c0ntainer"}}},
            400,
            "keyVaultUri",
        ),
        (
            "/importPipelines/pipeline2",
            {"properties": {"source": {"uri": "file:///tmp/x"}, "trigger": {"sourceTrigger": {"status": "Maybe"}}}},
            400,
            "status",
        ),
        ("/pipelineRuns/runnumber1", {"properties": {"request": {"pipelineResourceId": "/nope"}}}, 404, "not found"),
    ],
    ids=[
        "short-name",
        "dash",
        "unknown-field",
        "wrong-type",
        "bad-option",
        "sas-without-vault",
        "bad-trigger",
        "missing-pipeline",
    ],
)
def test_bad_requests_get_arm_error_envelopes(
    api: TestClient, source_registry: RegistryServer, path_suffix: str, body: dict[str, Any], status: int, needle: str
) -> None:
    put(api, arm("badrg", "badregistry"), {"properties": {"loginServer": source_registry.url}})
    r = api.put(arm("badrg", "badregistry") + path_suffix + API, headers=H, json=body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"code", "message", "additionalInfo"} and needle in err["message"]
    # The error's class rides along (ARM's additionalInfo), for the CLI to raise the same one.
    expected = "ResourceNotFound" if status == 404 else "UsageError"
    assert err["additionalInfo"] == [{"type": "AirlockError", "info": {"class": expected}}]


def test_run_limits_and_export_policy(api: TestClient, source_registry: RegistryServer, tmp_path: Path) -> None:
    put(api, arm("limitrg", "limitreg"), {"properties": {"loginServer": source_registry.url}})
    pipeline = put(
        api,
        arm("limitrg", "limitreg") + "/exportPipelines/limited",
        {"properties": {"target": {"uri": tmp_path.as_uri()}}},
    )
    r = api.put(
        arm("limitrg", "limitreg") + "/pipelineRuns/toomany" + API,
        headers=H,
        json={
            "properties": {
                "request": {
                    "pipelineResourceId": pipeline["id"],
                    "artifacts": [f"repo:t{i}" for i in range(51)],
                    "target": {"name": "b"},
                }
            }
        },
    )
    assert r.status_code == 400 and "artifacts" in r.json()["error"]["message"]
    r = api.put(
        arm("limitrg", "limitreg") + API,
        headers=H,
        json={"properties": {"loginServer": source_registry.url, "exportPolicy": {"status": "disabled"}}},
    )
    assert r.status_code == 409 and "export pipelines" in r.json()["error"]["message"]
    put(
        api,
        arm("policyrg", "policyreg"),
        {"properties": {"loginServer": source_registry.url, "exportPolicy": {"status": "disabled"}}},
    )
    r = api.put(
        arm("policyrg", "policyreg") + "/exportPipelines/blocked" + API,
        headers=H,
        json={"properties": {"target": {"uri": tmp_path.as_uri()}}},
    )
    assert r.status_code == 409 and "exportPolicy" in r.json()["error"]["message"]


def test_anonymous_calls_are_refused(api: TestClient) -> None:
    r = api.get(arm("anyrg", "anyreg") + API)
    assert r.status_code == 401 and r.json()["error"]["code"] == "AuthenticationFailed"
    r = api.get(arm("anyrg", "anyreg") + API, headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401
    assert api.get("/healthz").status_code == 200
    assert api.get("/openapi.json").status_code == 200


def test_list_pagination_with_next_link(api: TestClient) -> None:
    for i in range(5):
        put(api, arm("pagerg") + f"/Microsoft.ManagedIdentity/userAssignedIdentities/id{i}", {})
    first = api.get(
        arm("pagerg") + "/Microsoft.ManagedIdentity/userAssignedIdentities" + API + "&$top=2", headers=H
    ).json()
    names = [x["name"] for x in first["value"]]
    link = first["nextLink"]
    while link:
        page = api.get(link.split("testserver", 1)[-1], headers=H).json()
        names += [x["name"] for x in page["value"]]
        link = page.get("nextLink")
    assert names == [f"id{i}" for i in range(5)]
