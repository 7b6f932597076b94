"""Reading a multi-volume bundle (:mod:`airlock.archive.volumes`) as the one archive it is.

:func:`open_bundle` takes the first volume and, when its catalog requires volumes, returns a
:class:`Bundle`: a :class:`~airlock.storage.base.Blob` whose bytes are the volumes in order, so
the importer, ``inspect`` and ``copy`` read it as they read any archive (ranged reads are mapped
across volumes). Every volume is stat-ed first, so a missing or wrong-size one is named, with
its index, before anything else happens; a read that covers a whole later volume checks its
SHA-256 against the head's table as it streams, and :func:`diagnosing` turns a content failure
into the volume at fault.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from airlock.archive.format import BLOCK
from airlock.archive.reader import ArchiveReader, catalog_span, parse_catalog, verified_in_order
from airlock.archive.volumes import VolumeSpec, parse_volume_name, requires_volumes, volume_suffix, volume_table
from airlock.errors import AirlockError, ArchiveError, BlobChanged, BlobNotFound, IntegrityError, StorageError
from airlock.oci.digest import Digest, Verifier
from airlock.storage.base import Blob, BlobInfo, BlobWriter, ResumableWriter, Staged
from airlock.transfer.pipelining import close_stream

log = logging.getLogger(__name__)

_RESEND = "send that volume again"


@dataclass(frozen=True)
class Volume:
    """One volume in storage: what the head's table says of it, and the blob that holds it."""

    spec: VolumeSpec
    blob: Blob

    @property
    def index(self) -> int:
        return self.spec.index

    @property
    def end(self) -> int:
        return self.spec.offset + self.spec.size


