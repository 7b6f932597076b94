"""The import source trigger: import every new or updated transfer blob that lands in a container.

For each import pipeline whose ``trigger.sourceTrigger.status`` is Enabled, every
``AIRLOCK_TRIGGER_INTERVAL`` seconds (default 10; ACR takes up to 15 minutes) the container is
listed with metadata, as the pipeline's identity. A blob is imported when it is marked
``category=acr-transfer-blob`` (or, if a copy tool stripped the marker, when it is an airlock
archive — with a warning), was modified in the last 60 days, and this version of it (its etag)
has no run yet. The blob version is recorded with its run *before* the run starts, so each
version is imported exactly once, across restarts too; a run that a restart interrupted is
re-created once. Everything passed over is reported on the pipeline
(``properties.sourceTriggerReport``) with the reason — never skipped silently. A multi-volume
bundle is imported once all its volumes have landed; until then it is reported under
``incompleteBundles`` (see :mod:`airlock.pipelines.bundles`).
"""

from __future__ import annotations

import logging
import os
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from airlock.archive.format import CATALOG_NAME
from airlock.archive.sniff import sniff
from airlock.errors import AirlockError, UsageError
from airlock.pipelines import resources as R
from airlock.pipelines.access import principal_of
from airlock.pipelines.bundles import VolumeChecks, list_volumes, orphan_volumes, waiting_bundle
from airlock.pipelines.execution import now_iso
from airlock.pipelines.models import ImportPipeline
from airlock.pipelines.plane import ControlPlane
from airlock.pipelines.services.runs import trigger_run_name
from airlock.pipelines.signing import TrustGate
from airlock.storage.base import TRANSFER_CATEGORY, BlobInfo, Container
from airlock.transfer.pipelining import close_stream

log = logging.getLogger(__name__)

MAX_AGE = timedelta(days=60)  # ACR: only blobs modified in the last 60 days trigger an import
TRIGGER_PRINCIPAL = "airlock:source-trigger"  # the audit trail's principal of the trigger's decisions
CLAIM_LEASE = 120.0  # a claim whose run was never created is taken over after this many seconds


def trigger_interval() -> float:
    """``AIRLOCK_TRIGGER_INTERVAL`` in seconds (default 10). Raises UsageError: not a positive number."""
    raw = os.environ.get("AIRLOCK_TRIGGER_INTERVAL") or "10"
    try:
        interval = float(raw)
    except ValueError:
        raise UsageError(f"AIRLOCK_TRIGGER_INTERVAL {raw!r}: expected seconds, e.g. 10") from None
    if not interval > 0 or interval == float("inf"):
        raise UsageError("AIRLOCK_TRIGGER_INTERVAL must be a number of seconds more than 0")
    return interval


def _age(when: datetime) -> float:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (datetime.now(UTC) - when).total_seconds()


