"""An archive's index.json against its catalog: what other tools read must be what airlock imports."""

from __future__ import annotations

from airlock.archive.format import REF_NAME
from airlock.errors import ArchiveError
from airlock.transfer.publish import ArtifactEntry


def check_index(index: object, artifacts: list[ArtifactEntry]) -> None:
    """index.json must name exactly the catalog's artifacts (other tools read index.json).

    Raises:
        ArchiveError: an entry that is not an object, or an artifact one names and the other does not.
    """
    assert isinstance(index, dict)
    named: set[tuple[str, str]] = set()
    for entry in index.get("manifests", []):
        if not isinstance(entry, dict):
            raise ArchiveError("archive index.json has an entry that is not an object")
        ann = entry.get("annotations") or {}
        named.add((str(ann.get(REF_NAME, "")) if isinstance(ann, dict) else "", str(entry.get("digest", ""))))
    expected = {(a.entry.reference, str(a.digest)) for a in artifacts}
    if named != expected:
        diff = sorted(expected ^ named)
        raise ArchiveError(f"archive index.json and catalog disagree about {diff[0][0] or diff[0][1]}")
