"""ACR's pipeline options, with their meaning (acr-transfer spec §4.3), and progress reporting."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Protocol

from airlock.errors import UsageError


class PipelineOption(StrEnum):
    """Options of ExportPipeline / ImportPipeline, spelled as ACR spells them."""

    OVERWRITE_BLOBS = "OverwriteBlobs"  # export: replace an existing target blob
    OVERWRITE_TAGS = "OverwriteTags"  # import: move existing target tags to the imported content
    DELETE_SOURCE_BLOB_ON_SUCCESS = "DeleteSourceBlobOnSuccess"  # import: delete the blob afterwards
    CONTINUE_ON_ERRORS = "ContinueOnErrors"  # both: one failing artifact does not fail the others
    # airlock's own: export signatures, SBOMs and other referrers of each artifact (ACR has no way to).
    INCLUDE_REFERRERS = "IncludeReferrers"


EXPORT_OPTIONS = frozenset(
    {PipelineOption.OVERWRITE_BLOBS, PipelineOption.CONTINUE_ON_ERRORS, PipelineOption.INCLUDE_REFERRERS}
)
IMPORT_OPTIONS = frozenset(
    {
        PipelineOption.OVERWRITE_TAGS,
        PipelineOption.DELETE_SOURCE_BLOB_ON_SUCCESS,
        PipelineOption.CONTINUE_ON_ERRORS,
    }
)


def parse_options(values: Iterable[str], allowed: frozenset[PipelineOption], *, kind: str) -> frozenset[PipelineOption]:
    """Parse option names (case-insensitive, comma- or space-separated).

    Raises:
        UsageError: an unknown option, or one that does not apply to ``kind`` ("export"/"import").
    """
    by_lower = {o.value.lower(): o for o in PipelineOption}
    out: set[PipelineOption] = set()
    for value in values:
        for name in value.replace(",", " ").split():
            opt = by_lower.get(name.lower())
            if opt is None or opt not in allowed:
                names = ", ".join(sorted(o.value for o in allowed))
                raise UsageError(f"option {name!r} does not apply to {kind}; allowed: {names}")
            out.add(opt)
    return frozenset(out)


class Progress(Protocol):
    """Where the engine reports progress. Implementations must be thread-safe and must not raise."""

    def begin(self, total_bytes: int, description: str) -> None:
        """A transfer of ``total_bytes`` starts (called once per operation)."""

    def advance(self, nbytes: int) -> None:
        """``nbytes`` more of it have moved."""

    def note(self, message: str) -> None:
        """Something the user should know (say, referrers included)."""

    def blobs(self, done: int, total: int) -> None:
        """``done`` of the operation's ``total`` blobs are complete: written to the archive (export),
        or present in the target registry, uploaded, mounted or found there (import; a blob needed
        in two repositories counts twice). Called with ``done`` 0 once the total is known."""

    def artifact_done(self, reference: str, digest: str, size: int) -> None:
        """One artifact is complete: exported, every blob of it written to the archive (the archive is
        committed later); imported, its manifests and tag pushed. ``size`` counts its manifests and
        blobs (shared blobs in full for each artifact)."""


class NoProgress:
    """Reports nothing."""

    def begin(self, total_bytes: int, description: str) -> None:
        pass

    def advance(self, nbytes: int) -> None:
        pass

    def note(self, message: str) -> None:
        pass

    def blobs(self, done: int, total: int) -> None:
        pass

    def artifact_done(self, reference: str, digest: str, size: int) -> None:
        pass
