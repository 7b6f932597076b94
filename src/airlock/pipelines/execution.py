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

from sqlalchemy.exc import DBAPIError

from airlock.archive.volumes import parse_volume_size
from airlock.errors import AirlockError, ResourceNotFound
from airlock.observability import logs, metrics
from airlock.oci.digest import Digest
from airlock.pipelines.access import PipelineAccess, principal_of
from airlock.pipelines.leases import process_alive
from airlock.pipelines.models import ExportPipeline, ImportPipeline, PipelineRun, Registry, RunState, run_transition
from airlock.pipelines.repository import ResourceRepository
from airlock.pipelines.run_audit import RunAudit, exported_audit, imported_audit, record_run_end
from airlock.pipelines.run_selection import run_plan
from airlock.pipelines.services.audit import AuditService
from airlock.pipelines.signing import pipeline_signer, pipeline_trusted_keys, signature_field
from airlock.transfer.export import export_artifacts
from airlock.transfer.importer import import_archive
from airlock.transfer.options import EXPORT_OPTIONS, IMPORT_OPTIONS, PipelineOption
from airlock.transfer.provenance import ExportContext
from airlock.transfer.rename import RenameMap
from airlock.transfer.signature_policy import SignaturePolicy

log = logging.getLogger(__name__)

INTERRUPTED = "interrupted"
CANCELED_MESSAGE = (
    "the run was canceled; nothing was tagged for content it had not finished, and no partial blob is left"
)
STOP_CHECK_SECONDS = 1.0  # how often a running run looks for a cancel request
DONE_SHOWN = 100  # finished artifacts a running run lists by reference (the rest are counted)


