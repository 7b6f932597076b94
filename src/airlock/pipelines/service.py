"""The control plane: registries, identities, key vaults, export/import pipelines and pipeline runs.

Everything the REST API and the CLI do goes through :class:`ControlPlane`, whose methods take and
return ARM documents (dicts) and raise :mod:`airlock.errors` exceptions — never HTTP statuses.
Runs are handed to a :class:`~airlock.pipelines.executor.RunExecutor` (a thread pool of this process by
default) and execute as :mod:`airlock.pipelines.execution` says; their state is persisted, so a restart
finds them (see :meth:`ControlPlane.recover`).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import uuid
from collections.abc import Callable
from typing import Any

from airlock.errors import AccessDenied, ResourceConflict, ResourceNotFound, UsageError
from airlock.oci.digest import Digest
from airlock.oci.reference import RegistryURL
from airlock.pipelines import resources as R
from airlock.pipelines import vaults as V
from airlock.pipelines.execution import RunExecution, now_iso, parent_of, rg_of, run_artifact
from airlock.pipelines.executor import RunExecutor, RunHandler, ThreadRunExecutor
from airlock.pipelines.store import HEARTBEAT, ResourceStore, process_alive, process_token
from airlock.pipelines.trust import check_unprivileged_change
from airlock.registry.client import RegistryClient
from airlock.registry.credentials import Credentials
from airlock.secrets.base import Principal
from airlock.secrets.embedded import EmbeddedVaults, SecretVersion, Vault
from airlock.secrets.resolver import SecretResolver
from airlock.storage.hosts import StorageHosts
from airlock.storage.location import parse_container_uri
from airlock.transfer.options import EXPORT_OPTIONS, IMPORT_OPTIONS, PipelineOption

log = logging.getLogger(__name__)

TERMINAL = ("Succeeded", "Failed", "Canceled")
_INTERRUPTED_MESSAGE = (
    "the run was interrupted: the airlock process running it stopped before it finished; nothing was "
    "tagged for unverified content. Run it again with a new forceUpdateTag"
)


class ControlPlane(RunExecution):
    """ACR transfer resources and their execution. Thread-safe.

    Args:
        store: persistence of resource documents.
        vaults: the embedded key vaults.
        secrets: reads secret URIs (embedded vault first, then Azure Key Vault, Vault/OpenBao).
        storage_credential: the Azure ``TokenCredential`` a principal uses for storage in the
            ManagedIdentity access mode (None: the environment's identity).
        tenant_id: the tenant of identities created here.
        workers: runs executed at once (by the default executor).
        executor: builds where runs execute from the handler it calls (default: a thread pool of
            this process, ``workers`` wide).
        registry_client: builds the client for a registry URL and credentials (tests inject retry policies).
        storage_hosts: the storage endpoints a pipeline's credential may be sent to (default: Azure
            Blob Storage over https only; :func:`airlock.wiring.open_control_plane` adds
            ``AIRLOCK_STORAGE_HOSTS``).
    """

    def __init__(
        self,
        *,
        store: ResourceStore,
        vaults: EmbeddedVaults,
        secrets: SecretResolver,
        storage_credential: Callable[[Principal], object | None],
        tenant_id: str,
        workers: int = 2,
        registry_client: Callable[[RegistryURL, Credentials | None], RegistryClient] | None = None,
        executor: Callable[[RunHandler], RunExecutor] | None = None,
        storage_hosts: StorageHosts | None = None,
    ) -> None:
        self.store = store
        self.storage_hosts = storage_hosts or StorageHosts()
        self.vaults = vaults
        self.secrets = secrets
        self.storage_credential = storage_credential
        self.tenant_id = tenant_id
        make = executor or (lambda handler: ThreadRunExecutor(handler, workers))
        self._executor: RunExecutor = make(self.execute)
        self._lock = threading.RLock()
        self._registry_client = registry_client or (lambda url, creds: RegistryClient(url, credentials=creds))
        self._owner = process_token()
        self._stop = threading.Event()
        self._heartbeat = threading.Thread(target=self._beat, name="run-heartbeat", daemon=True)
        self._heartbeat.start()

    def close(self, *, wait: bool = True) -> None:
        self._executor.close(wait=wait)
        self._stop.set()

    def _beat(self) -> None:
        """Refresh the runs this process executes, so other machines see their owner is alive."""
        while not self._stop.wait(HEARTBEAT):
            mine = self._executor.running()
            try:
                self.store.touch(mine)
            except Exception:  # a missed beat is retried; the lease is ten beats long
                log.warning("could not refresh the heartbeat of %d run(s)", len(mine), exc_info=True)

    # ------------------------------------------------------------------------------ registries

    def put_registry(self, sub: str, rg: str, name: str, body: Any) -> tuple[dict[str, Any], bool]:
        """Create or replace a registry. Raises UsageError (nothing stored), ResourceConflict."""
        R.check_subscription(sub)
        R.check_resource_group(rg)
        R.check_name(name, "registry")
        model = R.parse(R.RegistryBody, body, f"registry {name}")
        props = model.properties.model_dump(by_alias=True, exclude_none=True)
        RegistryURL.parse(model.properties.login_server)  # fail now, not at the first run
        policy = (model.properties.export_policy or {}).get("status", "enabled").lower()
        if policy not in ("enabled", "disabled"):
            raise UsageError(f"registry {name}: exportPolicy.status must be enabled or disabled")
        rid = R.resource_id(sub, rg, R.REGISTRY_TYPE, name)
        existing = self.store.get(rid)
        if policy == "disabled" and self.list_pipelines(sub, rg, name, "exportPipelines"):
            raise ResourceConflict(
                f"registry {name}: exportPolicy cannot be disabled while export pipelines exist; delete them first"
            )
        props["exportPolicy"] = {"status": policy}
        props["provisioningState"] = "Succeeded"
        doc = {
            "id": rid,
            "name": name,
            "type": R.REGISTRY_TYPE,
            "location": model.location or "local",
            "sku": R.registry_sku(getattr(model, "sku", None), name),
            "properties": props,
        }
        if model.tags is not None:
            doc["tags"] = model.tags
        self.store.put(rid, doc, type_=R.REGISTRY_TYPE, resource_group=rg)
        return doc, existing is None

    def get(self, rid: str, what: str) -> dict[str, Any]:
        doc = self.store.get(rid)
        if doc is None:
            raise ResourceNotFound(f"{what} {rid.rsplit('/', 1)[-1]} not found ({rid})")
        return doc

    def delete_registry(self, sub: str, rg: str, name: str) -> bool:
        with self._lock:  # no put_run under this registry between the check and the deletes
            return self._delete_registry(sub, rg, name)

    def _delete_registry(self, sub: str, rg: str, name: str) -> bool:
        rid = R.resource_id(sub, rg, R.REGISTRY_TYPE, name)
        children = list(self.store.children(rid))
        for child in children:
            if self._running_elsewhere_or_here(child):
                raise ResourceConflict(
                    f"registry {name} has a running pipeline run; delete it when the run has finished"
                )
        for child in children:
            self.store.delete(child)
        return self.store.delete(rid)

    # ------------------------------------------------------------------------------ identities

    def put_identity(self, sub: str, rg: str, name: str, body: Any) -> tuple[dict[str, Any], bool]:
        """Create a user-assigned identity (an existing one is returned as it is).

        Raises:
            UsageError: an invalid id part or body (nothing is stored then).
        """
        R.check_subscription(sub)
        R.check_resource_group(rg)
        R.check_generic_name(name, "identity")
        model: R.IdentityBody = R.parse(R.IdentityBody, body, f"identity {name}")
        # An existing Azure managed identity can be registered by its ids (properties.clientId and
        # principalId), so the ManagedIdentity storage mode authenticates as that real identity.
        given = model.properties or R.IdentityProperties()
        client_id = R.check_guid(given.client_id, f"identity {name}: properties.clientId")
        principal_id = R.check_guid(given.principal_id, f"identity {name}: properties.principalId")
        tenant_id = R.check_guid(given.tenant_id, f"identity {name}: properties.tenantId")
        rid = R.resource_id(sub, rg, R.IDENTITY_TYPE, name)
        existing = self.store.get(rid)
        if existing is not None:
            return existing, False
        doc = {
            "id": rid,
            "name": name,
            "type": R.IDENTITY_TYPE,
            "location": model.location or "local",
            "properties": {
                "principalId": principal_id or str(uuid.uuid4()),
                "clientId": client_id or str(uuid.uuid4()),
                "tenantId": tenant_id or self.tenant_id,
            },
        }

        self.store.put(rid, doc, type_=R.IDENTITY_TYPE, resource_group=rg)
        return doc, True

    # ------------------------------------------------------------------------------ key vaults

    def vault_doc(self, sub: str, vault: Vault) -> dict[str, Any]:
        return V.vault_doc(sub, vault)

    def put_vault(self, sub: str, rg: str, name: str, body: Any) -> tuple[dict[str, Any], bool]:
        """Create a vault (or keep it); see :func:`airlock.pipelines.vaults.put_vault`."""
        return V.put_vault(self.vaults, sub, rg, name, body, self.tenant_id)

    def set_policies(self, sub: str, vault: str, operation: str, body: Any) -> dict[str, Any]:
        """Apply an ``accessPolicies/{operation}`` body; returns the vault's document.

        See :func:`airlock.pipelines.vaults.set_policies`."""
        return V.vault_doc(sub, V.set_policies(self.vaults, sub, vault, operation, body, self.tenant_id))

    def set_secret(self, sub: str, vault: str, name: str, body: Any) -> SecretVersion:
        """Store a secret from its ARM body; see :func:`airlock.pipelines.vaults.set_secret`."""
        return V.set_secret(self.vaults, sub, vault, name, body)

    # ------------------------------------------------------------------------------ pipelines

    def put_pipeline(
        self, sub: str, rg: str, registry: str, kind: str, name: str, body: Any, *, privileged: bool = True
    ) -> tuple[dict[str, Any], bool]:
        """Create or replace an exportPipelines/importPipelines resource.

        Unprivileged callers (API roles below Owner) may not use local ``file:`` containers (they would
        reach the server's own files), attach user-assigned identities (ACR requires a separate
        ``assign`` permission for that), nor change an existing pipeline's storage ``uri`` or
        ``keyVaultUri`` (its identity would send its credential there: :mod:`airlock.pipelines.trust`);
        these raise AccessDenied. Storage outside :attr:`storage_hosts` is refused for everyone (UsageError).
        """
        R.check_subscription(sub)
        R.check_resource_group(rg)
        ref = R.RegistryRef(sub, rg, registry)
        reg = self.get(ref.id, "registry")
        what = "export pipeline" if kind == "exportPipelines" else "import pipeline"
        R.check_name(name, what)
        model = R.parse(R.PipelineBody, body, f"{what} {name}")
        if kind == "exportPipelines":
            props = R.parse(R.ExportPipelineProperties, model.properties, f"{what} {name}")
            storage: R.StorageModel = props.target
            if (reg["properties"].get("exportPolicy") or {}).get("status") == "disabled":
                raise ResourceConflict(
                    f"registry {registry} has exportPolicy disabled: export pipelines cannot be created"
                )
            allowed = EXPORT_OPTIONS
        else:
            props = R.parse(R.ImportPipelineProperties, model.properties, f"{what} {name}")
            storage = props.source
            allowed = IMPORT_OPTIONS
        container = parse_container_uri(storage.uri)
        if not privileged and container.kind == "file":
            raise AccessDenied(f"{what} {name}: only an Owner may use a local file: container")
        if not privileged and "UserAssigned" in model.identity.type:
            raise AccessDenied(f"{what} {name}: only an Owner may assign a user-assigned identity to a pipeline")
        if storage.storage_access_mode == "SasToken" and container.kind == "azure" and not storage.key_vault_uri:
            raise UsageError(
                f"{what} {name}: keyVaultUri (the secret holding the SAS token) is required in SasToken mode"
            )
        ignored = [o for o in props.options if PipelineOption(o) not in allowed]
        rid = ref.child(kind, name)
        existing = self.store.get(rid)
        out_storage = storage.model_dump(by_alias=True)
        if container.kind == "file" and container.path is not None:
            out_storage["uri"] = container.path.as_uri()  # a plain path is stored as its file:// URI
        if storage.storage_access_mode == "ManagedIdentity":
            out_storage["keyVaultUri"] = None  # ACR: "keyVaultUri null is expected" in this mode
        side = "target" if kind == "exportPipelines" else "source"
        if not privileged:
            check_unprivileged_change(existing, side, out_storage, f"{what} {name}")
            secret_uri = out_storage.get("keyVaultUri")
            if secret_uri and existing is None and self.secrets.store_for(secret_uri) is not self.vaults:
                # Only the embedded vault checks each pipeline identity's own access policy; Azure Key
                # Vault and Vault/OpenBao are read with the server's own credential, which a new
                # pipeline of a non-Owner must not be able to aim at any secret it likes.
                raise AccessDenied(
                    f"{what} {name}: only an Owner may name a secret outside airlock's embedded key vaults "
                    f"(properties.{side}.keyVaultUri): the server reads Azure Key Vault and Vault/OpenBao with "
                    "its own credential"
                )
        if container.kind == "azure":  # a SAS or the server's identity will go there
            self.storage_hosts.check(storage.uri, f"{what} {name}")
        identity = self._identity(sub, model.identity, existing)
        properties: dict[str, Any] = {
            side: out_storage,
            "options": list(dict.fromkeys(props.options)),
            "provisioningState": "Succeeded",
        }
        if kind == "importPipelines":
            properties["trigger"] = {"sourceTrigger": {"status": props.trigger.source_trigger.status}}
            if existing:
                properties["sourceTriggerReport"] = existing["properties"].get("sourceTriggerReport")
        if ignored:
            properties["warnings"] = [f"option {o} has no effect on an {what}" for o in ignored]
        doc = {
            "id": rid,
            "name": name,
            "type": R.EXPORT_TYPE if kind == "exportPipelines" else R.IMPORT_TYPE,
            "location": model.location or reg.get("location", "local"),
            "identity": identity,
            "properties": properties,
        }
        self.store.put(rid, doc, type_=doc["type"], resource_group=rg, parent=ref.id)
        return doc, existing is None

    def _identity(self, sub: str, model: R.IdentityModel, existing: dict[str, Any] | None) -> dict[str, Any]:
        if model.type == "None":
            raise UsageError("a pipeline needs an identity (SystemAssigned or UserAssigned) to read its secrets")
        out: dict[str, Any] = {"type": model.type}
        if "SystemAssigned" in model.type:
            old = (existing or {}).get("identity") or {}
            out["principalId"] = old.get("principalId") or str(uuid.uuid4())
            out["tenantId"] = self.tenant_id
        if "UserAssigned" in model.type:
            uais = model.user_assigned_identities or {}
            if len(uais) != 1:
                raise UsageError("a UserAssigned pipeline identity needs exactly one entry in userAssignedIdentities")
            out["userAssignedIdentities"] = {}
            for uai_id in uais:
                uai = self.store.get(uai_id)
                if uai is not None and (
                    uai.get("type") != R.IDENTITY_TYPE
                    or not uai_id.lower().startswith(f"/subscriptions/{sub.lower()}/")
                ):
                    # Another kind of resource (a registry, say), or an identity of another subscription,
                    # whose pipelines delete_identity would not see.
                    raise UsageError(
                        f"userAssignedIdentities: {uai_id} is not a user-assigned identity of subscription {sub}"
                    )
                if uai is None:
                    raise ResourceNotFound(
                        f"user-assigned identity {uai_id.rsplit('/', 1)[-1]} not found ({uai_id}); "
                        "create it with: airlock identity create -g <rg> -n <name>"
                    )
                out["userAssignedIdentities"][uai["id"]] = {
                    "principalId": uai["properties"]["principalId"],
                    "clientId": uai["properties"]["clientId"],
                }
            if "SystemAssigned" not in model.type:
                out["principalId"] = None
                out["tenantId"] = None
        return out

    def principal_of(self, pipeline: dict[str, Any]) -> Principal:
        ident = pipeline.get("identity") or {}
        uais = ident.get("userAssignedIdentities") or {}
        if uais:
            rid, props = next(iter(uais.items()))
            return Principal(props["principalId"], self.tenant_id, props.get("clientId", ""), rid)
        return Principal(ident["principalId"], self.tenant_id)

    def set_trigger_report(self, pipeline_id: str, report: dict[str, Any]) -> None:
        """Record on an import pipeline what its source trigger passed over, and why."""
        with self._lock:
            current = self.store.get(pipeline_id)
            if current is None:
                return
            current["properties"]["sourceTriggerReport"] = report
            self.store.put(
                pipeline_id,
                current,
                type_=R.IMPORT_TYPE,
                resource_group=rg_of(pipeline_id),
                parent=parent_of(pipeline_id),
            )

    def list_pipelines(self, sub: str, rg: str, registry: str, kind: str) -> list[dict[str, Any]]:
        ref = R.RegistryRef(sub, rg, registry)
        type_ = R.EXPORT_TYPE if kind == "exportPipelines" else R.IMPORT_TYPE
        return self.store.find(type_, parent=ref.id)

    # ------------------------------------------------------------------------------ runs

    def put_run(
        self,
        sub: str,
        rg: str,
        registry: str,
        name: str,
        body: Any,
        *,
        internal: bool = False,
        trigger_timestamp: str | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Create (and start) a pipelineRun; an identical PUT is a no-op, a new forceUpdateTag re-runs it.

        Returns (document, started). Raises UsageError, ResourceNotFound, ResourceConflict.
        """
        ref = R.RegistryRef(sub, rg, registry)
        registry_doc = self.get(ref.id, "registry")
        if not internal:
            R.check_subscription(sub)
            R.check_resource_group(rg)
            R.check_name(name, "pipeline run")
        model = R.parse(R.RunBody, body, f"pipeline run {name}")
        req = model.properties.request
        pipeline = self.store.get(req.pipeline_resource_id)
        if pipeline is None or not req.pipeline_resource_id.lower().startswith(ref.id.lower() + "/"):
            raise ResourceNotFound(
                f"pipeline run {name}: pipeline {req.pipeline_resource_id} not found on registry {registry} "
                f"in resource group {rg}"
            )
        if pipeline["type"] not in (R.EXPORT_TYPE, R.IMPORT_TYPE):
            raise UsageError(
                f"pipeline run {name}: properties.request.pipelineResourceId must name an export or import "
                f"pipeline, not a {pipeline['type'].rsplit('/', 1)[-1]} resource ({req.pipeline_resource_id})"
            )
        is_export = pipeline["type"] == R.EXPORT_TYPE
        request: dict[str, Any] = {"pipelineResourceId": pipeline["id"]}
        if is_export:
            if not req.artifacts:
                raise UsageError(f"pipeline run {name}: artifacts cannot be empty for an export run")
            for a in req.artifacts:
                run_artifact(a, registry_doc)
            if not req.target or not req.target.name:
                raise UsageError(f"pipeline run {name}: request.target.name (the blob to write) is required")
            request["artifacts"] = list(req.artifacts)
            request["target"] = {"type": "AzureStorageBlob", "name": _blob_name(req.target.name)}
        else:
            if not req.source or not req.source.name:
                raise UsageError(f"pipeline run {name}: request.source.name (the blob to import) is required")
            request["source"] = {"type": "AzureStorageBlob", "name": _blob_name(req.source.name)}
            if req.catalog_digest not in (None, *R.PLACEHOLDER_DIGESTS):
                Digest.parse(str(req.catalog_digest))
                request["catalogDigest"] = req.catalog_digest
        rid = ref.child("pipelineRuns", name)
        with self._lock:
            existing = self.store.get(rid)
            tag = model.properties.force_update_tag
            if existing is not None:
                if self._running_elsewhere_or_here(rid) is False:
                    existing = self.store.get(rid)  # a stale Running record was just failed
                same = (
                    existing is not None
                    and existing["properties"]["request"] == request
                    and existing["properties"].get("forceUpdateTag") == tag
                )
                if same and existing is not None:
                    return existing, False
                if self._running_elsewhere_or_here(rid):
                    raise ResourceConflict(f"pipeline run {name} is still running; wait for it before running it again")
            response: dict[str, Any] = {"status": "Running", "progress": {"percentage": "0"}, "startTime": now_iso()}
            if trigger_timestamp:
                response["trigger"] = {"sourceTrigger": {"timestamp": trigger_timestamp}}
            doc = {
                "id": rid,
                "name": name,
                "type": R.RUN_TYPE,
                "properties": {
                    "request": request,
                    "forceUpdateTag": tag,
                    "provisioningState": "Creating",
                    "response": response,
                },
            }
            state = R.run_transition(self.store.state_of(rid)[0], R.RunState.RUNNING, name)
            self.store.put(rid, doc, type_=R.RUN_TYPE, resource_group=rg, parent=ref.id, state=state, owner=self._owner)
            self._executor.submit(rid.lower())
        return doc, True

    def _running_elsewhere_or_here(self, rid: str) -> bool | None:
        """True if the run executes now (here or in a live process), False if its Running record was
        stale (its process died: the run is failed now, saying so), None if it is not Running."""
        state, owner, updated_at = self.store.state_of(rid)
        if state != "Running":
            return None
        if owner == self._owner:
            if self._executor.is_running(rid.lower()):
                return True
        elif process_alive(owner, updated_at):
            return True
        self._finish(rid, error=_INTERRUPTED_MESSAGE, interrupted=True)
        return False

    def wait(self, rid: str, timeout: float | None = None) -> dict[str, Any]:
        """Block until the run is finished (used by local-mode CLI and tests)."""
        self._executor.wait(rid.lower(), timeout)
        return self.get(rid, "pipeline run")

    def delete_pipeline(self, sub: str, rg: str, registry: str, kind: str, name: str) -> bool:
        """Delete an export or import pipeline (its finished runs stay, for the record).

        Raises:
            ResourceConflict: a run of the pipeline is running (named).
        """
        ref = R.RegistryRef(sub, rg, registry)
        pid = ref.child(kind, name).lower()
        with self._lock:
            for run in self.store.find(R.RUN_TYPE, parent=ref.id):
                uses = str(run["properties"]["request"].get("pipelineResourceId", "")).lower() == pid
                if uses and self._running_elsewhere_or_here(run["id"]):
                    raise ResourceConflict(
                        f"pipeline {name} has a running pipeline run, {run['name']}; "
                        "delete it when the run has finished"
                    )
            return self.store.delete(pid)

    def delete_identity(self, sub: str, rg: str, name: str) -> bool:
        """Delete a user-assigned identity.

        Raises:
            ResourceConflict: a pipeline uses it (named): it would be left with no identity.
        """
        iid = R.resource_id(sub, rg, R.IDENTITY_TYPE, name).lower()
        for type_ in (R.EXPORT_TYPE, R.IMPORT_TYPE):
            for pipeline in self.store.find(type_, prefix=f"/subscriptions/{sub}/"):
                assigned = (pipeline.get("identity") or {}).get("userAssignedIdentities") or {}
                if iid in (key.lower() for key in assigned):
                    raise ResourceConflict(
                        f"identity {name} is assigned to pipeline {pipeline['name']} ({pipeline['id']}); "
                        "delete the pipeline or give it another identity first"
                    )
        return self.store.delete(iid)

    def list_registries(self, sub: str, rg: str | None = None) -> list[dict[str, Any]]:
        """Registries of a resource group, or of the whole subscription when ``rg`` is None."""
        scope = f"/subscriptions/{sub}/" + (f"resourceGroups/{rg}/" if rg else "")
        return self.store.find(R.REGISTRY_TYPE, prefix=scope)

    def list_identities(self, sub: str, rg: str) -> list[dict[str, Any]]:
        return self.store.find(R.IDENTITY_TYPE, prefix=f"/subscriptions/{sub}/resourceGroups/{rg}/")

    def list_runs(self, sub: str, rg: str, registry: str) -> list[dict[str, Any]]:
        return self.store.find(R.RUN_TYPE, parent=R.RegistryRef(sub, rg, registry).id)

    def delete_run(self, rid: str) -> bool:
        with self._lock:  # no put_run of the same name between the check and the delete
            if self._running_elsewhere_or_here(rid):
                raise ResourceConflict(
                    f"pipeline run {rid.rsplit('/', 1)[-1]} is running; delete it when it has finished"
                )
            return self.store.delete(rid)

    def recover(self) -> list[str]:
        """After a restart: fail every run left in Running by a process that is gone, saying why.

        Runs owned by a live process (another CLI in local mode, say) are left alone.
        """
        failed = []
        for rid, owner, updated_at in self.store.ids_in_state(R.RUN_TYPE, "Running"):
            if self._executor.is_running(rid) or process_alive(owner, updated_at):
                continue
            self._finish(rid, error=_INTERRUPTED_MESSAGE, interrupted=True)
            failed.append(rid)
        return failed


def _blob_name(name: str) -> str:
    if name.startswith("/") or ".." in name.split("/") or "\\" in name or len(name) > 1024:
        raise UsageError(f"invalid blob name {name!r}")
    return name


def trigger_run_name(pipeline_name: str, blob: str, version: str) -> str:
    """Source-triggered runs have a '_' in their name (ACR's CLI tells them apart that way)."""
    return f"{pipeline_name[:30]}_{hashlib.sha256(f'{blob}|{version}'.encode()).hexdigest()[:16]}"
