"""What the dashboard's Audit page shows: the trail's entries (newest first, a bounded page), its
chain's verification, and the export of a period, all read through the control plane's
:class:`~airlock.pipelines.services.audit.AuditService`, the service ``GET /airlock/audit`` and
its ``/verify`` route call. The trail holds ids, URIs, digests and outcomes, never a secret value.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlencode

from airlock.api.routes.audit import PAGE
from airlock.api.ui.views import moment, parse_time
from airlock.pipelines.audit_chain import AuditEntry
from airlock.pipelines.services.audit import AuditService

# An ARM id: the subscription and the provider's namespace are left out of a row (the title has them).
_ARM_ID = re.compile(r"^/subscriptions/[^/]+/resourceGroups/([^/]+)/providers/[^/]+/(.+)$", re.IGNORECASE)
_UNSAFE = re.compile(r"[^0-9A-Za-z._-]+")


@dataclass(frozen=True)
class AuditFilters:
    """The page's filters (query parameters, as ``airlock audit list`` takes them); "" means any."""

    since: str = ""
    until: str = ""
    action: str = ""

    def query(self, **more: str) -> str:
        """These filters (and ``more``) as a query string, without the empty ones."""
        return urlencode({k: v for k, v in {**asdict(self), **more}.items() if v})

    def filename(self) -> str:
        """The export's file name: the period it covers, in characters every file system takes."""
        parts = ["airlock-audit", self.since or "start", self.until or "now", self.action.replace("*", "")]
        return _UNSAFE.sub("_", "-".join(p for p in parts if p)).strip("_") + ".jsonl"


def short_digest(digest: str | None) -> str:
    """'sha256:0123456789ab' (the algorithm and 12 hex digits)."""
    if not digest:
        return ""
    algorithm, _, hexes = digest.partition(":")
    return f"{algorithm}:{hexes[:12]}" if hexes else digest[:19]


def resource_label(resource: str) -> str:
    """A resource as a row shows it: an ARM id as 'rg · registries/reg/pipelineRuns/run' (the rest as is)."""
    found = _ARM_ID.match(resource)
    return f"{found.group(1)} · {found.group(2)}" if found else resource


def entry_row(entry: AuditEntry) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "time": moment(parse_time(entry.time)) or entry.time,
        "principal": entry.principal,
        "action": entry.action,
        "resources": [{"label": resource_label(r), "full": r} for r in entry.resources],
        "artifacts": [
            {
                "reference": str(a.get("reference") or ""),
                "digest": short_digest(a.get("digest")),
                "full": str(a.get("digest") or ""),
            }
            for a in entry.artifacts
        ],
        "catalog": short_digest(entry.catalog_digest),
        "catalog_full": entry.catalog_digest or "",
        "result": entry.result,
        "failed": entry.result.startswith(("Failed", "Denied")),
    }


def audit(service: AuditService, filters: AuditFilters, before: int | None) -> dict[str, Any]:
    """One page of entries (at most :data:`PAGE`, newest first, ``seq`` < ``before``) and the
    whole chain's verification. Raises UsageError: a filter's time does not parse."""
    entries = service.newest(before=before, top=PAGE, since=filters.since, until=filters.until, action=filters.action)
    report = service.verify()
    older = filters.query(before=str(entries[-1].seq)) if len(entries) == PAGE else None
    return {
        "rows": [entry_row(e) for e in entries],
        "chain": {**report.to_json(), "reason": report.broken, "broken_seq": report.broken_seq},
        "older": older,
        "newer": filters.query() if before is not None else None,
        "export": filters.query(),
        "page_size": PAGE,
    }
