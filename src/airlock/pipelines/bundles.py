"""The source trigger's view of multi-volume bundles (:mod:`airlock.archive.volumes`).

A bundle is imported once every volume has landed: the trigger lists its container, and

- a blob named like a later volume (``batch1.tar.002``) that is one — marked
  ``category=airlock-transfer-volume``, or unmarked (files) and not an airlock archive itself —
  is never imported on its own; it belongs to the blob whose name it extends;
- a first volume is imported only when every volume its table lists is there at its full size;
  until then it is reported under ``incompleteBundles`` with the volumes missing (or still being
  written) and how long it has waited — since the earliest of its volumes landed (its last
  modification), so the figure is the same across restarts and replicas;
- later volumes whose first volume has not landed are reported the same way (volume 1 missing).

A bundle's version, for the trigger's ledger, is its first volume's together with its later
volumes' etags: a volume sent again (after an import named it corrupt) is a new version, imported
again; an unchanged bundle is not.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from airlock.archive.reader import is_airlock_head
from airlock.archive.volumes import VOLUME_CATEGORY, parse_volume_name, volume_suffix
from airlock.errors import AirlockError
from airlock.storage.base import TRANSFER_CATEGORY, BlobInfo, Container
from airlock.transfer.pipelining import close_stream
from airlock.transfer.volume_source import read_table


@dataclass
class Listing:
    """One poll's listing of a container, with its later volumes told apart from transfer blobs."""

    blobs: dict[str, BlobInfo]
    volumes: dict[str, tuple[str, int]] = field(default_factory=dict)  # name -> (first volume's name, index)

    def version(self, name: str, base: str) -> str:
        """``base`` (the blob's own version) with the etags of the later volumes beside it, if any."""
        mine = sorted((index, n) for n, (head, index) in self.volumes.items() if head == name)
        if not mine:
            return base
        etags = ";".join(f"{index}={_version(self.blobs[n])}" for index, n in mine)
        return f"{base}+volumes:{hashlib.sha256(etags.encode()).hexdigest()[:16]}"


def list_volumes(container: Container, entries: list[tuple[str, BlobInfo]]) -> Listing:
    """The listing, with every blob that is a later volume of some bundle set apart."""
    listing = Listing(dict(entries))
    for name, info in entries:
        parsed = parse_volume_name(name)
        if parsed is None:
            continue
        category = info.metadata.get("category")
        if category == VOLUME_CATEGORY["category"]:
            listing.volumes[name] = parsed
        elif category is None and not _is_archive(container, name, info):
            listing.volumes[name] = parsed  # files carry no metadata: content and name tell
    return listing


def waiting_bundle(container: Container, name: str, info: BlobInfo, listing: Listing) -> dict[str, Any] | None:
    """What the bundle whose first volume is ``name`` still waits for, or None when it is whole
    (or not a bundle at all: an ordinary transfer blob).

    Raises:
        ArchiveError, StorageError: its catalog cannot be read or is malformed.
    """
    table = read_table(container.blob(name), info)
    if table is None:
        return None
    missing: list[int] = []
    partial: list[int] = []
    landed = [info]
    for spec in table[1:]:
        found = listing.blobs.get(name + volume_suffix(spec.index))
        if found is None:
            missing.append(spec.index)
        elif found.size != spec.size:
            partial.append(spec.index)
        else:
            landed.append(found)
    if not missing and not partial:
        return None
    return _report(name, len(table), missing, partial, landed)


def orphan_volumes(listing: Listing) -> list[dict[str, Any]]:
    """Bundles of which later volumes landed but not the first one."""
    by_head: dict[str, list[str]] = {}
    for volume, (head, _index) in listing.volumes.items():
        if head not in listing.blobs:
            by_head.setdefault(head, []).append(volume)
    return [
        _report(head, None, [1], [], [listing.blobs[v] for v in volumes]) for head, volumes in sorted(by_head.items())
    ]


def _report(
    name: str, count: int | None, missing: list[int], partial: list[int], landed: list[BlobInfo]
) -> dict[str, Any]:
    times = [i.last_modified for i in landed if i.last_modified is not None]
    since = min(times) if times else datetime.now(UTC)
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return {
        "blob": name,
        **({"volumes": count} if count is not None else {}),
        "missingVolumes": missing,
        **({"incompleteVolumes": partial} if partial else {}),
        "waitingSince": since.isoformat().replace("+00:00", "Z"),
        "waitingSeconds": max(0, int((datetime.now(UTC) - since).total_seconds())),
    }


def _version(info: BlobInfo) -> str:
    return info.etag or f"{info.size}-{info.last_modified}"


def _is_archive(container: Container, name: str, info: BlobInfo) -> bool:
    """Whether an unmarked blob named like a volume is an airlock archive of its own (``nightly.002``)."""
    if info.metadata.get("category") == TRANSFER_CATEGORY["category"]:
        return True
    try:
        stream = container.blob(name).read(0, min(512, info.size))
        try:
            head = b"".join(stream)
        finally:
            close_stream(stream)
    except AirlockError:
        return False  # unreadable now: judged as a volume, never imported on its own
    return is_airlock_head(head)
