"""``-o table`` columns of the data-plane commands (export, import, copy, inspect), as az's table
transformers pick columns per resource: the artifacts are the table, digests shortened, sizes in
IEC units. Each function takes the command's JSON result and returns the rows; the full values
stay in ``-o json``/``tsv`` and ``--query``. The catalogDigest, which an import is given, is not
a column: :func:`catalog_note` says it in full on stderr.
"""

from __future__ import annotations

from typing import Any

from airlock.cli import display
from airlock.cli.table import Row, cell
from airlock.oci.manifest import DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST

_KINDS = {
    OCI_MANIFEST: "OCI image",
    OCI_INDEX: "OCI index",
    DOCKER_MANIFEST: "Docker image",
    DOCKER_MANIFEST_LIST: "Docker list",
}


def _size(value: Any) -> str:
    return display.size(value) if isinstance(value, int) else ""


def _kind(artifact: dict[str, Any]) -> str:
    """The artifactType when there is one (a chart, a signature), else the manifest's kind."""
    artifact_type = artifact.get("artifactType")
    if artifact_type:
        return str(artifact_type)
    media_type = str(artifact.get("mediaType") or "")
    return _KINDS.get(media_type, media_type)


def export_rows(result: dict[str, Any]) -> list[Row]:
    """The ``-o table`` rows of an export result: one row per exported artifact."""
    return [
        {
            "ARTIFACT": cell(a.get("reference")),
            "DIGEST": display.short_digest(cell(a.get("digest"))),
            "TYPE": _kind(a),
            "SIZE": _size(a.get("contentSize")),
        }
        for a in result.get("artifactDetails") or []
    ]


def import_rows(result: dict[str, Any]) -> list[Row]:
    """The ``-o table`` rows of an import result: one row per artifact, its digest (as the result's
    ``provenance`` lists it for each imported one) and what became of it."""
    digests = {
        str(a.get("reference")): str(a.get("digest"))
        for a in ((result.get("provenance") or {}).get("artifacts") or [])
        if isinstance(a, dict)
    }

    def row(ref: str, outcome: str) -> Row:
        return {"ARTIFACT": cell(ref), "DIGEST": display.short_digest(digests.get(ref, "")), "RESULT": outcome}

    rows = [row(ref, "imported") for ref in result.get("importedArtifacts") or []]
    rows += [row(ref, "unchanged") for ref in result.get("unchangedArtifacts") or []]
    rows += [row(ref, f"failed: {msg}") for ref, msg in (result.get("failedArtifacts") or {}).items()]
    return rows


def inspect_rows(result: dict[str, Any]) -> list[Row]:
    """The ``-o table`` rows of an inspect result: one row per artifact the archive holds."""
    return [
        {
            "ARTIFACT": cell(a.get("reference")),
            "DIGEST": display.short_digest(cell(a.get("digest"))),
            "TYPE": _kind(a),
            "SUBJECT": display.short_digest(cell(a.get("subject"))),
        }
        for a in result.get("artifacts") or []
    ]


def copy_rows(result: dict[str, Any]) -> list[Row]:
    """The ``-o table`` rows of a copy result: one row, with whether the copy was verified."""
    return [
        {
            "SOURCE": cell((result.get("source") or {}).get("uri")),
            "TARGET": cell((result.get("target") or {}).get("uri")),
            "SIZE": _size(result.get("size")),
            "VERIFIED": cell(result.get("verified")),
        }
    ]


def catalog_note(result: dict[str, Any]) -> str | None:
    """``catalogDigest sha256:…`` for stderr beside a table (None when the result has none)."""
    digest = result.get("catalogDigest")
    if not digest:
        return None
    return f"catalogDigest {digest}" + (" (every member checked against it)" if result.get("verified") else "")