class SourceTrigger:
    """Polls import pipelines' containers on a background thread (``start``/``stop``) or on demand."""

    def __init__(self, plane: ControlPlane, *, interval: float = 10.0) -> None:
        self.plane = plane
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._scan_lock = threading.Lock()
        self._trust = TrustGate()  # trustedKeys: blobs refused before any run starts
        self._volumes = VolumeChecks()  # each later volume read once against its table, before an import

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="source-trigger", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._volumes.close()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.plane.runs.recover()  # runs left behind by a process that died meanwhile
                self.poll()
            except Exception:  # the trigger must outlive any one bad pipeline or bug
                log.exception("source trigger poll failed")

    def poll(self) -> list[str]:
        """Scan every enabled import pipeline once; returns the ids of the runs it started."""
        started: list[str] = []
        with self._scan_lock:
            for pipeline in self.plane.pipelines.import_pipelines():
                if pipeline.trigger_enabled:
                    started += self._scan(pipeline)
        return started

    def _scan(self, pipeline: ImportPipeline) -> list[str]:
        skipped: list[dict[str, str]] = []
        warnings: list[dict[str, str]] = []
        started: list[str] = []
        try:
            principal = principal_of(pipeline, self.plane.tenant_id)
            container = self.plane.access.container(pipeline.properties.source, principal)
            entries = list(container.list_blobs())
        except AirlockError as exc:
            self._report(pipeline, [{"blob": "*", "reason": f"cannot list the container: {exc}"}], [])
            return []
        now = datetime.now(UTC)
        listing = list_volumes(container, entries)  # later volumes of bundles are not imported on their own
        incomplete = orphan_volumes(listing)
        seen: set[tuple[str, str]] = set()
        for name, info in entries:
            if name in listing.volumes:
                continue
            reason, warning = self._judge(container, name, info, now)
            if reason:
                skipped.append({"blob": name, "reason": reason})
                continue
            if warning:
                warnings.append({"blob": name, "warning": warning})
            version = listing.version(name, info.etag or f"{info.size}-{info.last_modified}")
            record = self.plane.trigger_ledger.record(pipeline.id, name, version)
            if record is not None:
                run_id, status, claimed_at = record
                run = self.plane.runs.find(run_id)
                if run is None and status == "started":
                    continue  # its run record was deleted by a user: imported (or tried) once already
                if run is None and _age(claimed_at) < CLAIM_LEASE:
                    continue  # claimed moments ago by another process that is about to start it
                if run is not None and not run.properties.response.interrupted:
                    continue
                # interrupted by a restart, or claimed and never started: once more
            try:
                waiting = waiting_bundle(container, name, info, listing, self._volumes, pipeline.id)
            except AirlockError as exc:
                skipped.append({"blob": name, "reason": f"cannot read its catalog: {exc}"})
                continue
            if waiting is not None:
                incomplete.append(waiting)  # a bundle whose volumes have not all landed yet
                continue
            seen.add((name, version))
            refusal = self._trust.refusal(pipeline, container, name, version)
            if refusal is not None:  # unsigned, signed by another key, altered: no run
                skipped.append({"blob": name, "reason": refusal})
                continue
            try:
                rid = self._start(pipeline, name, version, info, record)
            except AirlockError as exc:
                skipped.append({"blob": name, "reason": f"could not start its import: {exc}"})
                continue
            if rid is not None:
                started.append(rid)
        self._trust.forget(pipeline.id, seen)
        self._volumes.seen(pipeline.id, listing)
        self._report(pipeline, skipped, warnings, incomplete)
        return started

    def _judge(self, container: Container, name: str, info: BlobInfo, now: datetime) -> tuple[str | None, str | None]:
        """(reason to pass it over, warning) for one blob."""
        if info.last_modified is not None and now - info.last_modified > MAX_AGE:
            return (
                "last modified more than 60 days ago (refresh it by updating its metadata, e.g. "
                "az storage blob metadata update --metadata refreshed=true)"
            ), None
        if info.metadata.get("category") == TRANSFER_CATEGORY["category"]:
            return None, None
        # A copy tool may have stripped the marker: an airlock archive is still recognisable.
        try:
            head = b""
            stream = container.blob(name).read(0, min(512, info.size))
            try:
                for chunk in stream:
                    head += chunk
            finally:
                close_stream(stream)
        except AirlockError as exc:
            return f"not marked category=acr-transfer-blob, and unreadable: {exc}", None
        if head[:100].split(b"\0", 1)[0] == CATALOG_NAME.encode():
            if container.display.startswith("file:"):
                return None, None  # files carry no metadata: the content is what identifies them
            return None, "category=acr-transfer-blob metadata missing (stripped by a copy tool?); imported anyway"
        looks_like = sniff(lambda offset, n: head[offset : offset + n]).looks_like
        return (
            f"not a transfer blob: no category=acr-transfer-blob metadata and not an airlock archive "
            f"(it looks like {looks_like})"
        ), None

    def _start(
        self,
        pipeline: ImportPipeline,
        blob: str,
        version: str,
        info: BlobInfo,
        replacing: tuple[str, str, datetime] | None,
    ) -> str | None:
        """Claim the blob version and start its run; None when another process claimed it first."""
        parts = pipeline.id.split("/")
        sub, rg, registry = parts[2], parts[4], parts[8]
        run_name = trigger_run_name(pipeline.name, blob, version)
        rid = R.RegistryRef(sub, rg, registry).child("pipelineRuns", run_name)
        # Claimed before the run starts: a restart between the two must not import it twice, and
        # of two servers watching one container only one wins the claim.
        if not self.plane.trigger_ledger.claim(pipeline.id, blob, version, rid, replacing=replacing):
            return None
        body = {
            "properties": {
                "request": {"pipelineResourceId": pipeline.id, "source": {"name": blob}},
                "forceUpdateTag": f"trigger:{version}:{now_iso()}",
            }
        }
        stamp = (info.last_modified or datetime.now(UTC)).isoformat().replace("+00:00", "Z")
        self.plane.runs.put(sub, rg, registry, run_name, body, internal=True, trigger_timestamp=stamp)
        self.plane.trigger_ledger.mark_started(pipeline.id, blob, version)
        self.plane.audit.record(
            "trigger.import", principal=TRIGGER_PRINCIPAL, resources=[pipeline.id, blob, rid], result="Started"
        )
        log.info("source trigger: importing %r with run %s", blob, run_name)
        return rid

    def _report(
        self,
        pipeline: ImportPipeline,
        skipped: list[dict[str, str]],
        warnings: list[dict[str, str]],
        incomplete: list[dict[str, Any]] | None = None,
    ) -> None:
        report: dict[str, Any] = {"skipped": skipped, "warnings": warnings, "incompleteBundles": incomplete or []}
        old = pipeline.properties.sourceTriggerReport or {}
        if {k: old.get(k) for k in report} == report:
            return  # unchanged: do not rewrite the pipeline on every poll
        self.plane.pipelines.set_trigger_report(pipeline.id, {**report, "lastChange": now_iso()})
        # Decisions are recorded when they change: the report is also rewritten while a multi-volume
        # bundle waits (its waiting time grows), and the skips it repeats were recorded already.
        before = {(s.get("blob"), s.get("reason")) for s in old.get("skipped") or [] if isinstance(s, dict)}
        for item in skipped:
            if (item["blob"], item["reason"]) in before:
                continue
            self.plane.audit.record(
                "trigger.skip", principal=TRIGGER_PRINCIPAL, resources=[pipeline.id, item["blob"]],
                result=f"Skipped: {item['reason']}",
            )  # fmt: skip
            log.warning("source trigger %s: passed over %r: %s", pipeline.name, item["blob"], item["reason"])
        for bundle in incomplete or []:
            log.info("source trigger %s: bundle %r waits for volumes %s", pipeline.name, bundle["blob"], bundle)
