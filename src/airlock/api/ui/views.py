"""What the dashboard's pages show, read through the control plane's services (the same ones the
JSON API's routers call): plain dictionaries for the templates, never a secret value (pipelines
show their vault secret's URI, never what it holds; vault secrets are not read at all).

Everything is read per request; lists are bounded (:data:`MAX_RUNS` rows on a page).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from airlock.pipelines import arm
from airlock.pipelines.models import ExportPipeline, ImportPipeline, PipelineRun, Registry
from airlock.pipelines.plane import ControlPlane

MAX_RUNS = 200
STATES = ("Queued", "Running", "Succeeded", "Failed", "Canceled")

# The part of an error message that says what to do about it (airlock's messages name the fix).
_REMEDIES = (
    re.compile(r"grant it with: ([^)]+)"),
    re.compile(
        r"(?:^|[;.(] *)((?:[Rr]un it again|[Uu]se|[Gg]ive|[Aa]sk|[Ss]et|[Aa]dd|[Rr]efresh|[Cc]heck) [^;.()]{4,})"
    ),
)


def remedy(message: str | None) -> str | None:
    """The action an error message names to fix it (e.g. the ``airlock keyvault set-policy``
    command that grants a missing permission), or None."""
    if not message:
        return None
    for pattern in _REMEDIES:
        found = pattern.search(message)
        if found:
            return found.group(1).strip()
    return None


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def ago(when: datetime | None, now: datetime) -> str:
    """'0.4 s', '12 s', '3 min', '5 h', '2 d'."""
    if when is None:
        return ""
    exact = max(0.0, (now - when).total_seconds())
    seconds = int(exact)
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{exact:.1f} s" if exact < 10 else f"{seconds} s"


def moment(when: datetime | None) -> str:
    """'2026-12-01 18:05:19 UTC'."""
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if when else ""


def size(n: float | None) -> str:
    if n is None:
        return ""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


@dataclass(frozen=True)
class Filters:
    """The overview's filters (query parameters); empty strings mean "any"."""

    rg: str = ""
    registry: str = ""
    pipeline: str = ""
    state: str = ""
    hours: int = 0  # runs started in the last N hours; 0: any time

    def admits(self, row: dict[str, Any], now: datetime) -> bool:
        if self.rg and row["rg"].lower() != self.rg.lower():
            return False
        if self.registry and row["registry"].lower() != self.registry.lower():
            return False
        if self.pipeline and row.get("pipeline", row.get("name", "")).lower() != self.pipeline.lower():
            return False
        if self.state and row.get("state", self.state) != self.state:
            return False
        start = row.get("started")
        return not (self.hours and (start is None or now - start > timedelta(hours=self.hours)))


def _ids(resource_id: str) -> tuple[str, str, str]:
    parts = resource_id.split("/")
    return parts[2], parts[4], parts[8]


def pipeline_row(pipeline: ExportPipeline | ImportPipeline) -> dict[str, Any]:
    sub, rg, registry = _ids(pipeline.id)
    storage = pipeline.storage
    row: dict[str, Any] = {
        "kind": "export" if isinstance(pipeline, ExportPipeline) else "import",
        "name": pipeline.name,
        "id": pipeline.id,
        "sub": sub,
        "rg": rg,
        "registry": registry,
        "storage": storage.uri,
        "vault": storage.keyVaultUri or "",
        "access": storage.storageAccessMode,
        "identity": pipeline.identity.type,
        "principal": pipeline.identity.principalId or ", ".join(pipeline.identity.userAssignedIdentities or {}),
        "options": ", ".join(pipeline.properties.options) or "none",
        "trigger": "",
    }
    if isinstance(pipeline, ImportPipeline):
        row["trigger"] = pipeline.properties.trigger.sourceTrigger.status
    return row


def run_row(run: PipelineRun, now: datetime, executing: set[str] | frozenset[str] = frozenset()) -> dict[str, Any]:
    """A run as the pages show it; ``executing`` (:meth:`RunService.executing`) tells a running run
    from a queued one, which the run's document does not (both are ``Creating`` until they end)."""
    sub, rg, registry = _ids(run.id)
    response = run.properties.response
    started, finished = parse_time(response.startTime), parse_time(response.finishTime)
    state = run.properties.provisioningState
    if state == "Creating":
        state = "Running" if run.id.lower() in executing else "Queued"
    progress = response.progress.model_dump() if response.progress else {}
    extra = response.model_extra or {}
    done, total = progress.get("bytesDone"), progress.get("bytesTotal")
    seconds = ((finished or now) - started).total_seconds() if started else None
    return {
        "name": run.name,
        "id": run.id,
        "sub": sub,
        "rg": rg,
        "registry": registry,
        "pipeline": run.properties.request.pipelineResourceId.rsplit("/", 1)[-1],
        "kind": "export" if run.is_export else "import",
        "state": state,
        "started": started,
        "finished": finished,
        "age": ago(started, now),
        "duration": ago(started, finished) if started and finished else "",
        "seconds": seconds,
        "percentage": progress.get("percentage", "0"),
        "bytes_done": done,
        "bytes_total": total,
        "error": response.pipelineRunErrorMessage or "",
        "remedy": remedy(response.pipelineRunErrorMessage),
        "triggered": "_" in run.name,
        "trigger_stamp": parse_time(((extra.get("trigger") or {}).get("sourceTrigger") or {}).get("timestamp")),
        "cancel_requested": bool(response.cancelRequested),
    }