class Bundle:
    """The volumes of a bundle read as one blob (see the module docstring). Thread-safe for reads.

    ``display`` is the first volume's URI. ``stat`` reports the logical archive's size and the
    first volume's metadata and etag; ``delete`` deletes every volume, the first last, and only when
    each is still what was opened: the first's etag ``if_match``, each later one's as
    :func:`open_bundle` found it (else StorageError, and none is deleted). ``writer`` is refused: bundles are written by
    :mod:`airlock.transfer.volume_export`.
    """

    def __init__(self, head: Blob, head_info: BlobInfo, volumes: list[Volume]) -> None:
        self.head = head
        self.head_info = head_info
        self.volumes = volumes
        self.size = volumes[-1].end
        self.verified: set[int] = set()
        self.fault: IntegrityError | None = None
        self.read_past_head = False
        self.etags: dict[int, str | None] = {}  # each later volume's, as :func:`open_bundle` found it
        self._lock = threading.Lock()

    @property
    def display(self) -> str:
        return self.head.display

    def name(self, volume: Volume) -> str:
        where = "" if volume.blob.display == self.display else f" ({volume.blob.display})"
        return f"volume {volume.index} of {len(self.volumes)} of bundle {self.display}{where}"

    def stat(self) -> BlobInfo | None:
        info = self.head_info
        return BlobInfo(size=self.size, last_modified=info.last_modified, metadata=info.metadata, etag=info.etag)

    def read(self, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        end = self.size if length is None else min(self.size, offset + length)
        if offset > self.size:
            raise StorageError(f"read past the end of bundle {self.display}", blob=self.display)
        return self._read(offset, end)

    def _read(self, offset: int, end: int) -> Iterator[bytes]:
        for volume in self.volumes:
            if volume.end <= offset or volume.spec.offset >= end:
                continue
            start = max(offset, volume.spec.offset) - volume.spec.offset
            stop = min(end, volume.end) - volume.spec.offset
            if volume.index > 1:
                self.read_past_head = True
            whole = start == 0 and stop == volume.spec.size and volume.spec.digest is not None
            hasher = hashlib.sha256() if whole else None
            chunks = volume.blob.read(start, stop - start)
            got = 0
            try:
                for chunk in chunks:
                    got += len(chunk)
                    if hasher is not None:
                        hasher.update(chunk)
                    yield chunk
            finally:
                close_stream(chunks)
            if got != stop - start:
                raise ArchiveError(f"{self.name(volume)} ended after {got} of {stop - start} bytes; {_RESEND}")
            if hasher is not None:
                self._check(volume, "sha256:" + hasher.hexdigest())

    def _check(self, volume: Volume, digest: str) -> None:
        if digest == volume.spec.digest:
            with self._lock:
                self.verified.add(volume.index)
            return
        fault = IntegrityError(
            f"{self.name(volume)} is corrupt: its content hashes to {digest}, the first volume's table says "
            f"{volume.spec.digest}; {_RESEND}"
        )
        with self._lock:
            self.fault = self.fault or fault
        raise fault

    def head_fault(self) -> AirlockError | None:
        """What is wrong in the first volume itself, which the table has no digest for (the catalog's
        digest pins it, but nothing says what that should be): it is read alone through the strict
        reader, its manifests checked by digest and size as the catalog lists them. None when it
        reads whole; the error (an ArchiveError or IntegrityError) otherwise."""
        head = self.volumes[0]
        chunks = self._read(0, head.end)
        try:
            reader = ArchiveReader(chunks, name=head.blob.display)
            listed = [(Digest.parse(m.digest), m.size) for m in reader.catalog.manifests]
            for _ in verified_in_order(reader, listed, what="manifest"):
                pass
        except (ArchiveError, IntegrityError) as exc:
            return exc
        finally:
            close_stream(chunks)
        return None

    def find_corrupt(self) -> IntegrityError | None:
        """The first later volume not yet verified whose content does not match the table (each is
        read whole until one does not), or None when they all match."""
        if self.fault is not None:
            return self.fault
        for volume in self.volumes[1:]:
            if volume.index in self.verified:
                continue
            chunks = self._read(volume.spec.offset, volume.end)
            try:
                for _ in chunks:
                    pass
            except IntegrityError as exc:
                return exc
            finally:
                close_stream(chunks)
        return None

    def writer(self, *, overwrite: bool, metadata: dict[str, str]) -> BlobWriter:
        raise StorageError(f"bundle {self.display} is read-only here", blob=self.display)

    def staged(self) -> Staged | None:
        return None  # a bundle is read here, never written

    def read_staged(self, offset: int, length: int) -> Iterator[bytes]:
        raise StorageError(f"nothing is staged for bundle {self.display}", blob=self.display)

    def resumable_writer(
        self, *, overwrite: bool, metadata: dict[str, str], tag: str, keep: int, checkable: bool = False
    ) -> ResumableWriter:
        raise StorageError(f"bundle {self.display} is read-only here", blob=self.display)

    def suffixed(self, suffix: str) -> Blob:
        return self.head.suffixed(suffix)

    def delete(self, *, if_match: str | None = None) -> None:
        now = self.head.stat()
        if now is None:
            raise BlobNotFound(f"blob {self.display} does not exist")
        if if_match is not None and now.etag != if_match:
            raise BlobChanged(f"blob {self.display} changed since it was read; not deleted", blob=self.display)
        # A later volume replaced since it was opened (the next bundle of this name landing while
        # this one was imported) is not ours to delete either: then none is.
        for volume in self.volumes[1:]:
            found = volume.blob.stat()
            if found is not None and found.etag != self.etags.get(volume.index, found.etag):
                raise BlobChanged(
                    f"{self.name(volume)} changed since it was read; no volume was deleted", blob=volume.blob.display
                )
        # Later volumes first: an interruption leaves the head (already imported, known to the
        # trigger's ledger), never later volumes without their head.
        for volume in reversed(self.volumes[1:]):
            with contextlib.suppress(BlobNotFound):
                volume.blob.delete(if_match=self.etags.get(volume.index))
        self.head.delete(if_match=if_match)

    def to_json(self, *, head_verified: bool = False) -> list[dict[str, Any]]:
        """Each volume: index, URI, size, digest (the first: none, the catalogDigest pins it), and
        whether this process verified it whole: a later volume against the table's digest, the
        first by the caller's pass over every member (``head_verified``)."""
        return [
            {
                "index": v.index,
                "uri": v.blob.display,
                "size": v.spec.size,
                **({"digest": v.spec.digest} if v.spec.digest else {}),
                "verified": head_verified if v.index == 1 else v.index in self.verified,
            }
            for v in self.volumes
        ]


def read_table(
    head: Blob, info: BlobInfo, *, check_catalog: bool = True, short_ok: bool = False
) -> list[VolumeSpec] | None:
    """The volume table in the catalog at the start of ``head`` (``info``: its properties), or None
    when it is not an airlock archive, needs no volumes, or already holds them all (the volumes
    ``cat`` together). Reads only the catalog. Without ``check_catalog``, a catalog that does not
    require volumes is not parsed whole, so not checked: for a caller whose reader checks it next.
    With ``short_ok``, a first volume shorter than the table says (still being written) is not an
    error: the caller compares its size.

    Raises:
        ArchiveError: the catalog is malformed, or the blob is neither the first volume nor the whole bundle.
        StorageError: it cannot be read.
    """
    first = _read(head, 0, min(BLOCK, info.size))
    span = catalog_span(first)
    if span is None or span > info.size:
        return None
    data = _read(head, BLOCK, span - BLOCK)
    if not check_catalog and requires_volumes(data) is False:
        return None
    catalog = parse_catalog(data)
    table = volume_table(catalog, span - BLOCK)
    if table is None:
        return None
    whole = table[-1].offset + table[-1].size
    if info.size == whole:
        return None  # every volume in one blob (cat batch1.tar batch1.tar.[0-9][0-9][0-9] > all.tar): an archive
    if info.size != table[0].size and not (short_ok and info.size < table[0].size):
        raise ArchiveError(
            f"transfer blob {head.display} is {info.size} bytes: neither volume 1 of its {len(table)}-volume bundle "
            f"({table[0].size} bytes) nor the whole bundle ({whole}); copy it again"
        )
    return table


def check_volume(blob: Blob, spec: VolumeSpec, *, what: str) -> None:
    """Read ``blob`` whole and check that it is volume ``spec`` of its table, by size and SHA-256.

    Raises:
        IntegrityError: it is not (or the table has no digest for it: the first volume has none).
        What ``blob.read`` raises.
    """
    if spec.digest is None:
        raise IntegrityError(f"{what}: the table has no digest for volume {spec.index}")
    stream = blob.read()
    try:
        Verifier(Digest.parse(spec.digest), spec.size, what=what).check(stream)
    finally:
        close_stream(stream)


def open_bundle(source: Blob, *, check_catalog: bool = True) -> Blob:
    """``source`` itself, or — when it is the first volume of a bundle — the :class:`Bundle` of all
    its volumes, each stat-ed now. ``check_catalog``: as for :func:`read_table`.

    Raises:
        BlobNotFound: ``source``, or one or more volumes, do not exist (naming each by index and URI).
        ArchiveError: a volume's size is not the table's (naming it), or the table is malformed.
    """
    if isinstance(source, Bundle):
        return source
    info = source.stat()
    if info is None:
        return source  # the caller says it is missing, in its own words
    table = read_table(source, info, check_catalog=check_catalog)
    if table is None:
        return source
    volumes = [
        Volume(spec, source if spec.index == 1 else source.suffixed(volume_suffix(spec.index))) for spec in table
    ]
    bundle = Bundle(source, info, volumes)
    missing: list[Volume] = []
    for volume in volumes[1:]:
        found = volume.blob.stat()
        if found is None:
            missing.append(volume)
            continue
        bundle.etags[volume.index] = found.etag
        if found.size != volume.spec.size:
            raise ArchiveError(
                f"{bundle.name(volume)} is {found.size} bytes, the first volume's table says {volume.spec.size} "
                f"({'truncated' if found.size < volume.spec.size else 'data appended'}); {_RESEND}"
            )
    if missing:
        which = ", ".join(str(v.index) for v in missing)
        where = ", ".join(v.blob.display for v in missing)
        plural = "s" if len(missing) > 1 else ""
        raise BlobNotFound(
            f"volume{plural} {which} of {len(volumes)} of bundle {source.display} missing ({where} "
            f"{'do' if plural else 'does'} not exist); send {'those volumes' if plural else 'that volume'} again"
        )
    return bundle


@contextlib.contextmanager
def diagnosing(source: Blob, *, outcome: str = "") -> Iterator[None]:
    """Name the volume at fault when reading ``source`` (a :class:`Bundle`) fails on its content.

    A failure after the reads went past the head (a blob's digest, a tar header, truncation) is
    raised as the first volume whose content does not match the head's table, when there is one,
    followed by ``outcome`` (what the caller left undone, e.g. "; no tag was written"). Otherwise,
    and for a failure within the head, the first volume is read again on its own
    (:meth:`Bundle.head_fault`): when it is damaged, that is raised, naming it. Any other failure (a
    signature policy's refusal, a registry's answer, the later volumes and the head all whole) is
    raised as it is.
    """
    try:
        yield
    except (IntegrityError, ArchiveError) as exc:
        if not isinstance(source, Bundle):
            raise
        try:
            fault: AirlockError | None = source.find_corrupt() if source.read_past_head else None
            if fault is None and (head := source.head_fault()) is not None:
                fault = type(head)(f"{source.name(source.volumes[0])} is corrupt: {head}; {_RESEND}")
        except AirlockError as again:  # the volumes could not be read again: the failure stands as it was
            log.info("could not tell which volume of %s is at fault: %s", source.display, again)
            raise exc from None
        if fault is None or (str(fault) in str(exc) and outcome.strip("; ") in str(exc)):
            raise  # not a damaged volume, or already named with what the caller left undone
        raise type(fault)(f"{fault}{outcome}") from None


def volume_note(source: Blob) -> str | None:
    """For a blob named like a later volume (``batch1.tar.002``) that is not an archive itself: what
    a copy of it is, and how to copy the bundle instead."""
    name = source.display.rsplit("/", 1)[-1]
    parsed = parse_volume_name(name)
    if parsed is None:
        return None
    return (
        f"{name} is named like volume {parsed[1]} of bundle {parsed[0]}: copied as it is, unverified; copy the "
        f"first volume ({parsed[0]}) instead to copy every volume, each verified"
    )


def _read(blob: Blob, offset: int, n: int) -> bytes:
    if n <= 0:
        return b""
    chunks = blob.read(offset, n)
    try:
        return b"".join(chunks)[:n]
    finally:
        close_stream(chunks)
