"""Strict, streaming reader of transfer archives.

Written by hand rather than with :mod:`tarfile` because a transfer blob crosses a trust boundary:
``tarfile`` accepts pax and GNU extension headers of any size (memory), links, devices and
arbitrary paths, and in stream mode cannot enforce member order. This reader accepts only what
:mod:`airlock.archive.format` writes — regular files and two directories with known names, in the
known order — checks every header checksum, and never uses a member name as a filesystem path.
``catalog_digest`` is the SHA-256 of the catalog member (the archive's ``catalogDigest``); the
reader checks index.json against the catalog, and its callers check every blob, so nothing else
needs hashing (see :mod:`airlock.archive.format`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from airlock.archive.byte_stream import ByteStream, close_chunks
from airlock.archive.format import (
    BLOB_NAME_RE,
    BLOCK,
    CATALOG_NAME,
    CATALOG_VERSION,
    DELTA_FEATURE,
    DIR_NAMES,
    INDEX_NAME,
    LAYOUT_BYTES,
    LAYOUT_NAME,
    MAX_CATALOG_SIZE,
    MAX_INDEX_SIZE,
    MAX_LAYOUT_SIZE,
    MAX_SIGNATURE_SIZE,
    SIGNATURE_NAME,
    SUPPORTED_FEATURES,
    Catalog,
    archive_size,
    member_header,
    padded,
)
from airlock.archive.sniff import not_a_transfer_blob, sniff
from airlock.errors import AirlockError, ArchiveError, first_invalid
from airlock.oci.digest import Digest, Verifier

# Zero padding after the end marker (tar writers pad to 10 KiB records) that we tolerate.
MAX_TRAILER = 1024 * 1024
# How much of a stream is looked at to say what a blob that is not an archive is, without ranged reads.
_SNIFF_HEAD = 64 * 1024


@dataclass(frozen=True)
class Member:
    """A regular-file member: ``name``, data ``size``, and ``offset`` of its data in the archive."""

    name: str
    size: int
    offset: int

    @property
    def blob_digest(self) -> Digest | None:
        m = BLOB_NAME_RE.match(self.name)
        return Digest("sha256", m.group(1)) if m else None


def _octal(field: bytes, what: str) -> int:
    if field and field[0] & 0x80:  # GNU base-256, used for sizes of 8 GiB and more
        return int.from_bytes(bytes([field[0] & 0x7F]) + field[1:], "big")
    text = field.replace(b"\0", b" ").strip()
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise ArchiveError(f"archive has a corrupt tar header ({what} field)") from None


def parse_header(block: bytes, offset: int) -> tuple[str, int, bytes]:
    """Return (name, size, typeflag) of a ustar or GNU header block, after checking its checksum.

    Raises:
        ArchiveError: the checksum is wrong, the block is not ustar, the name is not UTF-8.
    """
    stored = _octal(block[148:156], "checksum")
    computed = sum(block[:148]) + 8 * 32 + sum(block[156:])
    if stored != computed:
        raise ArchiveError(f"archive has a corrupt tar header at byte {offset} (checksum mismatch)")
    if block[257:263] not in (b"ustar\x00", b"ustar "):
        raise ArchiveError(f"archive has a non-ustar header at byte {offset}")
    try:
        name = block[0:100].split(b"\0", 1)[0].decode("utf-8")
        prefix = block[345:500].split(b"\0", 1)[0].decode("utf-8") if block[257:263] == b"ustar\x00" else ""
    except UnicodeDecodeError:
        raise ArchiveError(f"archive member name at byte {offset} is not UTF-8") from None
    if prefix:
        name = f"{prefix}/{name}"
    return name, _octal(block[124:136], "size"), block[156:157]


def catalog_span(first_block: bytes) -> int | None:
    """Where the catalog's data ends, if ``first_block`` (an archive's first 512 bytes) is the header
    of an airlock catalog of an acceptable size; else None (not an airlock archive).

    The catalogDigest is the SHA-256 of bytes ``BLOCK:span``: a copy learns it from the head of the
    stream without parsing the rest.
    """
    if len(first_block) < BLOCK:
        return None
    try:
        name, size, typeflag = parse_header(first_block[:BLOCK], 0)
    except ArchiveError:
        return None
    if name != CATALOG_NAME or typeflag not in (b"0", b"\0") or size > MAX_CATALOG_SIZE:
        return None
    return BLOCK + size


def is_airlock_head(head: bytes) -> bool:
    """Whether a blob beginning with ``head`` (its first 512 bytes, or all of a shorter blob) is to
    be read as an airlock archive — and any fault in it reported as such — rather than described as
    something else (:mod:`airlock.archive.sniff`): its first header is the catalog's, or still
    names the catalog, or is a tar header whose checksum is wrong (a damaged archive)."""
    if catalog_span(head) is not None or head.startswith(CATALOG_NAME.encode() + b"\0"):
        return True
    if len(head) < BLOCK or head[257:262] != b"ustar":
        return False
    try:
        parse_header(head[:BLOCK], 0)
    except ArchiveError:
        return True
    return False


class ArchiveReader:
    """Reads a transfer archive in one pass.

    Usage: ``reader.catalog`` and ``reader.catalog_digest`` (read on construction), then iterate
    :meth:`blobs`, consuming each member's data with :meth:`read_member` or :meth:`stream_member`
    (or not at all: it is then skipped). After the iteration ends, :meth:`finish` checks the end
    of the archive. The reader does not hash blob members: their consumer verifies them against
    the catalog (an unread member is unverified).

    Only the exact form the writer produces is accepted — every header byte for byte (the writer
    is deterministic), zero padding, the writer's ``oci-layout`` — so that the catalogDigest,
    which covers the members' content, pins everything else in the archive too.

    Raises NotATransferBlob (an ArchiveError) on construction when the blob does not begin with
    an airlock catalog, saying what it looks like (:mod:`airlock.archive.sniff`), and ArchiveError
    for anything unexpected in an archive that does: wrong order, unknown or duplicate members,
    links, bad checksums, headers or padding not in the writer's form, oversized JSON, an
    index.json that is not the catalog's, truncation, trailing data. Errors of the underlying
    chunk iterator propagate as they are.
    """

    def __init__(
        self,
        chunks: Iterator[bytes],
        *,
        reopen: Callable[[int], Iterator[bytes]] | None = None,
        read_range: Callable[[int, int], Iterator[bytes]] | None = None,
        on_bytes: Callable[[int], None] = lambda n: None,
        name: str = "the blob",
    ) -> None:
        """``chunks`` is the archive from its first byte. With ``reopen`` (the archive's bytes from
        a given offset, e.g. a ranged storage read), :meth:`skip_member` jumps over a member's data
        instead of reading it; the reader then owns — and closes — the streams it opens, and the
        first one too. ``read_range(offset, length)`` lets the reader look at the tar headers of a
        blob that is not an airlock archive without reading its members (without it, only the
        first 64 KiB of ``chunks`` are looked at). ``on_bytes`` is told how many bytes the reader
        consumes, as it goes (a skipped member's data is not counted). ``name`` (the blob's URI)
        is what the errors about a blob that is not an archive name."""
        self._s = ByteStream(chunks, on_bytes)
        self._reopen = reopen
        self._read_range = read_range
        self._name = name
        self._seen: set[str] = set()
        self._pending = 0  # unread data + padding of the current member
        self._pad = 0  # how much of _pending is padding (which must be zeros)
        self._ended = False
        self._open()

    def _open(self) -> None:
        if not is_airlock_head(self._s.peek(BLOCK)):
            raise not_a_transfer_blob(self._name, sniff(self._look))
        catalog_member = self._next("the catalog")
        if catalog_member is None or catalog_member.name != CATALOG_NAME:
            raise ArchiveError(f"not an airlock archive: the first member must be {CATALOG_NAME}")
        raw_catalog = self.read_member(catalog_member, MAX_CATALOG_SIZE)
        self.catalog = parse_catalog(raw_catalog)
        self._catalog_bytes: bytes | None = raw_catalog  # what a signature is over (archive.signature)
        self.catalog_digest = Digest.of(raw_catalog)
        self.expected_size = archive_size(len(raw_catalog), self.catalog)
        self.signature: bytes | None = None
        if self.catalog.signature is not None:  # a signed bundle: the signature comes next
            sig = self._next(SIGNATURE_NAME)
            if sig is None or sig.name != SIGNATURE_NAME:
                raise ArchiveError(
                    f"archive's catalog is signed but member {SIGNATURE_NAME} is missing or out of order"
                )
            self.signature = self.read_member(sig, MAX_SIGNATURE_SIZE)
        layout = self._next(LAYOUT_NAME)
        if layout is None or layout.name != LAYOUT_NAME:
            raise ArchiveError(f"archive member {LAYOUT_NAME} missing or out of order")
        if self.read_member(layout, MAX_LAYOUT_SIZE) != LAYOUT_BYTES:
            # Exactly the writer's: the catalog does not name this member, so nothing else may vary.
            raise ArchiveError(f"archive's {LAYOUT_NAME} is not {LAYOUT_BYTES.decode()}")
        index = self._next(INDEX_NAME)
        if index is None or index.name != INDEX_NAME:
            raise ArchiveError(f"archive member {INDEX_NAME} missing or out of order")
        raw_index = self.read_member(index, MAX_INDEX_SIZE)
        expected = self.catalog.index
        if len(raw_index) != expected.size or str(Digest.of(raw_index)) != expected.digest:
            raise ArchiveError(f"archive's {INDEX_NAME} is not the one its catalog names (digest or size differs)")
        # Kept as bytes and parsed when asked (``index``): as dicts, a large bundle's index would
        # cost four times as much for the whole import.
        self._raw_index: bytes | None = raw_index
        if not isinstance(self.index.get("manifests"), list):
            raise ArchiveError("archive's index.json has no manifests list")

    @property
    def catalog_bytes(self) -> bytes:
        """The catalog member's exact bytes (what a signature is over), until :meth:`release_head`."""
        if self._catalog_bytes is None:
            raise RuntimeError("the archive's catalog bytes were released")
        return self._catalog_bytes

    @property
    def index(self) -> dict[str, Any]:
        """index.json, parsed anew on each call (a JSON object; checked when the reader opened),
        until :meth:`release_head`."""
        if self._raw_index is None:
            raise RuntimeError("the archive's index.json was released")
        parsed = _json(self._raw_index, INDEX_NAME)
        if not isinstance(parsed, dict):
            raise ArchiveError("archive's index.json has no manifests list")
        return parsed

    def release_head(self) -> None:
        """Let go of the catalog's and index.json's bytes, for a caller that has checked the
        signature and the index and reads on (an import's pass: 1.5 KiB an artifact otherwise held
        to its end). :attr:`catalog_bytes` and :attr:`index` are not available afterwards."""
        self._catalog_bytes = self._raw_index = None

    def _look(self, offset: int, n: int) -> bytes:
        """Up to ``n`` bytes at ``offset`` of a blob being sniffed: from the head of the stream, and
        past it by ``read_range`` when there is more."""
        head = self._s.peek(_SNIFF_HEAD)
        if offset + n <= len(head) or len(head) < _SNIFF_HEAD or self._read_range is None:
            return head[offset : offset + n]
        try:
            chunks = self._read_range(offset, n)
            try:
                return b"".join(chunks)[:n]
            finally:
                close_chunks(chunks)
        except AirlockError:
            return b""  # past the end (a header claiming more than there is), or unreadable: stop there

    @property
    def offset(self) -> int:
        return self._s.offset

    def _skip_pending(self) -> None:
        data = self._pending - self._pad if self._pending > self._pad else 0
        for _ in self._s.pieces(data):
            pass
        self._pending -= data
        self._consume_padding()

    def _consume_padding(self) -> None:
        """Read what is left of the current member's padding (all of ``_pending``); it must be zeros."""
        if self._pending:
            start = self._s.offset
            if self._s.read(self._pending).strip(b"\0"):
                raise ArchiveError(f"archive has data in a member's padding at byte {start}")
            self._pending = 0

    def _next(self, expecting: str) -> Member | None:
        """The next regular-file member (directories are checked and passed over), or None at the end."""
        self._skip_pending()
        while True:
            start = self._s.offset
            block = self._s.read(BLOCK)
            if block == bytes(BLOCK):
                second = self._s.read(BLOCK)
                if second != bytes(BLOCK):
                    raise ArchiveError(f"archive has a lone zero block at byte {start}")
                self._ended = True
                return None
            name, size, typeflag = parse_header(block, start)
            blob = BLOB_NAME_RE.match(name)
            # A blob is remembered by its digest's (interned) text, which the importer's Digests of
            # it share: its name, a string of its own, would be 130 bytes more per blob.
            seen = str(Digest("sha256", blob.group(1))) if blob else name
            if seen in self._seen:
                raise ArchiveError(f"archive has a duplicate member {name!r}")
            self._seen.add(seen)
            if typeflag == b"5":
                if name not in DIR_NAMES or size:
                    raise ArchiveError(f"archive has an unexpected directory member {name[:100]!r}")
                _check_form(block, member_header(name, 0, directory=True), name, start)
                continue
            if typeflag not in (b"0", b"\0"):
                kind = {
                    b"1": "hard link",
                    b"2": "symbolic link",
                    b"x": "pax header",
                    b"g": "pax header",
                    b"L": "GNU long name",
                    b"K": "GNU long link",
                }.get(typeflag, f"type {typeflag!r}")
                raise ArchiveError(f"archive member {name[:100]!r} is a {kind}; only regular files are allowed")
            if name not in (CATALOG_NAME, SIGNATURE_NAME, LAYOUT_NAME, INDEX_NAME) and not BLOB_NAME_RE.match(name):
                raise ArchiveError(f"archive has an unexpected member {name[:100]!r} (expected {expecting})")
            _check_form(block, member_header(name, size), name, start)
            self._pending = padded(size)
            self._pad = self._pending - size
            return Member(name, size, self._s.offset)

    def blobs(self) -> Iterator[Member]:
        """Yield the ``blobs/sha256/<hex>`` members in archive order."""
        while True:
            member = self._next("a blob")
            if member is None:
                return
            if member.blob_digest is None:
                raise ArchiveError(f"archive member {member.name!r} is out of order (after index.json)")
            yield member

    def read_member(self, member: Member, cap: int) -> bytes:
        """The whole data of the current member, refusing members larger than ``cap``."""
        if member.size > cap:
            raise ArchiveError(f"archive member {member.name} is {member.size} bytes, over the {cap}-byte limit")
        return b"".join(bytes(p) for p in self.stream_member(member))

    def stream_member(self, member: Member) -> Iterator[memoryview]:
        """Stream the current member's data. A caller may stop early: the rest is skipped later."""
        if self._pending != padded(member.size) or self._s.offset != member.offset:
            raise ArchiveError(f"archive member {member.name} was already consumed")
        try:
            for piece in self._s.pieces(member.size):
                self._pending -= len(piece)  # kept exact so an early stop leaves the parser in step
                yield piece
        except ArchiveError as exc:  # truncated: say in which member
            raise ArchiveError(f"archive member {member.name}: {exc}") from None
        self._consume_padding()

    def skip_member(self, member: Member) -> bool:
        """Jump over the current member's data without reading it; False (nothing done) when the
        reader cannot reopen its source, or the member's data was already partly read.

        The skipped data is unverified: the caller reads and checks it some other way (a ranged
        read of the same storage). Offsets come from the headers this reader checked, so the jump
        lands on the member's padding (still read and checked) and then the next header, whatever
        the catalog says.
        """
        if self._reopen is None or self._pending != padded(member.size) or self._s.offset != member.offset:
            return False
        # Land on the padding, not past it, so that it is read and checked like any other's.
        target = member.offset + member.size
        self._s.jump(target, self._reopen(target))
        self._pending = self._pad
        return True

    def close(self) -> None:
        """Close the stream the reader reads from, when it owns it (see ``reopen``); idempotent."""
        if self._reopen is not None:
            self._s.close()

    def finish(self) -> int:
        """Check the end marker and trailing padding; return the archive's size in bytes."""
        if not self._ended and self._next("the end of the archive") is not None:
            raise ArchiveError("archive has members after the blobs")
        self._s.drain_zeros(MAX_TRAILER)
        return self._s.offset