def _seconds(value: float) -> str:
    return f"{value:.2f} s" if value < 10 else f"{value:.0f} s"


def registries(plane: ControlPlane) -> list[Registry]:
    return plane.registries.all()


def overview(plane: ControlPlane, filters: Filters, now: datetime) -> dict[str, Any]:
    """Registries, pipelines and the latest runs (newest first, at most :data:`MAX_RUNS`) that the
    filters admit, and the values the filter menus offer."""
    regs, pipes, runs = [], [], []
    executing = plane.runs.executing()
    for reg in registries(plane):
        sub, rg, name = _ids(reg.id)
        row = {"name": name, "registry": name, "rg": rg, "sub": sub, "login": reg.properties.loginServer, "id": reg.id}
        regs.append(row)
        for kind in arm.PIPELINE_KINDS:
            pipes += [pipeline_row(p) for p in plane.pipelines.list(sub, rg, name, kind)]
        runs += [run_row(r, now, executing) for r in plane.runs.list(sub, rg, name)]
    runs.sort(key=lambda r: r["started"] or now, reverse=True)
    return {
        "registries": [r for r in regs if Filters(filters.rg, filters.registry).admits(r, now)],
        "pipelines": [p for p in pipes if Filters(filters.rg, filters.registry, filters.pipeline).admits(p, now)],
        "runs": [r for r in runs if filters.admits(r, now)][:MAX_RUNS],
        "choices": {
            "rg": sorted({r["rg"] for r in regs}),
            "registry": sorted({r["name"] for r in regs}),
            "pipeline": sorted({p["name"] for p in pipes}),
            "state": STATES,
        },
    }


def run_detail(plane: ControlPlane, sub: str, rg: str, registry: str, name: str, now: datetime) -> dict[str, Any]:
    """One run: its row, request, results and the worker that ran it. Raises ResourceNotFound."""
    run = plane.runs.get(sub, rg, registry, name)
    state, worker = plane.runs.execution(run.id)
    response = run.properties.response
    extra = response.model_extra or {}
    progress = response.progress.model_dump() if response.progress else {}
    artifacts = run.properties.request.artifacts or []
    finished = response.exportedArtifacts if run.is_export else response.importedArtifacts
    done = set(progress.get("doneArtifacts") or []) | set(finished or [])
    side = extra.get("target" if run.is_export else "source") or {}
    return {
        "row": run_row(run, now, {run.id.lower()} if state == "Running" else frozenset()),
        "api_path": run.id,
        "artifacts": [
            {"reference": a, "state": "done" if a in done else "not done" if response.finishTime else "pending"}
            for a in artifacts[:MAX_RUNS]
        ],
        "finished_artifacts": finished or [],
        "catalog_digest": response.catalogDigest or "",
        "blob": side.get("uri") or side.get("name") or "",
        "volumes": extra.get("volumes") or [],
        "delta": extra.get("delta"),
        "signatures": extra.get("signatures"),
        "blobs_moved": extra.get("blobsMoved"),
        "artifacts_done": progress.get("artifactsDone"),
        "blobs_done": progress.get("blobsDone"),
        "blobs_total": progress.get("blobsTotal"),
        "worker": worker or "",
        "correlation": response.correlationId or "",
        "force_update_tag": run.properties.forceUpdateTag or "",
    }


def triggers(plane: ControlPlane, now: datetime) -> list[dict[str, Any]]:
    """Per import pipeline: its trigger's state, what it imported, passed over (and why), the
    bundles waiting for volumes, and its lag (a blob's last change to its run's start)."""
    out = []
    executing = plane.runs.executing()
    for pipeline in plane.pipelines.import_pipelines():
        sub, rg, registry = _ids(pipeline.id)
        report = pipeline.properties.sourceTriggerReport or {}
        runs = [
            run_row(r, now, executing)
            for r in plane.runs.list(sub, rg, registry)
            if r.properties.request.pipelineResourceId.lower() == pipeline.id.lower() and "_" in r.name
        ]
        runs.sort(key=lambda r: r["started"] or now, reverse=True)
        lags = [
            (r["started"] - r["trigger_stamp"]).total_seconds() for r in runs if r["started"] and r["trigger_stamp"]
        ]
        skipped, waiting = report.get("skipped") or [], report.get("incompleteBundles") or []
        out.append(
            {
                "pipeline": pipeline_row(pipeline),
                "imported": runs[:MAX_RUNS],
                "skipped": skipped,
                "warnings": report.get("warnings") or [],
                "waiting": waiting,
                "seen": len(runs) + len(skipped) + len(waiting),
                "last_change": moment(parse_time(report.get("lastChange"))),
                "lag_last": _seconds(lags[0]) if lags else "",
                "lag_max": _seconds(max(lags)) if lags else "",
            }
        )
    return out
