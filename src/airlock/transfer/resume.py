"""Resuming an export: which members of what an interrupted run staged can be kept.

An export writes its archive through a resumable staged writer (:meth:`Blob.resumable_writer`)
and marks the end of every member. A run killed mid-way (SIGKILL, the network lost) leaves the
staged bytes invisible at the target. ``export --resume`` resolves the artifacts again and builds
the same catalog with the staged run's ``createdAt``; only when that catalog is the one the staged
bytes were written for does it continue (otherwise :class:`ResumeConflict`: a tag moved, or the
selection differs), and then from the end of the last member it can vouch for:

- a local file's partial is read back and every member checked as an import checks it (headers
  byte for byte, content by digest and size, zero padding), up to the first that is cut or wrong;
- Azure's uncommitted blocks cannot be read, so their ids carry what a resume needs (the plan's
  tag: the catalogDigest's first 24 hex digits and ``createdAt`` in microseconds; and on the block
  that ends a member, that member's index). A block is marked only after its member was written
  whole, and blob members are verified by digest as they stream from the registry, so the blocks
  up to the last mark are kept as they are. The export has not the bytes to compare them with
  (it would have to fetch them again): whoever can write the container could replace one under
  its id, and the import, which checks every member by digest, refuses that bundle.

Members kept are neither fetched nor written again; the export reports them as ``resumed``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from airlock.archive.format import BLOCK, DIR_NAMES, LAYOUT_BYTES, Catalog, padded
from airlock.archive.reader import ArchiveReader, verified_in_order
from airlock.archive.writer import ArchiveWriter
from airlock.errors import AirlockError, ArchiveError, IntegrityError, RegistryError, ResumeConflict, StorageError
from airlock.oci.digest import Digest
from airlock.storage.base import Blob, ResumableWriter, Staged
from airlock.transfer.pipelining import close_stream

log = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_HEAD_MEMBERS = 3 + len(DIR_NAMES)  # catalog, oci-layout, index.json, the directories


def _head_members(catalog: Catalog) -> int:
    """Members before the first manifest: a signed bundle's signature follows its catalog."""
    return _HEAD_MEMBERS + (catalog.signature is not None)


@dataclass(frozen=True)
class ResumePoint:
    """Where the export's write starts: after ``keep`` staged bytes, which hold its first
    ``members`` members. ``catalog_bytes`` is the catalog the archive is written for (with the
    staged run's ``createdAt`` when resuming), ``tag`` names that plan to the storage."""

    catalog_bytes: bytes
    tag: str
    keep: int = 0
    members: int = 0
    manifests: int = 0
    head_members: int = _HEAD_MEMBERS

    @property
    def digest(self) -> Digest:
        return Digest.of(self.catalog_bytes)

    @property
    def blobs(self) -> int:
        """How many blobs (configs and layers, in catalog order) are kept: not fetched again."""
        return max(0, self.members - self.head_members - self.manifests)

    def to_json(self) -> dict[str, int]:
        return {"bytes": self.keep, "members": self.members, "blobs": self.blobs}


def plan_tag(digest: Digest, created_at: datetime) -> str:
    """40 letters and digits naming an archive's plan: its catalogDigest's head and ``createdAt``."""
    micros = (created_at - _EPOCH) // timedelta(microseconds=1)
    return f"{digest.hex[:24]}{micros:016d}"


def _created_at(tag: str) -> datetime | None:
    if len(tag) != 40 or not tag[24:].isdigit():
        return None
    return _EPOCH + timedelta(microseconds=int(tag[24:]))


def resume_point(target: Blob, catalog: Catalog, *, resume: bool) -> ResumePoint:
    """The plan for writing ``catalog``'s archive to ``target``, continuing what is staged when ``resume``.

    Raises:
        ResumeConflict: something is staged, but for another catalog (the artifacts resolve to
            other content now, or the selection differs).
        StorageError, StorageAuthError: the staged state cannot be read.
    """
    head = _head_members(catalog)
    fresh = ResumePoint(catalog.to_bytes(), "", manifests=len(catalog.manifests), head_members=head)
    fresh = ResumePoint(
        fresh.catalog_bytes, plan_tag(fresh.digest, catalog.created_at), manifests=fresh.manifests, head_members=head
    )
    if not resume:
        return fresh
    staged = target.staged()
    if staged is None or staged.size == 0:
        log.info("nothing is staged for %s: exporting from the start", target.display)
        return fresh
    if staged.readable:
        return _verified_prefix(target, catalog, staged) or fresh
    return _marked_prefix(target, catalog, staged) or fresh


