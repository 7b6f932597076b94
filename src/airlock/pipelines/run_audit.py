"""A pipeline run's entry in the audit trail: written once, when the run ends (whatever the end).

The entry's principal is the pipeline's identity (``identity:<principalId>``), which read the
secrets and moved the bytes; its resources are the run and its pipeline; its artifacts are what
was exported or imported, each with its digest and original reference; its result is the run's
end (``Succeeded``, ``Failed: <message>``, ``Canceled: …``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airlock.pipelines.services.audit import artifact

if TYPE_CHECKING:
    from airlock.pipelines.models import PipelineRun
    from airlock.pipelines.services.audit import AuditService
    from airlock.transfer.export import ExportResult
    from airlock.transfer.import_result import ImportResult


@dataclass
class RunAudit:
    """Who executed a run, and the artifacts it moved (filled in as the run learns them)."""

    principal: str
    artifacts: list[dict[str, Any]] = field(default_factory=list)


def exported_audit(result: ExportResult) -> list[dict[str, Any]]:
    """An export's artifacts for the trail: reference, digest, original reference."""
    return [artifact(a.reference, a.digest, origin=a.origin.reference if a.origin else None) for a in result.artifacts]


def imported_audit(result: ImportResult) -> list[dict[str, Any]]:
    """An import's artifacts for the trail: target reference, digest, original reference."""
    found = (result.provenance or {}).get("artifacts", [])
    return [artifact(a["reference"], a["digest"], origin=a["origin"].get("reference")) for a in found]


def record_run_end(
    audit: AuditService, run: PipelineRun, kind: str, result: str, who: RunAudit | None, fields: dict[str, Any]
) -> None:
    """Append the run's end to the trail: ``export.run`` or ``import.run``."""
    digest = fields.get("catalogDigest")
    audit.record(
        f"{kind}.run",
        principal=who.principal if who else f"pipeline:{run.properties.request.pipelineResourceId}",
        resources=[run.id, run.properties.request.pipelineResourceId],
        artifacts=who.artifacts if who else [],
        catalog_digest=digest if isinstance(digest, str) and digest.startswith("sha256:") else None,
        result=result,
    )
