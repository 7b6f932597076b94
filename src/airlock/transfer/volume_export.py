"""Writing multi-volume bundles (:mod:`airlock.archive.volumes`): export in volumes, and copy a bundle.

Every volume goes through its blob's staged writer (nothing visible until its commit), streaming:
no volume is held whole in memory or on disk. An export writes volumes 2..N first, hashing each
as it streams, then the head with the table of their digests; a failure aborts the volume being
written and deletes the ones already committed (best effort: a process killed meanwhile leaves
later volumes without a head, which no import reads and the trigger reports as waiting for it;
the next export to the same name with OverwriteBlobs replaces them). A copy of a bundle commits
nothing until every volume was read and verified, and commits the head last.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from airlock.archive.format import Catalog, CatalogVolume, archive_size
from airlock.archive.volumes import (
    MAX_VOLUMES,
    PLACEHOLDER_DIGEST,
    VOLUME_CATEGORY,
    VOLUMES_FEATURE,
    head_size,
    split_sizes,
    tail_size,
    volume_suffix,
)
from airlock.archive.writer import ArchiveWriter
from airlock.errors import ArchiveError, BlobExists, BlobNotFound, IntegrityError, StorageError, UsageError
from airlock.oci.digest import Digest
from airlock.storage.base import TRANSFER_CATEGORY, Blob, BlobInfo, BlobWriter, Staged
from airlock.transfer.volume_source import Bundle, check_volume

_OVERWRITE_HINT = " (use the OverwriteBlobs option to replace it)"


def volume_metadata(index: int, count: int) -> dict[str, str]:
    """Storage metadata of volume ``index`` of ``count``: later volumes are not transfer blobs."""
    marks = {"airlockvolume": str(index), "airlockvolumes": str(count)}
    return {**(TRANSFER_CATEGORY if index == 1 else VOLUME_CATEGORY), **marks}


class SplitWriter:
    """A :class:`~airlock.storage.base.BlobWriter` over consecutive volumes: bytes go to
    ``blobs[0]`` until it holds ``sizes[0]``, then to the next, each hashed as it streams.

    Writers are opened as their first byte arrives. Without ``defer`` each volume is committed as it
    fills; with it, all at :meth:`commit`, the first one last. The volumes in ``kept`` (positions,
    with the properties they had when they were checked) are there already: their bytes pass, and
    :meth:`commit` first checks that they are unchanged. :meth:`abort` aborts what is open and
    deletes what this writer committed (best effort; never a kept volume); :meth:`suspend` does
    too, except that with ``defer`` (a copy) the later volumes it committed stay, for a resume to
    keep. ``digests`` and ``infos`` are filled as volumes are committed.
    """

    def __init__(
        self,
        blobs: list[Blob],
        sizes: list[int],
        metadata: list[dict[str, str]],
        *,
        overwrite: bool,
        defer: bool,
        kept: Mapping[int, BlobInfo] | None = None,
    ) -> None:
        self._blobs, self._sizes, self._metadata = blobs, sizes, metadata
        self._overwrite, self._defer, self._kept = overwrite, defer, dict(kept or {})
        self._open: dict[int, BlobWriter] = {}
        self._hashers = [hashlib.sha256() for _ in blobs]
        self._current = 0
        self._filled = 0
        self.digests: dict[int, str] = {}
        self.infos: dict[int, BlobInfo] = {}

    def write(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            if self._current >= len(self._blobs):
                raise ArchiveError(f"more bytes than the {len(self._blobs)} volumes hold")
            writer = self._open.get(self._current)
            if writer is None and self._current not in self._kept:
                blob = self._blobs[self._current]
                writer = blob.writer(overwrite=self._overwrite, metadata=self._metadata[self._current])
                self._open[self._current] = writer
            piece = view[: self._sizes[self._current] - self._filled]
            if writer is not None:  # a kept volume's bytes are the source's, which checks them itself
                writer.write(piece)
                self._hashers[self._current].update(piece)
            self._filled += len(piece)
            view = view[len(piece) :]
            if self._filled == self._sizes[self._current]:
                if not self._defer and writer is not None:
                    self._commit(self._current)
                self._current, self._filled = self._current + 1, 0

    def _commit(self, i: int) -> None:
        self.infos[i] = self._open.pop(i).commit()
        self.digests[i] = "sha256:" + self._hashers[i].hexdigest()

    def commit(self) -> BlobInfo:
        """Commit what is left (the first volume last); returns the properties of all of it as one blob.

        Raises:
            ArchiveError: fewer bytes were written than the volumes hold. BlobExists, StorageError.
        """
        if self._current != len(self._blobs):
            raise ArchiveError(
                f"volume {self._current + 1} is incomplete: {self._filled} of {self._sizes[self._current]}"
            )
        for i, seen in self._kept.items():
            now = self._blobs[i].stat()
            if now is None or (now.etag, now.size) != (seen.etag, seen.size):
                raise StorageError(
                    f"volume {i + 1} {self._blobs[i].display} changed after it was checked to be kept; copy again",
                    blob=self._blobs[i].display,
                )
        for i in sorted(self._open, key=lambda i: (i == 0, i)):
            self._commit(i)
        return BlobInfo(size=sum(self._sizes), metadata=dict(self._metadata[0]))

    def mark(self, label: int) -> None:
        """A checkpoint (:class:`~airlock.storage.base.ResumableWriter`): volumes are not resumable, so none."""

    def suspend(self) -> None:
        """:meth:`abort`, but with ``defer`` the later volumes already committed stay (without a first
        volume nothing reads them; a copy's ``--resume`` checks and keeps them)."""
        if self._defer:
            self.infos.clear()
        self.abort()

    def check_kept(self, data: bytes | memoryview) -> None:
        """Nothing of a bundle is ever kept (a bundle's writer starts at 0): any byte given is too many."""
        if data:
            raise IntegrityError(f"volume 1 {self._blobs[0].display}: nothing was kept to give again")

    def abort(self) -> None:
        for writer in self._open.values():
            writer.abort()
        self._open.clear()
        for i in self.infos:
            with contextlib.suppress(StorageError):
                self._blobs[i].delete()
        self.infos.clear()


class _Counting:
    """A sink that hashes what goes through it, for volume 1's digest in the export's output."""

    def __init__(self, sink: Callable[[bytes], None]) -> None:
        self.sink, self.hasher, self.size = sink, hashlib.sha256(), 0

    def __call__(self, data: bytes) -> None:
        self.hasher.update(data)
        self.size += len(data)
        self.sink(data)


@dataclass
class WrittenBundle:
    catalog_digest: Digest
    size: int
    volumes: list[dict[str, Any]]


def needs_volumes(catalog: Catalog, catalog_bytes: bytes, volume_size: int | None) -> bool:
    """Whether the archive for ``catalog`` is larger than one volume may be."""
    return volume_size is not None and archive_size(len(catalog_bytes), catalog) > volume_size


@dataclass(frozen=True)
class VolumePlan:
    """The volumes an export of a catalog will write: ``sizes`` of volumes 2.., the catalog's bytes
    with placeholder digests in its volume table (``planned``: the real ones have the same length),
    the head's size, and every volume's blob (the head first)."""

    catalog: Catalog
    sizes: list[int]
    planned: bytes
    head: int
    blobs: list[Blob]

    @property
    def count(self) -> int:
        return len(self.blobs)

    def with_table(self, digests: list[str]) -> Catalog:
        """The catalog that lists the volumes, with their ``digests`` (placeholders to plan)."""
        return _with_table(self.catalog, self.sizes, digests)


def _with_table(catalog: Catalog, sizes: list[int], digests: list[str]) -> Catalog:
    table = [CatalogVolume(index=i + 2, size=n, digest=d) for i, (n, d) in enumerate(zip(sizes, digests, strict=True))]
    return catalog.model_copy(update={"requires": [*catalog.requires, VOLUMES_FEATURE], "volumes": table})


def plan_volumes(target: Blob, catalog: Catalog, *, volume_size: int, overwrite: bool) -> VolumePlan:
    """Check that ``catalog``'s archive can be written as volumes of at most ``volume_size`` bytes at
    ``target`` and beside it, and plan them; writes nothing (a dry run stops here).

    Raises:
        UsageError: the head does not fit in ``volume_size``, or more than MAX_VOLUMES are needed.
        BlobExists: a volume exists and not ``overwrite``.
        StorageError: a volume's existence could not be checked.
    """
    sizes = split_sizes(tail_size(catalog), volume_size)
    count = len(sizes) + 1
    if count > MAX_VOLUMES:
        raise UsageError(
            f"export to {target.display} needs {count} volumes of {volume_size} bytes; at most {MAX_VOLUMES}: "
            "use a larger volume size"
        )
    blobs = [target, *(target.suffixed(volume_suffix(i)) for i in range(2, count + 1))]
    planned = _with_table(catalog, sizes, [PLACEHOLDER_DIGEST] * len(sizes)).to_bytes()
    head = head_size(len(planned), catalog)
    if head > volume_size:
        raise UsageError(
            f"volume size {volume_size} bytes cannot hold the first volume of this export ({head} bytes: the "
            f"catalog, index.json and {len(catalog.manifests)} manifests); use a volume size of at least {head}"
        )
    if not overwrite:
        for blob in blobs:
            if blob.stat() is not None:
                raise BlobExists(f"blob {blob.display} already exists{_OVERWRITE_HINT}", blob=blob.display)
    return VolumePlan(catalog, sizes, planned, head, blobs)


def write_volumes(
    target: Blob,
    catalog: Catalog,
    *,
    volume_size: int,
    overwrite: bool,
    write_head: Callable[[ArchiveWriter, bytes], None],
    write_blobs: Callable[[ArchiveWriter], None],
) -> WrittenBundle:
    """Write the archive for ``catalog`` as volumes of at most ``volume_size`` bytes: the head at
    ``target``, volume k at ``target`` + ``.%03d``. ``write_blobs`` writes every config and layer
    member (not the end marker); ``write_head`` the head's members given the catalog's bytes.

    Raises:
        UsageError, BlobExists: as :func:`plan_volumes` (before anything is written).
        Whatever the two writers raise; StorageError.
    """
    plan = plan_volumes(target, catalog, volume_size=volume_size, overwrite=overwrite)
    sizes, count, head, blobs, planned = plan.sizes, plan.count, plan.head, plan.blobs, plan.planned

    rest = SplitWriter(
        blobs[1:], sizes, [volume_metadata(i, count) for i in range(2, count + 1)], overwrite=overwrite, defer=False
    )
    try:
        archive = ArchiveWriter(rest.write)
        write_blobs(archive)
        archive.close()
        rest.commit()
        final = plan.with_table([rest.digests[i] for i in range(len(sizes))]).to_bytes()
        if len(final) != len(planned):  # digests have one length: the head's size was known up front
            raise ArchiveError(f"catalog of {target.display} changed size while its volumes were written")
        writer = target.writer(overwrite=overwrite, metadata=volume_metadata(1, count))
        try:
            counting = _Counting(writer.write)
            write_head(ArchiveWriter(counting), final)
            if counting.size != head:
                raise ArchiveError(f"the first volume of {target.display} is {counting.size} bytes, planned {head}")
            head_info = writer.commit()
        except BlobExists as exc:  # another writer got there first
            writer.abort()
            raise BlobExists(f"{exc}{_OVERWRITE_HINT}", blob=exc.blob) from None
        except BaseException:
            writer.abort()
            raise
    except BaseException:
        rest.abort()
        raise
    if overwrite:
        remove_stale_volumes(target, after=count)
    volumes: list[dict[str, Any]] = [
        {"index": 1, "uri": target.display, "size": head_info.size, "digest": "sha256:" + counting.hasher.hexdigest()}
    ]
    volumes += [
        {"index": i + 2, "uri": blobs[i + 1].display, "size": n, "digest": rest.digests[i]} for i, n in enumerate(sizes)
    ]
    return WrittenBundle(Digest.of(final), head + sum(sizes), volumes)


def remove_stale_volumes(target: Blob, *, after: int) -> None:
    """Delete ``target``'s volumes numbered past ``after``, left by an earlier, larger export to the
    same name that this one (with OverwriteBlobs) replaced; best effort, up to the first gap."""
    for index in range(after + 1, MAX_VOLUMES + 1):
        stale = target.suffixed(volume_suffix(index))
        try:
            if stale.stat() is None:
                return
            stale.delete()
        except StorageError:
            return


class BundleTarget:
    """Where a copy of a :class:`~airlock.transfer.volume_source.Bundle` goes: ``target`` and the
    names beside it, as one write-only :class:`~airlock.storage.base.Blob` (``display``, ``stat``,
    ``suffixed`` are ``target``'s; ``read`` is refused; ``delete`` deletes every volume)."""

    def __init__(self, source: Bundle, target: Blob, *, resume: bool = False) -> None:
        self.source, self.target, self.resume = source, target, resume
        count = len(source.volumes)
        self.blobs = [target, *(target.suffixed(volume_suffix(v.index)) for v in source.volumes[1:])]
        self.sizes = [v.spec.size for v in source.volumes]
        self.metadata = [volume_metadata(i, count) for i in range(1, count + 1)]
        self.kept: dict[int, BlobInfo] = {}  # later volumes there already (resume), by position

    @property
    def kept_bytes(self) -> int:
        return sum(self.sizes[i] for i in self.kept)

    @property
    def display(self) -> str:
        return self.target.display

    def stat(self) -> BlobInfo | None:
        return self.target.stat()

    def read(self, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        raise StorageError(f"bundle target {self.display} is write-only here", blob=self.display)

    def suffixed(self, suffix: str) -> Blob:
        return self.target.suffixed(suffix)

    def delete(self, *, if_match: str | None = None) -> None:
        for blob in reversed(self.blobs[1:]):
            with contextlib.suppress(BlobNotFound):
                blob.delete()
        self.target.delete(if_match=if_match)

    def staged(self) -> Staged | None:
        return None  # a bundle's copy is not resumable: nothing is ever kept for one

    def read_staged(self, offset: int, length: int) -> Iterator[bytes]:
        raise StorageError(f"nothing is staged for bundle target {self.display}", blob=self.display)

    def resumable_writer(
        self, *, overwrite: bool, metadata: dict[str, str], tag: str, keep: int, checkable: bool = False
    ) -> SplitWriter:
        """:meth:`writer` (``keep`` must be 0: :meth:`staged` never offers more)."""
        if keep:
            raise StorageError(f"a copy to bundle target {self.display} cannot be resumed", blob=self.display)
        return self.writer(overwrite=overwrite, metadata=metadata)

    def writer(self, *, overwrite: bool, metadata: dict[str, str]) -> SplitWriter:
        """A deferred :class:`SplitWriter` over every target volume (the head gets ``metadata`` too).

        Without ``overwrite``, a later volume an interrupted copy committed (its first volume, committed
        last, absent) is kept with ``resume`` when it is the source's, by size and digest (it is read
        back to tell): it is not written again.

        Raises:
            BlobExists: a target volume exists, not ``overwrite``, and it is the first volume, or
            not ``resume``, or not the source's (checked for each, now).
        """
        if not overwrite:
            self.kept = self._volumes_there()
        else:
            self.kept = {}
        head_meta = {**metadata, **self.metadata[0]}
        return SplitWriter(
            self.blobs, self.sizes, [head_meta, *self.metadata[1:]], overwrite=overwrite, defer=True, kept=self.kept
        )

    def _volumes_there(self) -> dict[int, BlobInfo]:
        if self.target.stat() is not None:
            raise BlobExists(f"blob {self.target.display} already exists", blob=self.target.display)
        kept: dict[int, BlobInfo] = {}
        count = len(self.blobs)
        for i, blob in enumerate(self.blobs[1:], start=1):
            found = blob.stat()
            if found is None:
                continue
            what = f"volume {i + 1} of {count}"
            if not self.resume:
                raise BlobExists(
                    f"blob {blob.display} already exists ({what}, without the first: left by an interrupted copy? "
                    "--resume keeps it if it is this bundle's, --overwrite replaces it)",
                    blob=blob.display,
                )
            spec = self.source.volumes[i].spec
            try:
                if found.size != spec.size:
                    raise IntegrityError(f"{found.size} bytes, the table says {spec.size}")
                check_volume(blob, spec, what=what)
            except IntegrityError as exc:
                raise BlobExists(
                    f"blob {blob.display} already exists and is not {what} of {self.source.display} ({exc}); "
                    "remove it, or copy with --overwrite",
                    blob=blob.display,
                ) from None
            kept[i] = found
        return kept

    def volumes_json(self, *, head_verified: bool = False) -> list[dict[str, Any]]:
        """The source's volumes (see :meth:`Bundle.to_json`), each with the URI it was copied to
        (``kept``: it was there already, and not written again)."""
        volumes = self.source.to_json(head_verified=head_verified)
        return [
            {**v, "uri": blob.display, **({"kept": True} if i in self.kept else {})}
            for i, (v, blob) in enumerate(zip(volumes, self.blobs, strict=True))
        ]


def copy_target(source: Blob, target: Blob, *, resume: bool = False) -> Blob:
    """``target`` as it is, or every volume beside it when ``source`` is a bundle (see
    :meth:`BundleTarget.writer` for what ``resume`` keeps)."""
    return BundleTarget(source, target, resume=resume) if isinstance(source, Bundle) else target
