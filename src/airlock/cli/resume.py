"""The options of resume and retry (``export --resume``, ``copy --resume``, ``--retry-failed``), and
reading the result a retry starts from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from airlock.errors import UsageError
from airlock.oci.digest import Digest

ResumeOpt = Annotated[
    bool,
    typer.Option(
        "--resume",
        help="Continue what an interrupted run staged for this target (verified member by member), fetching "
        "only what it lacks; refused if the artifacts now resolve to another catalog.",
    ),
]
CopyResumeOpt = Annotated[
    bool,
    typer.Option(
        "--resume",
        help="Continue what an interrupted copy staged for this target, reading the source from there on.",
    ),
]
RetryFailedOpt = Annotated[
    Path | None,
    typer.Option(
        "--retry-failed",
        help="The JSON output of an earlier run with ContinueOnErrors: run again for its failedArtifacts only.",
        dir_okay=False,
    ),
]


def failed_artifacts(path: Path, *, kind: str) -> tuple[list[str], str | None]:
    """The ``failedArtifacts`` references of the ``kind`` ("export" or "import") result at ``path``,
    and its catalogDigest (None when it names none).

    Raises:
        UsageError: the file cannot be read, is not such a result, or lists no failed artifact.
    """
    flag = f"--retry-failed {path}"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"{flag}: cannot read it: {exc.strerror}") from None
    except ValueError:
        raise UsageError(f"{flag}: not JSON (give the file an earlier `airlock {kind} -o json` printed)") from None
    wanted = "target" if kind == "export" else "importedArtifacts"
    if not isinstance(doc, dict) or wanted not in doc or "failedArtifacts" not in doc:
        missing = [k for k in (wanted, "failedArtifacts") if k not in doc] if isinstance(doc, dict) else []
        lacks = f"it has no {' and no '.join(missing)}" if missing else "it is not a JSON object"
        raise UsageError(f"{flag}: not the output of `airlock {kind}` ({lacks})")
    if not isinstance(doc["failedArtifacts"], dict):
        raise UsageError(f"{flag}: its failedArtifacts is not an object of reference: reason")
    failed = [str(ref) for ref in doc["failedArtifacts"]]
    if not failed:
        raise UsageError(f"{flag}: no artifact failed in that run; nothing to retry")
    digest = doc.get("catalogDigest")
    return failed, digest if isinstance(digest, str) else None


def retried_artifacts(artifacts: list[str] | None, retry_failed: Path | None, *, rules: bool) -> list[str]:
    """The artifacts an export names: ``--artifacts``, or the failed ones of ``--retry-failed``'s
    result (``rules``: whether ``--repository`` or ``--selection`` was given too).

    Raises:
        UsageError: ``--retry-failed`` with other artifacts or rules, or what :func:`failed_artifacts` raises.
    """
    if retry_failed is None:
        return list(artifacts or [])
    if artifacts or rules:
        raise UsageError("give --artifacts (or --repository, --selection) or --retry-failed, not both")
    return failed_artifacts(retry_failed, kind="export")[0]


def import_selection(retry_failed: Path | None, expected: Digest | None) -> tuple[frozenset[str] | None, Digest | None]:
    """What an import takes: with ``--retry-failed``, the failed artifacts of that result only, and
    the result's catalogDigest as the one the archive must have (so it is the same bundle).

    Raises:
        UsageError: the result names no catalogDigest (an OCI layout's), or another one than
            ``--catalog-digest``; or what :func:`failed_artifacts` raises.
    """
    if retry_failed is None:
        return None, expected
    failed, digest = failed_artifacts(retry_failed, kind="import")
    if digest is None:
        raise UsageError(f"--retry-failed {retry_failed}: it names no catalogDigest (retry takes airlock archives)")
    if expected is not None and str(expected) != digest:
        raise UsageError(f"--catalog-digest {expected} is not the catalogDigest of --retry-failed's result ({digest})")
    try:
        return frozenset(failed), Digest.parse(digest)
    except UsageError as exc:
        raise UsageError(f"--retry-failed {retry_failed}: its catalogDigest: {exc}") from None
