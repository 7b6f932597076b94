"""Export and import pipelines: ``registries/{registry}/exportPipelines`` and ``importPipelines``."""

from __future__ import annotations

import builtins
import threading
import uuid
from typing import Any

from airlock.archive.volumes import parse_volume_size
from airlock.errors import AccessDenied, ResourceConflict, ResourceNotFound, UsageError
from airlock.pipelines import resources as R
from airlock.pipelines.models import (
    PIPELINE_KINDS,
    ExportPipeline,
    ImportPipeline,
    PipelineRun,
    Registry,
)
from airlock.pipelines.repository import ResourceRepository
from airlock.pipelines.services.identities import IdentityService
from airlock.pipelines.services.runs import RunService
from airlock.pipelines.signing import signing_properties
from airlock.pipelines.trust import check_unprivileged_change
from airlock.secrets.embedded import EmbeddedVaults
from airlock.secrets.resolver import SecretResolver
from airlock.storage.hosts import StorageHosts
from airlock.storage.location import parse_container_uri
from airlock.transfer.options import EXPORT_OPTIONS, IMPORT_OPTIONS, PipelineOption
from airlock.transfer.rename import RenameMap
from airlock.transfer.signature_policy import SignaturePolicy

Pipeline = ExportPipeline | ImportPipeline


def _what(kind: str) -> str:
    return "export pipeline" if kind == "exportPipelines" else "import pipeline"


