"""Pipeline runs: ``registries/{registry}/pipelineRuns``, along the RunState machine.

A PUT records the run as Queued and hands its id to the
:class:`~airlock.pipelines.executor.RunExecutor`; the executor calls :meth:`RunService.execute`,
which takes the run (Queued → Running, a compare-and-swap: one process wins) and records its
result (:mod:`airlock.pipelines.execution`). The process executing a run owns it and refreshes
its heartbeat (:mod:`airlock.pipelines.leases`), so any process can tell a live run from one
whose process died, and fail the latter, saying so (:meth:`RunService.recover`). ARM shows a
queued run as ``status: Running`` (its response), as ACR does.
"""

from __future__ import annotations

import builtins
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from airlock.errors import ResourceConflict, ResourceNotFound, UsageError
from airlock.observability import logs
from airlock.oci.digest import Digest
from airlock.pipelines import resources as R
from airlock.pipelines.access import run_artifact
from airlock.pipelines.execution import CANCELED_MESSAGE, RunExecution, RunJournal, now_iso
from airlock.pipelines.executor import RunExecutor, RunHandler
from airlock.pipelines.leases import HEARTBEAT, owner_token, process_alive
from airlock.pipelines.models import ExportPipeline, ImportPipeline, PipelineRun, Registry, RunState, run_transition
from airlock.pipelines.repository import ResourceRepository
from airlock.storage.location import check_blob_name

log = logging.getLogger(__name__)

SETTLE_SECONDS = 300.0
DATABASE_LOST_MESSAGE = (
    "the run was interrupted: the control plane's database was unreachable while it ran, so its result "
    "could not be recorded; nothing was tagged for unverified content. Run it again with a new forceUpdateTag"
)
INTERRUPTED_MESSAGE = (
    "the run was interrupted: the airlock process running it stopped before it finished; nothing was "
    "tagged for unverified content. Run it again with a new forceUpdateTag"
)


