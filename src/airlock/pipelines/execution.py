"""How a pipeline run executes: the transfer engine called as the pipeline's identity, its progress
and its end written to the run, along the RunState machine.

:class:`RunExecution` is the part of :class:`airlock.pipelines.service.ControlPlane` that a
:class:`~airlock.pipelines.executor.RunExecutor` runs; it owns no state of its own.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airlock.errors import AirlockError
from airlock.oci.digest import Digest
from airlock.oci.reference import ArtifactReference, RegistryURL
from airlock.pipelines import resources as R
from airlock.pipelines.store import ResourceStore
from airlock.registry.client import RegistryClient
from airlock.registry.credentials import Credentials
from airlock.secrets.base import Principal
from airlock.secrets.resolver import SecretResolver
from airlock.secrets.store import normalize_sas
from airlock.storage.base import Blob, Container
from airlock.storage.hosts import StorageHosts
from airlock.storage.location import open_blob, open_container, parse_blob_uri, parse_container_uri
from airlock.transfer.export import export_artifacts
from airlock.transfer.importer import import_archive
from airlock.transfer.options import EXPORT_OPTIONS, IMPORT_OPTIONS, PipelineOption

log = logging.getLogger(__name__)

INTERRUPTED = "interrupted"


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class _RunProgress:
    """Writes ``response.progress.percentage`` to the run when it changes: at most twice a second,
    and at once for a jump of 5 points or more (so a run that stalls waiting for a slow blob shows
    where it stalled, not where it was half a second before; at most 20 such writes a run)."""

    def __init__(self, save: Callable[[str], None]) -> None:
        self._save = save
        self._total = 0
        self._done = 0
        self._last = 0.0
        self._saved = -1
        self._lock = threading.Lock()

    def begin(self, total_bytes: int, description: str) -> None:
        self._total = max(total_bytes, 1)

    def advance(self, nbytes: int) -> None:
        with self._lock:
            self._done += nbytes
            pct = min(99, self._done * 100 // self._total)
            now = time.monotonic()
            if pct == self._saved or (now - self._last < 0.5 and pct < self._saved + 5):
                return
            self._last = now
            self._saved = pct
            self._save(str(pct))  # under the lock: writes land in order, the percentage never goes back

    def note(self, message: str) -> None:
        log.info("%s", message)

    def artifact_done(self, reference: str, digest: str, size: int) -> None:
        log.info("%s (%s, %d bytes) done", reference, digest, size)


class RunExecution:
    """Executing runs and recording their results; mixed into the control plane, which provides these."""

    store: ResourceStore
    secrets: SecretResolver
    storage_hosts: StorageHosts
    storage_credential: Callable[[Principal], object | None]
    _lock: threading.RLock
    _registry_client: Callable[[RegistryURL, Credentials | None], RegistryClient]

    if TYPE_CHECKING:  # the control plane's own methods

        def get(self, rid: str, what: str) -> dict[str, Any]: ...

        def principal_of(self, pipeline: dict[str, Any]) -> Principal: ...

    def _update_response(self, rid: str, **fields: Any) -> None:
        with self._lock:
            doc = self.store.get(rid)
            if doc is None or self.store.state_of(rid)[0] != R.RunState.RUNNING:
                return  # a late progress report: the run has finished, and its record stays as it ended
            doc["properties"]["response"].update(fields)
            self.store.put(
                rid, doc, type_=R.RUN_TYPE, resource_group=rg_of(rid), parent=parent_of(rid), state="Running"
            )

    def _finish(self, rid: str, *, error: str | None = None, interrupted: bool = False, **fields: Any) -> None:
        with self._lock:
            doc = self.store.get(rid)
            if doc is None:
                return
            end = R.RunState.SUCCEEDED if error is None else R.RunState.FAILED
            R.run_transition(self.store.state_of(rid)[0], end, rid.rsplit("/", 1)[-1])
            resp = doc["properties"]["response"]
            resp.update(fields)
            resp["finishTime"] = now_iso()
            if error is None:
                resp["status"] = "Succeeded"
                resp["progress"] = {"percentage": "100"}
                doc["properties"]["provisioningState"] = "Succeeded"
                resp.pop("pipelineRunErrorMessage", None)
                resp.pop(INTERRUPTED, None)
            else:
                resp["status"] = "Failed"
                resp["pipelineRunErrorMessage"] = error
                doc["properties"]["provisioningState"] = "Failed"
                if interrupted:
                    resp[INTERRUPTED] = True
            state = doc["properties"]["provisioningState"]
            self.store.put(rid, doc, type_=R.RUN_TYPE, resource_group=rg_of(rid), parent=parent_of(rid), state=state)

    def execute(self, run_id: str) -> None:
        """Execute the recorded run ``run_id`` (any case) and record its result; the
        :data:`~airlock.pipelines.executor.RunHandler` every executor adapter calls. Raises nothing
        for the run's own failures."""
        rid = run_id
        try:
            doc = self.get(run_id, "pipeline run")
            rid = doc["id"]  # the id as it was created: the store's key is lower-cased
            request = doc["properties"]["request"]
            pipeline = self.get(request["pipelineResourceId"], "pipeline")
            registry = self.get(parent_of(rid), "registry")
            principal = self.principal_of(pipeline)
            progress = _RunProgress(lambda pct: self._update_response(rid, progress={"percentage": pct}))
            options = frozenset(PipelineOption(o) for o in pipeline["properties"].get("options", []))
            if pipeline["type"] == R.EXPORT_TYPE:
                target = pipeline["properties"]["target"]
                blob = self._blob(target, request["target"]["name"], principal)
                result = export_artifacts(
                    client=self._client(registry, principal),
                    artifacts=[run_artifact(a, registry) for a in request["artifacts"]],
                    target=blob,
                    options=options & EXPORT_OPTIONS,
                    progress=progress,
                )
                out = {**target, "type": "AzureStorageBlob", "uri": blob.display}
                self._finish(
                    rid,
                    error=_failures(result.failures),
                    catalogDigest=str(result.catalog_digest),
                    target=out,
                    exportedArtifacts=[a.reference for a in result.artifacts],
                )
            else:
                source = pipeline["properties"]["source"]
                blob = self._blob(source, request["source"]["name"], principal)
                expected = request.get("catalogDigest")
                self._update_response(rid, source={**source, "type": "AzureStorageBlob", "uri": blob.display})
                imported = import_archive(
                    source=blob,
                    client=self._client(registry, principal),
                    options=options & IMPORT_OPTIONS,
                    catalog_digest=Digest.parse(expected) if expected else None,
                    progress=progress,
                )
                self._finish(
                    rid,
                    error=_failures(imported.failures),
                    catalogDigest=str(imported.catalog_digest),
                    importedArtifacts=imported.imported,
                )
        except AirlockError as exc:
            self._finish(rid, error=str(exc))
        except Exception as exc:  # a bug must not leave the run in Running
            log.exception("pipeline run %s failed unexpectedly", rid)
            # The exception text could hold anything (a URL with a token): record only its type.
            self._finish(rid, error=f"internal error ({type(exc).__name__}); see the server log")

    def _client(self, registry: dict[str, Any], principal: Principal) -> RegistryClient:
        props = registry["properties"]
        creds = None
        stored = props.get("credentials") or {}
        if stored.get("username"):
            password = self.secrets.get(stored["passwordSecretUri"], principal=principal, what="registry password")
            creds = Credentials(username=stored["username"], password=password)
        return self._registry_client(RegistryURL.parse(props["loginServer"]), creds)

    def storage_access(self, storage: dict[str, Any], principal: Principal) -> tuple[str | None, object | None]:
        """(SAS token, credential) for a pipeline's container, read as the pipeline's identity.

        Raises:
            UsageError: the container's host is not in :attr:`storage_hosts` (nothing is read or sent).
            SecretError: from the vault.
        """
        if parse_container_uri(storage.get("uri", "")).kind == "file":
            return None, None
        # Checked before any secret is read: the pipeline may predate the allowlist, or the server's
        # AIRLOCK_STORAGE_HOSTS may have changed since it was created.
        self.storage_hosts.check(storage.get("uri", ""), "pipeline storage")
        if storage.get("storageAccessMode") == "ManagedIdentity":
            return None, self.storage_credential(principal)
        sas = self.secrets.get(storage["keyVaultUri"], principal=principal, what="storage SAS token")
        return normalize_sas(sas), None

    def _blob(self, storage: dict[str, Any], name: str, principal: Principal) -> Blob:
        sas, credential = self.storage_access(storage, principal)
        return open_blob(parse_blob_uri(storage["uri"].rstrip("/") + "/" + name), sas_token=sas, credential=credential)

    def container(self, storage: dict[str, Any], principal: Principal) -> Container:
        sas, credential = self.storage_access(storage, principal)
        return open_container(parse_container_uri(storage["uri"]), sas_token=sas, credential=credential)


def _failures(failures: dict[str, str]) -> str | None:
    if not failures:
        return None
    return f"{len(failures)} artifact(s) failed: " + "; ".join(f"{k}: {v}" for k, v in failures.items())


def run_artifact(text: str, registry: dict[str, Any]) -> ArtifactReference:
    """A run's artifact, which may carry its registry's host (the registry's loginServer) as a prefix.

    Raises ReferenceError_ (invalid, or naming another registry)."""
    login_server = RegistryURL.parse(registry["properties"]["loginServer"])
    return ArtifactReference.parse_for(text, login_server, named_by=f"registry {registry['name']}'s loginServer")


def parent_of(rid: str) -> str:
    return rid.rsplit("/", 2)[0]


def rg_of(rid: str) -> str:
    parts = rid.split("/")
    lowered = [p.lower() for p in parts]
    return parts[lowered.index("resourcegroups") + 1] if "resourcegroups" in lowered else ""
