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
- each later volume is read once and checked against the table (:class:`VolumeChecks`) before
  the import starts: reported under ``checkingVolumes`` meanwhile, and ``mismatchedVolumes`` when
  it is not the table's (an earlier bundle's of the same name, or corrupt) until it is sent again.

A bundle's version, for the trigger's ledger, is its first volume's together with its later
volumes' etags: a volume sent again (after an import named it corrupt) is a new version, imported
again; an unchanged bundle is not.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from airlock.archive.reader import is_airlock_head
from airlock.archive.volumes import VOLUME_CATEGORY, VolumeSpec, parse_volume_name, volume_suffix
from airlock.errors import AirlockError, IntegrityError
from airlock.storage.base import TRANSFER_CATEGORY, BlobInfo, Container
from airlock.transfer.pipelining import close_stream
from airlock.transfer.volume_source import check_volume, read_table

log = logging.getLogger(__name__)


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


class VolumeChecks:
    """Checks each later volume against its first volume's table, once per version, before the
    trigger imports the bundle.

    Every volume but the last is exactly the volume size, so last night's ``batch.tar.002`` passes
    for tonight's by name and size, whichever lands first; an import started then fails on it,
    naming a volume that is still on its way, once for each volume that lands. So each later
    volume is read once (per version: its etag) and its SHA-256 compared with the table's. The
    reads run on a thread of their own, so a poll never waits for one: until its verdict is in,
    the bundle is reported as waiting (``checkingVolumes``); a volume that is not the table's, an
    earlier bundle's or a corrupt one, keeps it waiting (``mismatchedVolumes``) until it is sent
    again. The cost is one more read of each later volume (the import reads it again as it
    imports); a restarted trigger reads them again. One instance per trigger.
    """

    def __init__(self) -> None:
        self._verdicts: dict[tuple[str, str, str, str], Future[bool]] = {}  # (scope, volume, version, digest)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="volume-check")
        self._lock = threading.Lock()

    def verdict(self, scope: str, container: Container, volume: str, info: BlobInfo, spec: VolumeSpec) -> bool | None:
        """Whether ``volume`` (listed as ``info``) is volume ``spec`` of its table; None while it is
        being read (or when the read failed: it is read again at the next poll)."""
        key = (scope, volume, _version(info), str(spec.digest))
        with self._lock:
            found = self._verdicts.get(key)
            if found is None:
                found = self._verdicts[key] = self._pool.submit(_matches, container, volume, spec)
        if not found.done():
            return None
        try:
            return found.result()
        except Exception as exc:  # a failed read (or a bug in one) is not a verdict: read again next poll
            if not isinstance(exc, AirlockError):
                log.warning(
                    "checking volume %s failed (%s); it is read again at the next poll", volume, type(exc).__name__
                )
            with self._lock:
                self._verdicts.pop(key, None)
            return None

    def seen(self, scope: str, listing: Listing) -> None:
        """Forget, after a scan of ``scope``'s listing, the verdicts of volumes no longer listed as they were."""
        listed = {(n, _version(listing.blobs[n])) for n in listing.volumes}
        with self._lock:
            for key in [k for k in self._verdicts if k[0] == scope and (k[1], k[2]) not in listed]:
                self._verdicts.pop(key).cancel()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)  # a read under way is not waited for


def _matches(container: Container, volume: str, spec: VolumeSpec) -> bool:
    try:
        check_volume(container.blob(volume), spec, what=volume)
    except IntegrityError:
        return False
    return True


def waiting_bundle(
    container: Container, name: str, info: BlobInfo, listing: Listing, checks: VolumeChecks, scope: str
) -> dict[str, Any] | None:
    """What the bundle whose first volume is ``name`` still waits for, or None when it is whole
    (or not a bundle at all: an ordinary transfer blob). ``checks`` (with the pipeline ``scope`` it
    keeps its verdicts under) tells whether each later volume is the table's.

    Raises:
        ArchiveError, StorageError: its catalog cannot be read or is malformed.
    """
    table = read_table(container.blob(name), info, short_ok=True)
    if table is None:
        return None
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
    names = {spec.index: name + volume_suffix(spec.index) for spec in table[1:]}
    verdicts = {
        s.index: checks.verdict(scope, container, names[s.index], listing.blobs[names[s.index]], s) for s in table[1:]
    }
    report = _report(name, len(table), [], [], landed)
    if mismatched := [i for i, ok in verdicts.items() if ok is False]:
        report["mismatchedVolumes"] = mismatched
    if checking := [i for i, ok in verdicts.items() if ok is None]:
        report["checkingVolumes"] = checking
    return report if mismatched or checking else None


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
