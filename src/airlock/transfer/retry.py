"""Retrying only what failed (``--retry-failed``): the artifacts of an archive an import keeps."""

from __future__ import annotations

from airlock.errors import UsageError
from airlock.transfer.publish import ArtifactEntry


def select_only(artifacts: list[ArtifactEntry], only: frozenset[str] | None, source: str) -> list[ArtifactEntry]:
    """The ``artifacts`` whose reference is in ``only`` (all of them when ``only`` is None).

    Raises:
        UsageError: ``only`` names a reference the archive does not hold (checked before any upload).
    """
    if only is None:
        return artifacts
    missing = sorted(only - {a.entry.reference for a in artifacts})
    if missing:
        raise UsageError(
            f"--retry-failed: {source} holds no artifact {missing[0]}"
            + (f" (nor {len(missing) - 1} other(s))" if len(missing) > 1 else "")
            + "; nothing was imported"
        )
    return [a for a in artifacts if a.entry.reference in only]
