"""Provenance: where each artifact of a bundle came from, and the export's record.

An export writes, in its catalog, each artifact's ``origin`` (its full original reference:
source registry, repository, tag, digest) and one ``exportRecord`` (time, exporting principal,
source registry, airlock's version, the selection rules). Both are optional catalog fields, so
older readers ignore them and older catalogs still import (their provenance is then taken from the
catalog's ``source`` and each entry). An import reports the provenance of what it imported
(:func:`import_provenance`), which the run result and the audit trail carry.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from airlock import __version__
from airlock.archive.format import ArtifactOrigin, Catalog, CatalogArtifact, ExportRecord


@dataclass(frozen=True)
class ExportContext:
    """Who exports, and by which rules: ``principal`` (``token:<name>``, ``identity:<principalId>``
    or ``user:<os user>``) and ``selection`` (the Selection's JSON form; None: artifacts only)."""

    principal: str
    selection: Mapping[str, Any] | None = None


def os_principal() -> str:
    """``user:<name>`` of the OS user running this process (the plain CLI's principal)."""
    try:
        return f"user:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER: a container's anonymous uid
        return "user:unknown"


def registry_host(base: str) -> str:
    """``host[:port]`` of a registry URL (``https://r.example.com`` → ``r.example.com``)."""
    return base.split("://", 1)[-1].rstrip("/")


def origin_of(entry: CatalogArtifact, registry: str) -> ArtifactOrigin:
    """The original reference of an exported artifact from ``registry`` (its base URL)."""
    digest = entry.source_digest or entry.digest
    host = registry_host(registry)
    tag = f":{entry.tag}" if entry.tag else ""
    return ArtifactOrigin(
        reference=f"{host}/{entry.repository}{tag}@{digest}",
        registry=registry,
        repository=entry.repository,
        tag=entry.tag,
        digest=digest,
    )


def export_record(context: ExportContext | None, registry: str, created_at: datetime) -> ExportRecord:
    """The catalog's ``exportRecord``; its time is the catalog's ``createdAt`` (so a resumed export,
    which keeps the staged ``createdAt``, makes the same catalog)."""
    context = context or ExportContext(os_principal())
    return ExportRecord(
        time=created_at,
        principal=context.principal,
        sourceRegistry=registry,
        airlockVersion=__version__,
        selection=dict(context.selection) if context.selection is not None else None,
    )


def import_provenance(catalog: Catalog, imported: Iterable[tuple[CatalogArtifact, str]]) -> dict[str, Any]:
    """What an import reports: the bundle's export record and, per imported artifact (its catalog
    entry and the reference it got in the target), its original reference."""
    artifacts = []
    for entry, reference in imported:
        origin = entry.origin or origin_of(entry, catalog.source.registry)  # an older catalog: from its fields
        artifacts.append(
            {
                "reference": reference,
                "digest": entry.digest,
                "origin": origin.to_json(),
            }
        )
    record = catalog.export_record.model_dump(mode="json", by_alias=True) if catalog.export_record else None
    return {"exportRecord": record, "artifacts": artifacts}