class RunCanceled(BaseException):
    """Unwinds a run's transfer when it is canceled (or lost its ownership).

    A control-flow signal, not an error of the tree: it derives from BaseException so that the
    engine's per-artifact ``except AirlockError`` (ContinueOnErrors) does not swallow it, while its
    ``except BaseException`` clean-ups (an export's blob writer is aborted, an import writes no
    tag) run as they do for any interruption.
    """


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class _RunProgress:
    """Writes ``response.progress`` to the run when its percentage changes: at most twice a second,
    and at once for a jump of 5 points or more (so a run that stalls waiting for a slow blob shows
    where it stalled, not where it was half a second before; at most 20 such writes a run). Besides
    ``percentage`` it carries ``bytesDone``/``bytesTotal``, ``blobsDone``/``blobsTotal`` and
    ``artifactsDone`` (the dashboard's rate, ETA and counts) and the first :data:`DONE_SHOWN`
    finished references (``doneArtifacts``)."""

    def __init__(
        self,
        save: Callable[[dict[str, Any]], None],
        kind: metrics.Kind,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> None:
        self._save = save
        self._kind: metrics.Kind = kind
        self._should_stop = should_stop
        self._checked = float("-inf")  # the first bytes check at once; then once a second
        self._total = 0
        self._done = 0
        self._last = 0.0
        self._saved = -1
        self._done_artifacts: list[str] = []
        self._artifacts = 0
        self._blobs = (0, 0)
        self._lock = threading.Lock()

    def begin(self, total_bytes: int, description: str) -> None:
        """Raises RunCanceled: the run was canceled while its artifacts were being resolved."""
        self._total = max(total_bytes, 1)
        if self._should_stop():
            raise RunCanceled()

    def advance(self, nbytes: int) -> None:
        """Count ``nbytes``. Raises RunCanceled: the run was canceled since the last check."""
        metrics.bytes_moved(nbytes, self._kind)
        with self._lock:
            self._done += nbytes
            pct = min(99, self._done * 100 // self._total)
            now = time.monotonic()
            if now - self._checked >= STOP_CHECK_SECONDS:
                self._checked = now
                if self._should_stop():
                    raise RunCanceled()
            if pct == self._saved or (now - self._last < 0.5 and pct < self._saved + 5):
                return
            self._last = now
            self._saved = pct
            self._save(self.snapshot(pct))  # under the lock: writes land in order, the percentage never goes back

    def final(self) -> dict[str, Any]:
        """What ``response.progress`` shows when the run ends (every artifact counted)."""
        with self._lock:
            shown = self.snapshot(min(99, self._done * 100 // max(self._total, 1)))
        del shown["doneArtifacts"]
        return shown

    def snapshot(self, pct: int) -> dict[str, Any]:
        """What ``response.progress`` shows at ``pct`` percent."""
        return {
            "percentage": str(pct),
            "bytesDone": self._done,
            "bytesTotal": self._total,
            "artifactsDone": self._artifacts,
            "blobsDone": self._blobs[0],
            "blobsTotal": self._blobs[1],
            "doneArtifacts": list(self._done_artifacts),
        }

    def note(self, message: str) -> None:
        log.info("%s", message)

    def blobs(self, done: int, total: int) -> None:
        with self._lock:  # shown with the next percentage written: blobs move with the bytes
            self._blobs = (done, total)

    def artifact_done(self, reference: str, digest: str, size: int) -> None:
        log.info("%s (%s, %d bytes) done", reference, digest, size)
        with self._lock:
            self._artifacts += 1
            if len(self._done_artifacts) < DONE_SHOWN:  # bounded, whatever the number of artifacts
                self._done_artifacts.append(reference)


class RunJournal:
    """Writes a run's ``response`` and state: progress while it runs, its result when it ends.
    Thread-safe (under the control plane's lock)."""

    def __init__(self, repo: ResourceRepository, lock: threading.RLock, audit: AuditService | None = None) -> None:
        self._repo = repo
        self._lock = lock
        self._audit = audit

    def update(self, rid: str, *, owner: str | None = None, **fields: Any) -> None:
        """Merge ``fields`` into a Running run's response (only while ``owner``, when given, runs
        it); a late report of a finished or taken-over run is dropped. One locked read-and-write,
        so no other process's write of the run is lost."""

        def merge(run: PipelineRun, state: str | None, current: str | None) -> tuple[PipelineRun, str | None] | None:
            if state != RunState.RUNNING or (owner is not None and current != owner):
                return None  # a late progress report: the run's record stays as it ended
            return _with_response(run, fields), state

        with self._lock:
            self._repo.modify(rid, PipelineRun, merge)

    def start(self, rid: str, owner: str, *, redelivered: bool = False) -> bool:
        """Take the run for execution by process ``owner``: Queued → Running, or a Running run whose
        owner died (it resumes; blobs already there are skipped). With ``redelivered`` (a durable
        queue delivered its job again because the worker running it stopped beating) the run is
        taken over from another owner even while that owner's lease has not run out: the queue,
        not the lease, decides that the worker is gone. False when it is not this caller's to run
        (canceled, finished, or run by a live process)."""
        state, current, updated_at = self._repo.state_of(rid)
        if state == RunState.QUEUED or (
            state == RunState.RUNNING and current != owner and (redelivered or not process_alive(current, updated_at))
        ):
            assert state is not None
            return self._repo.claim(rid, expect=(state, current), state=RunState.RUNNING, owner=owner)
        return False

    def should_stop(self, rid: str, owner: str) -> bool:
        """Whether a run executing in process ``owner`` must stop: a cancel was asked for, or the run
        is no longer Running as this owner's (it was canceled or taken over)."""
        state, current, _ = self._repo.state_of(rid)
        if state != RunState.RUNNING or current != owner:
            return True
        run = self._repo.get(rid, PipelineRun)
        return run is None or bool(run.properties.response.cancelRequested)

    def request_cancel(self, rid: str) -> bool:
        """Mark a queued or running run to stop at its next check; False when it has ended."""

        def mark(run: PipelineRun, state: str | None, _owner: str | None) -> tuple[PipelineRun, str | None] | None:
            if state not in (RunState.QUEUED, RunState.RUNNING):
                return None
            return _with_response(run, {"cancelRequested": True}), state

        with self._lock:
            return self._repo.modify(rid, PipelineRun, mark)

    def finish(
        self,
        rid: str,
        *,
        error: str | None = None,
        interrupted: bool = False,
        canceled: bool = False,
        owner: str | None = None,
        audit: RunAudit | None = None,
        **fields: Any,
    ) -> bool:
        """End the run: Succeeded without ``error``, else Failed with it (``interrupted``: its process
        stopped), or Canceled (``canceled``, ``error`` saying so). With ``owner``, only while that
        process owns it, queued or running (a run taken over is the new owner's to end). One locked read-and-write.
        Returns whether this call ended it. The end is one audit-trail entry (``audit``: who ran it
        and the artifacts with their digests; without it, the pipeline's id stands for the principal).

        Raises:
            ResourceConflict: without ``owner``, the run has already ended.
        """
        end = RunState.CANCELED if canceled else RunState.SUCCEEDED if error is None else RunState.FAILED
        ended: list[PipelineRun] = []

        def close(run: PipelineRun, state: str | None, current: str | None) -> tuple[PipelineRun, str | None] | None:
            if owner is not None and (state not in (RunState.QUEUED, RunState.RUNNING) or current != owner):
                return None  # ended meanwhile, or another process's now
            run_transition(state, end, run.name)
            response = {**run.properties.response.model_dump(mode="json", exclude_unset=True), **fields}
            response["finishTime"] = now_iso()
            if error is None:
                # the byte and artifact counts stay: the dashboard's throughput reads them
                response.update(status="Succeeded", progress={**(response.get("progress") or {}), "percentage": "100"})
                response.pop("pipelineRunErrorMessage", None)
                response.pop(INTERRUPTED, None)
            else:
                response.update(status=end.value, pipelineRunErrorMessage=error)
                if interrupted:
                    response[INTERRUPTED] = True
            doc = run.document()
            doc["properties"]["response"] = response
            doc["properties"]["provisioningState"] = end.value
            ended.append(run)
            return PipelineRun.model_validate(doc), end

        with self._lock:
            if not self._repo.modify(rid, PipelineRun, close):
                return False
        run = ended[0]
        started = run.properties.response.startTime
        final: metrics.State = "Canceled" if canceled else "Succeeded" if error is None else "Failed"
        kind: metrics.Kind = "export" if run.is_export else "import"
        metrics.run_finished(kind, final, metrics.seconds_since(started) if started else 0.0)
        if self._audit is not None:
            record_run_end(
                self._audit, run, kind, end.value if error is None else f"{end.value}: {error}", audit, fields
            )
        return True


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

    def __call__(self, run_id: str, should_stop: Callable[[], bool] = lambda: False, owner: str | None = None) -> None:
        """Execute run ``run_id`` (any case) as process ``owner`` (its writes then count only while
        that process owns the run), stopping when ``should_stop()`` says so (checked as bytes move).
        Raises nothing for the run's own failures; DBAPIError when the database went away."""
        with logs.bind(run_id=run_id):
            self._execute(run_id, should_stop, owner)

    def _execute(self, run_id: str, should_stop: Callable[[], bool], owner: str | None) -> None:
        rid = run_id
        who: RunAudit | None = None  # the audit entry's principal and artifacts, once known
        try:
            run = self._require(run_id, PipelineRun, "pipeline run")
            rid = run.id  # the id as it was created: the store's key is lower-cased
            request = run.properties.request
            pipeline = self._repo.get_any(request.pipelineResourceId)
            if not isinstance(pipeline, ExportPipeline | ImportPipeline):
                raise ResourceNotFound(f"pipeline {request.pipelineResourceId} not found")
            registry = self._require(run.parent_id or "", Registry, "registry")
            principal = principal_of(pipeline, self._tenant_id)
            who = RunAudit(f"identity:{principal.principal_id}", [])
            logs.annotate(
                run_id=rid,
                pipeline=pipeline.name,
                principal=principal.principal_id,
                correlation_id=run.properties.response.correlationId,
            )
            stamp = (run.properties.response.model_extra or {}).get("trigger", {}).get("sourceTrigger", {})
            if stamp.get("timestamp"):
                metrics.trigger_lag(metrics.seconds_since(stamp["timestamp"]))
            kind: metrics.Kind = "export" if isinstance(pipeline, ExportPipeline) else "import"
            progress = _RunProgress(
                lambda shown: self._journal.update(rid, owner=owner, progress=shown), kind, should_stop
            )
            options = frozenset(PipelineOption(o) for o in pipeline.properties.options)
            if isinstance(pipeline, ExportPipeline):
                target = pipeline.properties.target
                blob = self._access.blob(target, request.target.name if request.target else "", principal)
                client = self._access.registry(registry, principal)
                plan = run_plan(client, request.artifacts or [], request.selection, registry)
                result = export_artifacts(
                    client=client,
                    artifacts=plan.references,
                    target=blob,
                    options=options & EXPORT_OPTIONS,
                    progress=progress,
                    platforms=plan.platforms,
                    platform_index=plan.platform_index,
                    volume_size=pipeline_volume_size(pipeline),
                    signer=pipeline_signer(self._access, pipeline, principal),
                    provenance=ExportContext(
                        who.principal, {"artifacts": request.artifacts or [], **(request.selection or {})}
                    ),
                )
                metrics.blobs_moved(result.blobs, "export")
                who.artifacts = exported_audit(result)
                out = {**target.model_dump(mode="json"), "type": "AzureStorageBlob", "uri": blob.display}
                self._journal.finish(
                    rid,
                    owner=owner,
                    error=_failures(result.failures),
                    catalogDigest=str(result.catalog_digest),
                    audit=who,
                    target=out,
                    exportedArtifacts=[a.reference for a in result.artifacts],
                    progress=progress.final(),
                    blobsMoved=result.blobs,
                    **_volumes(result.volumes),
                    **signature_field(result.signature),
                )
            else:
                source = pipeline.properties.source
                blob = self._access.blob(source, request.source.name if request.source else "", principal)
                expected = request.catalogDigest
                shown = {**source.model_dump(mode="json"), "type": "AzureStorageBlob", "uri": blob.display}
                self._journal.update(rid, owner=owner, source=shown)
                imported = import_archive(
                    source=blob,
                    client=self._access.registry(registry, principal),
                    options=options & IMPORT_OPTIONS,
                    catalog_digest=Digest.parse(expected) if expected else None,
                    progress=progress,
                    rename=RenameMap.of(pipeline.properties.rename, where=f"import pipeline {pipeline.name} rename"),
                    trusted=pipeline_trusted_keys(pipeline),
                    signatures=SignaturePolicy.from_document(
                        pipeline.properties.signaturePolicy, where=f"import pipeline {pipeline.name} signaturePolicy"
                    ),
                )
                metrics.blobs_moved(imported.blobs_uploaded + imported.blobs_mounted, "import")
                who.artifacts = imported_audit(imported)
                self._journal.finish(
                    rid,
                    owner=owner,
                    error=_failures(imported.failures),
                    catalogDigest=str(imported.catalog_digest),
                    audit=who,
                    importedArtifacts=imported.imported,
                    **signature_field(imported.signature),
                    progress=progress.final(),
                    blobsMoved=imported.blobs_uploaded + imported.blobs_mounted,
                )
        except RunCanceled:
            log.info("pipeline run %s stopped: canceled", rid)
            self._journal.finish(rid, error=CANCELED_MESSAGE, canceled=True, owner=owner, audit=who)
        except AirlockError as exc:
            self._journal.finish(rid, error=str(exc), owner=owner, audit=who)
        except DBAPIError:
            raise  # the database went away: RunService.execute records the run's end when it is back
        except Exception as exc:  # a bug must not leave the run in Running
            log.exception("pipeline run %s failed unexpectedly", rid)
            # The exception text could hold anything (a URL with a token): record only its type.
            error = f"internal error ({type(exc).__name__}); see the server log"
            self._journal.finish(rid, error=error, owner=owner, audit=who)

    def _require(self, rid: str, model: type[Any], what: str) -> Any:
        found = self._repo.get(rid, model)
        if found is None:
            raise ResourceNotFound(f"{what} {rid.rsplit('/', 1)[-1]} not found ({rid})")
        return found


def pipeline_volume_size(pipeline: ExportPipeline) -> int | None:
    """Bytes of the pipeline's ``volumeSize`` (airlock's extension), or None. Raises UsageError: not a size."""
    size = pipeline.properties.volumeSize
    return None if size is None else parse_volume_size(size, what="properties.volumeSize")


def _volumes(volumes: list[dict[str, object]] | None) -> dict[str, Any]:
    """The run response's ``volumes`` (a bundle's, with a volume size), or nothing."""
    return {} if volumes is None else {"volumes": volumes}


def _failures(failures: dict[str, str]) -> str | None:
    if not failures:
        return None
    return f"{len(failures)} artifact(s) failed: " + "; ".join(f"{k}: {v}" for k, v in failures.items())
