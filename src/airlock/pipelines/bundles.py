"""The source trigger's view of multi-volume bundles (:mod:`airlock.archive.volumes`).

A bundle is imported once every volume has landed: the trigger lists its container, and

- a blob named like a later volume (``batch1.tar.002``) that is one — marked
  ``category=airlock-transfer-volume``, or unmarked (files) and not an airlock archive itself —
  is never imported on its own; it belongs to the blob whose name it extends;
- a first volume is imported only when every volume its table lists is there at its full size;
  until then it is reported under ``incompleteBundles`` with the volumes missing (or still being
  written) and how long it has waited — since the earliest of its volumes landed (its last
  modification), so the figure is the same across restarts and replicas;
- later volumes whose first volume has not landed are reported the same way (volume 1 missing);
- a later volume an earlier bundle of the same name left (:class:`StaleVolumes`) is reported
  under ``staleVolumes`` until this bundle's own replaces it.

A bundle's version, for the trigger's ledger, is its first volume's together with its later
volumes' etags: a volume sent again (after an import named it corrupt) is a new version, imported
again; an unchanged bundle is not.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from airlock.archive.format import Catalog
from airlock.archive.reader import is_airlock_head
from airlock.archive.volumes import VOLUME_CATEGORY, VolumeSpec, parse_volume_name, volume_suffix
from airlock.errors import AirlockError, IntegrityError
from airlock.oci.digest import Digest, Verifier
from airlock.storage.base import TRANSFER_CATEGORY, BlobInfo, Container
from airlock.transfer.pipelining import close_stream
from airlock.transfer.volume_source import read_head


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


class StaleVolumes:
    """Tells the later volumes an earlier bundle of the same name left from this bundle's own.

    Every volume but the last is exactly the volume size, so last night's ``batch.tar.002`` passes
    for tonight's by name and size; an import started then fails on it, naming a volume that is
    still on its way. A later volume is suspect when it landed before the bundle was exported (its
    last modification is older than the catalog's ``createdAt``) or when this trigger first saw it,
    unchanged since, beside another first volume. A suspect volume is read once and checked
    against the table's digest (the verdict is kept per version, so each is read at most once);
    the others are left to the import, which checks every volume as it reads it. One instance per
    trigger; a scan holds the trigger's lock, so it is not locked again here.
    """

    def __init__(self) -> None:
        self._first_seen_beside: dict[tuple[str, str, str], str | None] = {}  # (scope, volume, version) -> head
        self._matches: dict[tuple[str, str, str, str], bool] = {}  # (scope, volume, version, digest) -> ok

    def seen(self, scope: str, listing: Listing) -> None:
        """Record, after a scan of ``scope``'s listing, which first volume each later volume lay
        beside, and forget the volumes no longer listed."""
        listed = {(scope, n, _version(listing.blobs[n])) for n in listing.volumes}
        for gone in [k for k in self._first_seen_beside if k[0] == scope and k not in listed]:
            del self._first_seen_beside[gone]
        for verdict in [k for k in self._matches if k[0] == scope and k[:3] not in listed]:
            del self._matches[verdict]
        for _, n, version in sorted(listed):
            head = listing.volumes[n][0]
            self._first_seen_beside.setdefault((scope, n, version), _head_version(listing, head))

    def stale(
        self, scope: str, container: Container, listing: Listing, head: str, catalog: Catalog, spec: VolumeSpec
    ) -> bool:
        """Whether volume ``spec`` of the bundle whose first volume is ``head`` is another's."""
        volume = head + volume_suffix(spec.index)
        info = listing.blobs[volume]
        version = _version(info)
        landed = _aware(info.last_modified)
        beside = self._first_seen_beside.get((scope, volume, version), _head_version(listing, head))
        if not (landed < _aware(catalog.created_at) or beside not in (None, _head_version(listing, head))):
            return False
        key = (scope, volume, version, str(spec.digest))
        if key not in self._matches:
            try:
                stream = container.blob(volume).read()
                try:
                    Verifier(Digest.parse(str(spec.digest)), spec.size, what=volume).check(stream)
                finally:
                    close_stream(stream)
                self._matches[key] = True
            except IntegrityError:
                self._matches[key] = False
            except AirlockError:
                return True  # unreadable now: not imported on it, and read again at the next poll
        return not self._matches[key]


def waiting_bundle(
    container: Container, name: str, info: BlobInfo, listing: Listing, stale: StaleVolumes, scope: str
) -> dict[str, Any] | None:
    """What the bundle whose first volume is ``name`` still waits for, or None when it is whole
    (or not a bundle at all: an ordinary transfer blob). ``stale`` (and the pipeline ``scope`` it
    keeps its verdicts under) tells volumes an earlier bundle of the same name left.

    Raises:
        ArchiveError, StorageError: its catalog cannot be read or is malformed.
    """
    found_head = read_head(container.blob(name), info, short_ok=True)
    if found_head is None:
        return None
    catalog, table = found_head
    missing: list[int] = []
    partial: list[int] = [1] if info.size < table[0].size else []  # the first volume, still being written
    landed = [info]
    for spec in table[1:]:
        found = listing.blobs.get(name + volume_suffix(spec.index))
        if found is None:
            missing.append(spec.index)
        elif found.size != spec.size:
            partial.append(spec.index)
        else:
            landed.append(found)
    if missing or partial:
        return _report(name, len(table), missing, partial, landed)
    others = [s.index for s in table[1:] if stale.stale(scope, container, listing, name, catalog, s)]
    if not others:
        return None
    return {**_report(name, len(table), [], [], [info]), "staleVolumes": others}


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


def _head_version(listing: Listing, head: str) -> str | None:
    found = listing.blobs.get(head)
    return _version(found) if found is not None else None


def _aware(when: datetime | None) -> datetime:
    if when is None:
        return datetime.max.replace(tzinfo=UTC)  # no time known: never older than anything
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


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