def _again(catalog: Catalog, created_at: datetime) -> bytes:
    update: dict[str, object] = {"created_at": created_at}
    if catalog.export_record is not None:  # its time is the catalog's createdAt (transfer.provenance)
        update["export_record"] = catalog.export_record.model_copy(update={"time": created_at})
    return catalog.model_copy(update=update).to_bytes()


def _conflict(target: Blob, staged_digest: str, digest: Digest) -> ResumeConflict:
    return ResumeConflict(
        f"cannot resume the export to {target.display}: what is staged there was written for catalog "
        f"{staged_digest}, and the artifacts now resolve to {digest} (a tag moved, or other artifacts or "
        "options were given); export without --resume to start over"
    )


def _marked_prefix(target: Blob, catalog: Catalog, staged: Staged) -> ResumePoint | None:
    created = _created_at(staged.tag)
    if created is None:
        return None
    raw = _again(catalog, created)
    point = ResumePoint(raw, staged.tag, manifests=len(catalog.manifests))
    if point.digest.hex[:24] != staged.tag[:24]:
        raise _conflict(target, f"sha256:{staged.tag[:24]}…", point.digest)
    ends = member_ends(len(raw), catalog)
    for label, end in reversed(staged.marks):
        if 0 <= label < len(ends) and ends[label] == end:
            return ResumePoint(
                raw, staged.tag, keep=end, members=label + 1, manifests=point.manifests,
                head_members=_head_members(catalog),
            )  # fmt: skip
    return None


def _verified_prefix(target: Blob, catalog: Catalog, staged: Staged) -> ResumePoint | None:
    """Read the staged file back, checking member after member; None when not even its head holds."""
    chunks = target.read_staged(0, staged.size)
    try:
        try:
            reader = ArchiveReader(chunks, name=f"the staged part of {target.display}")
        except AirlockError:
            return None  # cut inside its first members: nothing worth keeping
        raw = _again(catalog, reader.catalog.created_at)
        point = ResumePoint(raw, plan_tag(Digest.of(raw), reader.catalog.created_at), manifests=len(catalog.manifests))
        if reader.catalog_digest != point.digest:
            raise _conflict(target, str(reader.catalog_digest), point.digest)
        order = [(Digest.parse(e.digest), e.size) for e in [*catalog.manifests, *catalog.blobs]]
        keep, members = 0, 0
        try:
            for k, member in enumerate(verified_in_order(reader, order, what="staged member")):
                keep, members = member.offset + padded(member.size), _head_members(catalog) + k + 1
        except (ArchiveError, IntegrityError) as exc:
            log.info("the staged part of %s is whole up to byte %d: %s", target.display, keep, exc)
        if not members:
            return None
        return ResumePoint(
            raw, point.tag, keep=keep, members=members, manifests=point.manifests, head_members=_head_members(catalog)
        )
    finally:
        close_stream(chunks)


def member_ends(catalog_size: int, catalog: Catalog) -> list[int]:
    """The offset just past each member (header, data, padding) in the order the export writes them."""
    sizes: list[int | None] = [catalog_size, *([BLOCK] if catalog.signature is not None else [])]
    sizes += [len(LAYOUT_BYTES), catalog.index.size]
    sizes += [None] * len(DIR_NAMES)
    sizes += [m.size for m in catalog.manifests] + [b.size for b in catalog.blobs]
    ends, at = [], 0
    for size in sizes:
        at += BLOCK + (0 if size is None else padded(size))
        ends.append(at)
    return ends


class ResumingArchive(ArchiveWriter):
    """The archive writer of an export that may be resumed: it passes over the members the resume
    keeps (writing nothing, reading none of their chunks) and marks the end of every other."""

    def __init__(self, writer: ResumableWriter, point: ResumePoint) -> None:
        super().__init__(writer.write)
        self.size = point.keep
        self._writer = writer
        self._skip = point.members
        self._index = 0

    def add_dir(self, name: str) -> None:
        if self._index >= self._skip:
            super().add_dir(name)
            self._writer.mark(self._index)
        self._index += 1

    def add_stream(self, name: str, size: int, chunks: Iterable[bytes]) -> None:
        if self._index >= self._skip:
            super().add_stream(name, size, chunks)
            self._writer.mark(self._index)
        self._index += 1


def settle(writer: ResumableWriter, exc: BaseException) -> None:
    """After a failed export: keep what is staged when a resume could use it, else discard it.

    Kept when the source failed (a registry error: unreachable, cut, refused) or the process was
    interrupted; discarded when the target failed (a full disk releases its space) or the run was
    canceled or failed for any other reason.
    """
    if isinstance(exc, RegistryError | KeyboardInterrupt) or (
        isinstance(exc, AirlockError) and exc.transient and not isinstance(exc, StorageError)
    ):
        writer.suspend()
    else:
        writer.abort()