class RunService:
    """Start, read, wait for, delete and recover runs. Thread-safe.

    Args:
        repo: the resources.
        journal: the writer of runs' results.
        execution: executes one run (the handler the executor calls).
        executor: builds the executor from its handler.
        lock: the control plane's lock (a check and the write it guards happen under it).
    """

    def __init__(
        self,
        repo: ResourceRepository,
        journal: RunJournal,
        execution: RunExecution,
        executor: Callable[[RunHandler], RunExecutor],
        lock: threading.RLock,
    ) -> None:
        self._repo = repo
        self._journal = journal
        self._execution = execution
        self._lock = lock
        self._owner = owner_token()
        self._executor = executor(self.execute)
        self._stop = threading.Event()
        self._heartbeat = threading.Thread(target=self._beat, name="run-heartbeat", daemon=True)
        self._heartbeat.start()

    def close(self, *, wait: bool = True) -> None:
        """Stop the executor (with ``wait``, after the runs it executes have ended) and the heartbeat."""
        self._executor.close(wait=wait)
        self._stop.set()

    def _beat(self) -> None:
        """Refresh the runs this process executes, so other machines see their owner is alive."""
        while not self._stop.wait(HEARTBEAT):
            mine = self._executor.running()
            try:
                self._repo.touch(mine)
            except Exception:  # a missed beat is retried; the lease is ten beats long
                log.warning("could not refresh the heartbeat of %d run(s)", len(mine), exc_info=True)

    def execute(self, run_id: str) -> None:
        """Execute the recorded run ``run_id`` and record its result: the executor's handler. A run
        that is not this process's to take (canceled, finished, run by a live process) is left alone."""
        if not self._journal.start(run_id, self._owner, redelivered=self._executor.durable):
            log.info("pipeline run %s: not started here (it is canceled, finished or running elsewhere)", run_id)
            return
        try:
            self._execution(run_id, lambda: self._journal.should_stop(run_id, self._owner), self._owner)
        except Exception as exc:  # the execution records its own failures; this is the database going away
            log.error("pipeline run %s: its end could not be recorded (%s); retrying", run_id, type(exc).__name__)
        self._settle(run_id)

    def _settle(self, run_id: str, deadline: float = SETTLE_SECONDS) -> None:
        """Make sure a run this process took has ended in the database: if it is still Running as
        ours (its end could not be written: the database was unreachable), fail it, saying so,
        retrying while the database comes back. Gives up after ``deadline`` seconds (the run then
        ends when this process does, by recovery)."""
        until = time.monotonic() + deadline
        while True:
            try:
                state, owner, _ = self._repo.state_of(run_id)
                if state != RunState.RUNNING or owner != self._owner:
                    return
                # interrupted: a triggered import is tried once more (its run's name takes no new tag)
                self._journal.finish(run_id, error=DATABASE_LOST_MESSAGE, interrupted=True, owner=self._owner)
                return
            except Exception as exc:  # the database is still away: wait for it
                if time.monotonic() > until:
                    log.error("pipeline run %s: its end still cannot be recorded (%s); giving up", run_id, exc)
                    return
                time.sleep(1.0)

    def put(
        self,
        sub: str,
        rg: str,
        registry: str,
        name: str,
        body: Any,
        *,
        internal: bool = False,
        trigger_timestamp: str | None = None,
    ) -> tuple[PipelineRun, bool]:
        """Create and start a run; an identical PUT is a no-op, a new forceUpdateTag runs it again.

        Returns (run, started). ``internal``: the source trigger's run (its name has a ``_``).

        Raises:
            UsageError: an invalid id part or body, or ``pipelineResourceId`` naming something other
                than an export or import pipeline (nothing is stored then).
            ResourceNotFound: no such registry or pipeline.
            ResourceConflict: the run is running.
        """
        ref = R.RegistryRef(sub, rg, registry)
        found_registry = self._repo.get(ref.id, Registry)
        if found_registry is None:
            raise ResourceNotFound(f"registry {registry} not found ({ref.id})")
        if not internal:
            R.check_subscription(sub)
            R.check_resource_group(rg)
            R.check_name(name, "pipeline run")
        model = R.parse(R.RunBody, body, f"pipeline run {name}")
        req = model.properties.request
        pipeline = self._repo.get_any(req.pipeline_resource_id)
        if pipeline is None or not req.pipeline_resource_id.lower().startswith(ref.id.lower() + "/"):
            raise ResourceNotFound(
                f"pipeline run {name}: pipeline {req.pipeline_resource_id} not found on registry {registry} "
                f"in resource group {rg}"
            )
        if not isinstance(pipeline, ExportPipeline | ImportPipeline):
            raise UsageError(
                f"pipeline run {name}: properties.request.pipelineResourceId must name an export or import "
                f"pipeline, not a {pipeline.type.rsplit('/', 1)[-1]} resource ({req.pipeline_resource_id})"
            )
        request = _request(name, req, pipeline, found_registry)
        rid = ref.child("pipelineRuns", name)
        with self._lock:
            existing = self._repo.get(rid, PipelineRun)
            tag = model.properties.force_update_tag
            if existing is not None:
                if self.running(rid) is False:
                    existing = self._repo.get(rid, PipelineRun)  # a stale Running record was just failed
                same = (
                    existing is not None
                    and existing.properties.request.model_dump(mode="json", exclude_unset=True) == request
                    and existing.properties.forceUpdateTag == tag
                )
                if same and existing is not None:
                    return existing, False
                if self.running(rid):
                    raise ResourceConflict(f"pipeline run {name} is still running; wait for it before running it again")
            response: dict[str, Any] = {"status": "Running", "progress": {"percentage": "0"}, "startTime": now_iso()}
            correlation = logs.current().get("correlation_id")
            if correlation:  # the PUT's, so that the run's log lines, in whichever worker, carry it too
                response["correlationId"] = correlation
            if trigger_timestamp:
                response["trigger"] = {"sourceTrigger": {"timestamp": trigger_timestamp}}
            run = PipelineRun.model_validate(
                {
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
            )
            state = run_transition(self._repo.state_of(rid)[0], RunState.QUEUED, name)
            # A durable executor queues the run's job in the transaction that records it; a thread
            # pool starts it once it is committed.
            enqueue = self._executor.enqueue(rid.lower())
            self._repo.put(run, state=state, owner=self._owner, then=enqueue)
            if enqueue is None:
                self._executor.submit(rid.lower())
        return run, True

    def get(self, sub: str, rg: str, registry: str, name: str) -> PipelineRun:
        """Raises ResourceNotFound."""
        return self.by_id(R.RegistryRef(sub, rg, registry).child("pipelineRuns", name))

    def by_id(self, rid: str) -> PipelineRun:
        """Raises ResourceNotFound."""
        found = self._repo.get(rid, PipelineRun)
        if found is None:
            raise ResourceNotFound(f"pipeline run {rid.rsplit('/', 1)[-1]} not found ({rid})")
        return found

    def find(self, rid: str) -> PipelineRun | None:
        return self._repo.get(rid, PipelineRun)

    def execution(self, rid: str) -> tuple[str | None, str | None]:
        """The run's state as executors see it (Queued, Running, …: a run's document says only
        ``Creating`` until it ends) and the token of the process that runs or last ran it (host,
        pid, start time, plane)."""
        state, owner, _ = self._repo.state_of(rid)
        return state, owner

    def executing(self) -> set[str]:
        """The (lower-case) ids of the runs that execute now, in any process."""
        return {rid for rid, _, _ in self._repo.ids_in_state(PipelineRun, RunState.RUNNING)}

    def list(self, sub: str, rg: str, registry: str) -> list[PipelineRun]:
        return self._repo.find(PipelineRun, parent=R.RegistryRef(sub, rg, registry).id)

    def running(self, rid: str) -> bool | None:
        """True if the run is queued or executes now (here or in a live process), False if its
        record was stale (its process died: the run is failed now, saying so), None if it has ended."""
        state, owner, updated_at = self._repo.state_of(rid)
        if state not in (RunState.QUEUED, RunState.RUNNING):
            return None
        if state == RunState.QUEUED and self._executor.durable:
            return True  # its job waits in the queue, whichever process queued it
        if owner == self._owner:
            if self._executor.is_running(rid.lower()):
                return True
        elif process_alive(owner, updated_at):
            return True
        if self._executor.durable and rid.lower() in self._executor.pending():
            return True  # its worker died; the job is retried and a worker resumes the run
        self._journal.finish(rid, error=INTERRUPTED_MESSAGE, interrupted=True, owner=owner)
        return False

    def wait(self, rid: str, timeout: float | None = None) -> PipelineRun:
        """Block until the run has ended here (the local-mode CLI and tests). Raises TimeoutError."""
        self._executor.wait(rid.lower(), timeout)
        return self.by_id(rid)

    def delete(self, sub: str, rg: str, registry: str, name: str) -> bool:
        """Delete a run's record. Raises ResourceConflict: it is running."""
        rid = R.RegistryRef(sub, rg, registry).child("pipelineRuns", name)
        with self._lock:  # no put of the same name between the check and the delete
            if self.running(rid):
                raise ResourceConflict(f"pipeline run {name} is running; delete it when it has finished")
            return self._repo.delete(rid)

    def cancel(self, sub: str, rg: str, registry: str, name: str) -> PipelineRun:
        """Cancel a queued or running run: a queued one ends Canceled at once, a running one stops
        at its next check (within about a second of moving bytes), an export leaving no blob and an
        import no tag for unfinished content. Returns the run as it is now.

        Raises:
            ResourceNotFound: no such run.
            ResourceConflict: the run has ended.
        """
        rid = R.RegistryRef(sub, rg, registry).child("pipelineRuns", name)
        with self._lock:
            self.by_id(rid)
            active = self.running(rid)
            state = self._repo.state_of(rid)[0]
            if not active or state is None:
                raise ResourceConflict(
                    f"pipeline run {name} is {self.by_id(rid).properties.provisioningState}: only a queued or "
                    "running run can be canceled"
                )
            self._journal.request_cancel(rid)
            if state == RunState.QUEUED:
                self._journal.finish(rid, error=CANCELED_MESSAGE, canceled=True)
        return self.by_id(rid)

    def recover(self) -> builtins.list[str]:
        """Fail every run left queued or running by a process that is gone, saying why.

        Runs owned by a live process (another CLI in local mode, say) are left alone, and so are
        the runs of a durable executor that have a job waiting or running (a stalled job is
        retried, and the worker that takes it resumes the run).
        """
        failed = []
        pending: set[str] | None = None  # looked up once, and only when a run needs it
        for state in (RunState.QUEUED, RunState.RUNNING):
            for rid, owner, updated_at in self._repo.ids_in_state(PipelineRun, state):
                if state == RunState.QUEUED and self._executor.durable:
                    # A queued run whose job is gone (its handler failed before taking it, the
                    # database went away meanwhile) is queued again: the run record is the outbox.
                    pending = self._executor.pending() if pending is None else pending
                    if rid not in pending:
                        log.warning("pipeline run %s: queued, but its job was lost; queued again", rid)
                        self._executor.submit(rid)
                    continue
                if self._executor.is_running(rid):
                    continue
                if owner != self._owner and process_alive(owner, updated_at):
                    continue  # another live process's (this one's own is alive but does not run it)
                if self._executor.durable:
                    pending = self._executor.pending() if pending is None else pending
                    if rid in pending:
                        continue  # its job is stalled and will be retried: a worker resumes the run
                if self._journal.finish(rid, error=INTERRUPTED_MESSAGE, interrupted=True, owner=owner):
                    failed.append(rid)
        return failed


def _request(
    name: str, req: R.RunRequest, pipeline: ExportPipeline | ImportPipeline, registry: Registry
) -> dict[str, Any]:
    """The run's stored request. Raises UsageError."""
    request: dict[str, Any] = {"pipelineResourceId": pipeline.id}
    if isinstance(pipeline, ExportPipeline):
        if not req.artifacts and req.selection is not None and req.selection.empty:
            raise UsageError(f"pipeline run {name}: request.selection selects nothing (no repositories, no artifacts)")
        if not req.artifacts and (req.selection is None or req.selection.empty):
            raise UsageError(f"pipeline run {name}: artifacts cannot be empty for an export run (or give a selection)")
        for a in [*req.artifacts, *(req.selection.artifacts if req.selection else [])]:
            run_artifact(a, registry)
        if not req.target or not req.target.name:
            raise UsageError(f"pipeline run {name}: request.target.name (the blob to write) is required")
        request["artifacts"] = list(req.artifacts)
        if req.selection is not None:
            request["selection"] = req.selection.to_json()
        request["target"] = {"type": "AzureStorageBlob", "name": check_blob_name(req.target.name)}
    else:
        if req.artifacts or req.selection is not None:
            # Dropping them would import what the caller meant to leave out.
            raise UsageError(
                f"pipeline run {name}: request.artifacts and request.selection are for export runs; an import "
                "run imports every artifact of its source blob"
            )
        if not req.source or not req.source.name:
            raise UsageError(f"pipeline run {name}: request.source.name (the blob to import) is required")
        request["source"] = {"type": "AzureStorageBlob", "name": check_blob_name(req.source.name)}
        if req.catalog_digest not in (None, *R.PLACEHOLDER_DIGESTS):
            Digest.parse(str(req.catalog_digest))
            request["catalogDigest"] = req.catalog_digest
    return request


def trigger_run_name(pipeline_name: str, blob: str, version: str) -> str:
    """Source-triggered runs have a '_' in their name (ACR's CLI tells them apart that way)."""
    return f"{pipeline_name[:30]}_{hashlib.sha256(f'{blob}|{version}'.encode()).hexdigest()[:16]}"
