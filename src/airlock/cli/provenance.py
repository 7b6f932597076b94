"""``import --annotate-provenance`` and the plain transfer commands' audit entries: the option and
what the import command calls after importing (:mod:`airlock.transfer.provenance_referrer`)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from airlock.cli import local_audit
from airlock.errors import AirlockError
from airlock.registry.client import RegistryClient
from airlock.transfer.export import ExportResult
from airlock.transfer.import_result import ImportResult
from airlock.transfer.provenance import ExportContext, os_principal
from airlock.transfer.provenance_referrer import annotate
from airlock.transfer.selection import Selection

AnnotateProvenanceOpt = Annotated[
    bool,
    typer.Option(
        "--annotate-provenance",
        help="Give each imported tagged artifact a referrer (artifactType application/vnd.airlock.provenance.v1+json) "
        "naming its original reference and the catalogDigest; no manifest is changed.",
    ),
]


def export_context(selection: Selection) -> ExportContext:
    """The export record's principal (the OS user) and rules (what the flags and --selection said)."""
    return ExportContext(os_principal(), selection.model_dump(mode="json", by_alias=True, exclude_defaults=True))


def after_import(
    client: RegistryClient, result: ImportResult, out: dict[str, Any], annotate_provenance: bool
) -> tuple[dict[str, Any], AirlockError | None]:
    """The import's output, with ``provenanceReferrers`` when asked for, and the error of recording
    its audit entry, if that failed (:func:`airlock.cli.local_audit.record`).

    Raises:
        RegistryError: a provenance referrer was refused (the import's tags stay).
    """
    digest = str(result.catalog_digest) if result.catalog_digest else None
    if annotate_provenance and result.provenance is not None:
        out = {**out, "provenanceReferrers": annotate(client, result.provenance, digest)}
    arts = [
        {"reference": a["reference"], "digest": a["digest"], "origin": a["origin"].get("reference")}
        for a in (result.provenance or {}).get("artifacts", [])
    ]
    unrecorded = local_audit.record(
        "import", resources=[result.source], artifacts=arts, catalog_digest=digest, failures=result.failures
    )
    return out, unrecorded


def after_export(result: ExportResult) -> AirlockError | None:
    """Record the export's audit entry (not for a dry run, which moves nothing); the error, if that failed."""
    if result.dry_run:
        return None
    return local_audit.record(
        "export",
        resources=[result.target],
        artifacts=[
            {"reference": a.reference, "digest": a.digest, **({"origin": a.origin.reference} if a.origin else {})}
            for a in result.artifacts
        ],
        catalog_digest=str(result.catalog_digest) if result.catalog_digest else None,
        failures=result.failures,
    )


def after_copy(source: str, target: str, result: dict[str, Any]) -> AirlockError | None:
    """Record the copy's audit entry; the error, if that failed."""
    digest = result.get("catalogDigest")
    return local_audit.record(
        "copy", resources=[source, target], catalog_digest=digest if isinstance(digest, str) else None
    )
