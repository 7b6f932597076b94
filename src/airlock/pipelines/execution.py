"""How a pipeline run executes: the transfer engine called as the pipeline's identity, and its
progress and end written to the run along the RunState machine.

:class:`RunJournal` is the one writer of a run's ``response``; :class:`RunExecution` is what a
:class:`~airlock.pipelines.executor.RunExecutor` calls (through
:meth:`airlock.pipelines.services.runs.RunService.execute`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from airlock.errors import AirlockError, ResourceNotFound
from airlock.oci.digest import Digest
from airlock.pipelines.access import PipelineAccess, principal_of, run_artifact
from airlock.pipelines.models import ExportPipeline, ImportPipeline, PipelineRun, Registry, RunState, run_transition
from airlock.pipelines.repository import ResourceRepository
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


class RunJournal:
    """Writes a run's ``response`` and state: progress while it runs, its result when it ends.
    Thread-safe (under the control plane's lock)."""

    def __init__(self, repo: ResourceRepository, lock: threading.RLock) -> None:
        self._repo = repo
        self._lock = lock

    def update(self, rid: str, **fields: Any) -> None:
        """Merge ``fields`` into a Running run's response; a late report of a finished run is dropped."""
        with self._lock:
            run = self._repo.get(rid, PipelineRun)
            if run is None or self._repo.state_of(rid)[0] != RunState.RUNNING:
                return  # a late progress report: the run has finished, and its record stays as it ended
            self._repo.put(_with_response(run, fields), state=RunState.RUNNING)

    def finish(self, rid: str, *, error: str | None = None, interrupted: bool = False, **fields: Any) -> None:
        """End the run: Succeeded without ``error``, else Failed with it (``interrupted``: its process
        stopped). Raises ResourceConflict: the run has already ended."""
        with self._lock:
            run = self._repo.get(rid, PipelineRun)
            if run is None:
                return
            end = RunState.SUCCEEDED if error is None else RunState.FAILED
            run_transition(self._repo.state_of(rid)[0], end, run.name)
            response = {**run.properties.response.model_dump(mode="json", exclude_unset=True), **fields}
            response["finishTime"] = now_iso()
            if error is None:
                response.update(status="Succeeded", progress={"percentage": "100"})
                response.pop("pipelineRunErrorMessage", None)
                response.pop(INTERRUPTED, None)
            else:
                response.update(status="Failed", pipelineRunErrorMessage=error)
                if interrupted:
                    response[INTERRUPTED] = True
            doc = run.document()
            doc["properties"]["response"] = response
            doc["properties"]["provisioningState"] = end.value
            self._repo.put(PipelineRun.model_validate(doc), state=end)


def _with_response(run: PipelineRun, fields: dict[str, Any]) -> PipelineRun:
    doc = run.document()
    doc["properties"]["response"].update(fields)
    return PipelineRun.model_validate(doc)


class RunExecution:
    """Executes a recorded run as its pipeline's identity and records the result in its journal."""

    def __init__(self, repo: ResourceRepository, journal: RunJournal, access: PipelineAccess, tenant_id: str) -> None:
        self._repo = repo
        self._journal = journal
        self._access = access
        self._tenant_id = tenant_id

    def __call__(self, run_id: str) -> None:
        """Execute run ``run_id`` (any case). Raises nothing for the run's own failures."""
        rid = run_id
        try:
            run = self._require(run_id, PipelineRun, "pipeline run")
            rid = run.id  # the id as it was created: the store's key is lower-cased
            request = run.properties.request
            pipeline = self._repo.get_any(request.pipelineResourceId)
            if not isinstance(pipeline, ExportPipeline | ImportPipeline):
                raise ResourceNotFound(f"pipeline {request.pipelineResourceId} not found")
            registry = self._require(run.parent_id or "", Registry, "registry")
            principal = principal_of(pipeline, self._tenant_id)
            progress = _RunProgress(lambda pct: self._journal.update(rid, progress={"percentage": pct}))
            options = frozenset(PipelineOption(o) for o in pipeline.properties.options)
            if isinstance(pipeline, ExportPipeline):
                target = pipeline.properties.target
                blob = self._access.blob(target, request.target.name if request.target else "", principal)
                result = export_artifacts(
                    client=self._access.registry(registry, principal),
                    artifacts=[run_artifact(a, registry) for a in request.artifacts or []],
                    target=blob,
                    options=options & EXPORT_OPTIONS,
                    progress=progress,
                )
                out = {**target.model_dump(mode="json"), "type": "AzureStorageBlob", "uri": blob.display}
                self._journal.finish(
                    rid,
                    error=_failures(result.failures),
                    catalogDigest=str(result.catalog_digest),
                    target=out,
                    exportedArtifacts=[a.reference for a in result.artifacts],
                )
            else:
                source = pipeline.properties.source
                blob = self._access.blob(source, request.source.name if request.source else "", principal)
                expected = request.catalogDigest
                shown = {**source.model_dump(mode="json"), "type": "AzureStorageBlob", "uri": blob.display}
                self._journal.update(rid, source=shown)
                imported = import_archive(
                    source=blob,
                    client=self._access.registry(registry, principal),
                    options=options & IMPORT_OPTIONS,
                    catalog_digest=Digest.parse(expected) if expected else None,
                    progress=progress,
                )
                self._journal.finish(
                    rid,
                    error=_failures(imported.failures),
                    catalogDigest=str(imported.catalog_digest),
                    importedArtifacts=imported.imported,
                )
        except AirlockError as exc:
            self._journal.finish(rid, error=str(exc))
        except Exception as exc:  # a bug must not leave the run in Running
            log.exception("pipeline run %s failed unexpectedly", rid)
            # The exception text could hold anything (a URL with a token): record only its type.
            self._journal.finish(rid, error=f"internal error ({type(exc).__name__}); see the server log")

    def _require(self, rid: str, model: type[Any], what: str) -> Any:
        found = self._repo.get(rid, model)
        if found is None:
            raise ResourceNotFound(f"{what} {rid.rsplit('/', 1)[-1]} not found ({rid})")
        return found


def _failures(failures: dict[str, str]) -> str | None:
    if not failures:
        return None
    return f"{len(failures)} artifact(s) failed: " + "; ".join(f"{k}: {v}" for k, v in failures.items())