def verified_in_order(reader: ArchiveReader, listed: Iterable[tuple[Digest, int]], *, what: str) -> Iterator[Member]:
    """The reader's next blob members, one for each ``(digest, size)`` of ``listed`` in that order,
    each read whole and verified before it is yielded; nothing after the last one listed is read.

    Raises:
        ArchiveError: a member is missing or is not the one listed there (another digest or size),
            or the archive is malformed or cut. IntegrityError: a member's content is not its digest's.
    """
    members = reader.blobs()
    for digest, size in listed:
        member = next(members, None)
        if member is None or member.blob_digest != digest or member.size != size:
            found = "nothing" if member is None else f"member {member.name} ({member.size} bytes)"
            raise ArchiveError(f"{what} {digest} ({size} bytes) is listed next, and the archive has {found}")
        Verifier(digest, size, what=what).check(reader.stream_member(member))
        yield member


def _check_form(block: bytes, expected: bytes, name: str, offset: int) -> None:
    if block != expected:
        raise ArchiveError(
            f"archive member {name[:100]!r} at byte {offset} has a header airlock does not write "
            "(mode, time, owner or format differ)"
        )


def _json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise ArchiveError(f"archive member {what} is not valid JSON") from None


def _check_version(version: object) -> None:
    if version == 1:
        raise ArchiveError(
            "archive catalog has schemaVersion 1, written by an older airlock whose catalogDigest covered the "
            f"whole file; this airlock reads version {CATALOG_VERSION}: export the artifacts again with it"
        )
    if version not in (None, CATALOG_VERSION):
        raise ArchiveError(
            f"archive catalog has schemaVersion {version!r}; this airlock reads version {CATALOG_VERSION} "
            "(upgrade airlock on this side)"
        )


def parse_catalog(data: bytes) -> Catalog:
    """The catalog member's bytes, parsed and checked.

    Raises:
        ArchiveError: not a valid catalog, or of a version or with a required feature this reader lacks.
    """
    try:
        # Straight from the bytes: a 10,000-artifact catalog parsed to dicts first would hold both at once.
        catalog = Catalog.model_validate_json(data)
    except ValidationError as exc:
        doc = _json(data, CATALOG_NAME)
        _check_version(doc.get("schemaVersion") if isinstance(doc, dict) else None)
        where, why = first_invalid(exc)
        raise ArchiveError(f"archive catalog is invalid at {where or 'top level'}: {why}") from None
    unknown = [f for f in catalog.requires if f not in SUPPORTED_FEATURES]
    if unknown:
        raise ArchiveError(
            f"archive requires features this airlock does not support: {', '.join(unknown)} "
            "(written by a newer airlock: upgrade airlock on this side)"
        )
    if (catalog.delta is not None) != (DELTA_FEATURE in catalog.requires):
        # An older reader would skip the delta section and then miss the blobs it lists.
        raise ArchiveError("archive catalog has a delta section without requiring 'delta', or the reverse")
    return catalog