class PipelineService:
    """Create, read and delete export and import pipelines. Thread-safe.

    Args:
        repo: the resources.
        identities: the user-assigned identities a pipeline may be given.
        runs: whether a pipeline's run is running (delete is refused then).
        secrets: which secret store a ``keyVaultUri`` names.
        vaults: the embedded vaults (the only ones that check each pipeline's own access policy).
        storage_hosts: where a pipeline's credential may be sent.
        tenant_id: the tenant of system-assigned identities.
        lock: the control plane's lock.
    """

    def __init__(
        self,
        repo: ResourceRepository,
        *,
        identities: IdentityService,
        runs: RunService,
        secrets: SecretResolver,
        vaults: EmbeddedVaults,
        storage_hosts: StorageHosts,
        tenant_id: str,
        lock: threading.RLock,
    ) -> None:
        self._repo = repo
        self._identities = identities
        self._runs = runs
        self._secrets = secrets
        self._vaults = vaults
        self._storage_hosts = storage_hosts
        self._tenant_id = tenant_id
        self._lock = lock

    def put(
        self, sub: str, rg: str, registry: str, kind: str, name: str, body: Any, *, privileged: bool = True
    ) -> tuple[Pipeline, bool]:
        """Create or replace a pipeline of ``kind`` (exportPipelines or importPipelines).

        Unprivileged callers (API roles below Owner) may not use local ``file:`` containers (they would
        reach the server's own files), attach user-assigned identities (ACR requires a separate
        ``assign`` permission for that), use the ManagedIdentity mode with a system-assigned identity
        (the server's own Azure identity), nor change an existing pipeline's storage ``uri`` or
        ``keyVaultUri`` (its identity would send its credential there: :mod:`airlock.pipelines.trust`);
        these raise AccessDenied. Storage outside the storage hosts is refused for everyone (UsageError).

        Raises:
            UsageError, AccessDenied, ResourceNotFound (the registry or an identity),
            ResourceConflict (an export pipeline on a registry whose exportPolicy is disabled).
        """
        R.check_subscription(sub)
        R.check_resource_group(rg)
        ref = R.RegistryRef(sub, rg, registry)
        reg = self._repo.get(ref.id, Registry)
        if reg is None:
            raise ResourceNotFound(f"registry {registry} not found ({ref.id})")
        what = _what(kind)
        R.check_name(name, what)
        model = R.parse(R.PipelineBody, body, f"{what} {name}")
        props: R.ExportPipelineProperties | R.ImportPipelineProperties
        if kind == "exportPipelines":
            export_props: R.ExportPipelineProperties = R.parse(
                R.ExportPipelineProperties, model.properties, f"{what} {name}"
            )
            props, storage = export_props, export_props.target
            if reg.export_disabled:
                raise ResourceConflict(
                    f"registry {registry} has exportPolicy disabled: export pipelines cannot be created"
                )
            allowed = EXPORT_OPTIONS
        else:
            import_props: R.ImportPipelineProperties = R.parse(
                R.ImportPipelineProperties, model.properties, f"{what} {name}"
            )
            props, storage = import_props, import_props.source
            allowed = IMPORT_OPTIONS
        container = parse_container_uri(storage.uri)
        if not privileged and container.kind == "file":
            raise AccessDenied(f"{what} {name}: only an Owner may use a local file: container")
        if not privileged and "UserAssigned" in model.identity.type:
            raise AccessDenied(f"{what} {name}: only an Owner may assign a user-assigned identity to a pipeline")
        if (
            not privileged
            and storage.storage_access_mode == "ManagedIdentity"
            and "UserAssigned" not in model.identity.type
        ):
            # A system-assigned identity authenticates to Azure as the server itself: a non-Owner's
            # pipeline would reach every storage account the server's identity may use.
            raise AccessDenied(
                f"{what} {name}: only an Owner may use the ManagedIdentity access mode with a system-assigned "
                "identity (it authenticates as the airlock server's own Azure identity)"
            )
        if storage.storage_access_mode == "SasToken" and container.kind == "azure" and not storage.key_vault_uri:
            raise UsageError(
                f"{what} {name}: keyVaultUri (the secret holding the SAS token) is required in SasToken mode"
            )
        ignored = [o for o in props.options if PipelineOption(o) not in allowed]
        rid = ref.child(kind, name)
        model_type = PIPELINE_KINDS[kind]
        existing = self._repo.get(rid, model_type)
        out_storage = storage.model_dump(by_alias=True)
        if container.kind == "file" and container.path is not None:
            out_storage["uri"] = container.path.as_uri()  # a plain path is stored as its file:// URI
        if storage.storage_access_mode == "ManagedIdentity":
            out_storage["keyVaultUri"] = None  # ACR: "keyVaultUri null is expected" in this mode
        side = model_type.SIDE
        if not privileged:
            check_unprivileged_change(existing.storage if existing else None, side, out_storage, f"{what} {name}")
            secret_uri = out_storage.get("keyVaultUri")
            if secret_uri and existing is None and self._secrets.store_for(secret_uri) is not self._vaults:
                # Only the embedded vault checks each pipeline identity's own access policy; Azure Key
                # Vault and Vault/OpenBao are read with the server's own credential, which a new
                # pipeline of a non-Owner must not be able to aim at any secret it likes.
                raise AccessDenied(
                    f"{what} {name}: only an Owner may name a secret outside airlock's embedded key vaults "
                    f"(properties.{side}.keyVaultUri): the server reads Azure Key Vault and Vault/OpenBao with "
                    "its own credential"
                )
        if container.kind == "azure":  # a SAS or the server's identity will go there
            self._storage_hosts.check(storage.uri, f"{what} {name}")
        identity = self._identity(sub, model.identity, existing)
        properties: dict[str, Any] = {
            side: out_storage,
            "options": list(dict.fromkeys(props.options)),
            "provisioningState": "Succeeded",
        }
        if isinstance(props, R.ExportPipelineProperties) and props.volume_size is not None:
            parse_volume_size(props.volume_size, what=f"{what} {name}: properties.volumeSize")
            properties["volumeSize"] = props.volume_size
        properties |= signing_properties(
            props, existing, privileged=privileged, where=f"{what} {name}",
            outside_embedded=lambda uri: self._secrets.store_for(uri) is not self._vaults,
        )  # fmt: skip
        if isinstance(props, R.ImportPipelineProperties):
            properties["trigger"] = {"sourceTrigger": {"status": props.trigger.source_trigger.status}}
            if props.rename:
                RenameMap.of(props.rename, where=f"{what} {name} properties.rename")  # malformed: 400 now
                properties["rename"] = props.rename
            policy = (
                props.signature_policy.model_dump(mode="json", by_alias=True, exclude_none=True)
                if props.signature_policy is not None
                else None
            )
            # As for the trusted keys (pipelines.signing): dropping or swapping the policy would let a
            # contributor's runs tag what the Owner required to be signed.
            if (
                not privileged
                and isinstance(existing, ImportPipeline)
                and (policy or None) != (existing.properties.signaturePolicy or None)
            ):
                raise AccessDenied(
                    f"{what} {name}: only an Owner may change properties.signaturePolicy of an existing pipeline"
                )
            if policy is not None:
                SignaturePolicy.from_document(policy, where=f"{what} {name} properties.signaturePolicy")  # 400 now
                properties["signaturePolicy"] = policy
        if ignored:
            properties["warnings"] = [f"option {o} has no effect on an {what}" for o in ignored]
        pipeline = model_type.model_validate(
            {
                "id": rid,
                "name": name,
                "type": model_type.TYPE,
                "location": model.location or reg.location or "local",
                "identity": identity,
                "properties": properties,
            }
        )
        if isinstance(pipeline, ImportPipeline) and existing is not None:
            self._replace_keeping_report(pipeline)
        else:
            self._repo.put(pipeline)
        return pipeline, existing is None

    def _replace_keeping_report(self, pipeline: ImportPipeline) -> None:
        """Write ``pipeline`` over the stored one with the source trigger's report as stored at the moment
        of the write (the row locked meanwhile): a report the trigger wrote after this PUT read the
        pipeline is kept, as :meth:`set_trigger_report` keeps a PUT. Sets the report on ``pipeline``."""

        def change(current: ImportPipeline, state: str | None, owner: str | None) -> tuple[ImportPipeline, str | None]:
            pipeline.properties.sourceTriggerReport = current.properties.sourceTriggerReport
            return pipeline, state

        if not self._repo.modify(pipeline.id, ImportPipeline, change):
            self._repo.put(pipeline)  # deleted since it was read: the PUT creates it again, with no report

    def _identity(self, sub: str, model: R.IdentityModel, existing: Pipeline | None) -> dict[str, Any]:
        if model.type == "None":
            raise UsageError("a pipeline needs an identity (SystemAssigned or UserAssigned) to read its secrets")
        out: dict[str, Any] = {"type": model.type}
        if "SystemAssigned" in model.type:
            old = existing.identity.principalId if existing else None
            out["principalId"] = old or str(uuid.uuid4())
            out["tenantId"] = self._tenant_id
        if "UserAssigned" in model.type:
            uais = model.user_assigned_identities or {}
            if len(uais) != 1:
                raise UsageError("a UserAssigned pipeline identity needs exactly one entry in userAssignedIdentities")
            out["userAssignedIdentities"] = {}
            for uai_id in uais:
                found = self._repo.get_any(uai_id)
                uai = self._identities.by_id(uai_id)
                if (found is not None and uai is None) or (
                    uai is not None and not uai_id.lower().startswith(f"/subscriptions/{sub.lower()}/")
                ):
                    # Another kind of resource (a registry, say), or an identity of another subscription,
                    # whose pipelines an identity's delete would not see.
                    raise UsageError(
                        f"userAssignedIdentities: {uai_id} is not a user-assigned identity of subscription {sub}"
                    )
                if uai is None:
                    raise ResourceNotFound(
                        f"user-assigned identity {uai_id.rsplit('/', 1)[-1]} not found ({uai_id}); "
                        "create it with: airlock identity create -g <rg> -n <name>"
                    )
                out["userAssignedIdentities"][uai.id] = {
                    "principalId": uai.properties.principalId,
                    "clientId": uai.properties.clientId,
                }
            if "SystemAssigned" not in model.type:
                out["principalId"] = None
                out["tenantId"] = None
        return out

    def get(self, sub: str, rg: str, registry: str, kind: str, name: str) -> Pipeline:
        """Raises ResourceNotFound."""
        rid = R.RegistryRef(sub, rg, registry).child(kind, name)
        found = self._repo.get(rid, PIPELINE_KINDS[kind])
        if found is None:
            raise ResourceNotFound(f"{_what(kind)} {name} not found ({rid})")
        return found

    def list(self, sub: str, rg: str, registry: str, kind: str) -> list[Pipeline]:
        """Raises ResourceNotFound: no such registry."""
        ref = R.RegistryRef(sub, rg, registry)
        if self._repo.get(ref.id, Registry) is None:
            raise ResourceNotFound(f"registry {registry} not found ({ref.id})")
        return list(self._repo.find(PIPELINE_KINDS[kind], parent=ref.id))

    def import_pipelines(self) -> builtins.list[ImportPipeline]:
        """Every import pipeline of every subscription (what the source trigger watches)."""
        return self._repo.find(ImportPipeline)

    def delete(self, sub: str, rg: str, registry: str, kind: str, name: str) -> bool:
        """Delete a pipeline (its finished runs stay, for the record).

        Raises:
            ResourceConflict: a run of the pipeline is running (named).
        """
        ref = R.RegistryRef(sub, rg, registry)
        pid = ref.child(kind, name).lower()
        with self._lock:
            for run in self._repo.find(PipelineRun, parent=ref.id):
                uses = run.properties.request.pipelineResourceId.lower() == pid
                if uses and self._runs.running(run.id):
                    raise ResourceConflict(
                        f"pipeline {name} has a running pipeline run, {run.name}; delete it when the run has finished"
                    )
            return self._repo.delete(pid)

    def set_trigger_report(self, pipeline_id: str, report: dict[str, Any]) -> None:
        """Record on an import pipeline what its source trigger passed over, and why (no-op if it is gone).

        Only the report changes, on the document as stored at the moment of the write (the row locked
        meanwhile): a PUT of the pipeline, such as its trigger turned off, is never written over by a
        report the trigger read the pipeline for before that PUT.
        """

        def change(current: ImportPipeline, state: str | None, owner: str | None) -> tuple[ImportPipeline, str | None]:
            current.properties.sourceTriggerReport = report
            return current, state

        self._repo.modify(pipeline_id, ImportPipeline, change)
