"""An OCI image layout in a tar written by another tool (skopeo ``oci-archive:``, oras, docker >= 25).

Such a tar has no airlock catalog and no fixed member order (skopeo writes ``index.json`` last),
so it cannot be imported in one pass as airlock's own archive is. :func:`scan_layout` reads its
tar headers once — reading through small members, jumping over large ones with a ranged read —
and returns where each blob's data lies, with ``index.json``; the importer then reads each blob it
needs by range and verifies it by digest and size.

The tar crossed a trust boundary too: links, devices, GNU long names, paths that climb out
(``..``) or are absolute, duplicate members and members running past the end of the blob are
refused. Member names are never used as filesystem paths. Pax extended headers (which Go's
archive/tar writes for long names and sizes over 8 GiB) are read for ``path`` and ``size`` only.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from airlock.archive.byte_stream import ByteStream
from airlock.archive.format import (
    BLOB_NAME_RE,
    BLOCK,
    INDEX_NAME,
    LAYOUT_NAME,
    MAX_BLOBS,
    MAX_INDEX_SIZE,
    MAX_LAYOUT_SIZE,
    padded,
)
from airlock.archive.reader import Member, parse_header
from airlock.errors import ArchiveError
from airlock.oci.digest import Digest

MAX_PAX = 64 * 1024
MAX_MEMBERS = MAX_BLOBS + 64
# A gap shorter than this is read through; a longer one is jumped over with a new ranged read.
_READ_THROUGH = 1024 * 1024
_LINKS = {b"1": "hard link", b"2": "symbolic link", b"L": "GNU long name", b"K": "GNU long link name"}


@dataclass(frozen=True)
class LayoutTar:
    """``blobs``: where each ``blobs/sha256/<hex>`` member's data is; ``index``: index.json's bytes."""

    blobs: dict[Digest, Member]
    index: bytes


def scan_layout(read_range: Callable[[int, int], Iterator[bytes]], *, size: int, name: str) -> LayoutTar:
    """Index the OCI layout tar of ``size`` bytes whose ranges ``read_range(offset, length)`` gives
    (``name`` is its URI, for messages). It is read in windows of 1 MiB, so a jump over a large
    member wastes no read-ahead. Blob data is not read, so not verified: the caller checks each
    blob it reads by its digest.

    Raises:
        ArchiveError: a hostile or malformed tar (see the module docstring), no ``oci-layout`` of
            version 1.x, no ``index.json``, a member past the end (truncated), a JSON member over its cap.
        Whatever ``reopen``'s streams raise.
    """

    def reopen(offset: int) -> Iterator[bytes]:
        pos = offset
        while pos < size:
            n = min(_READ_THROUGH, size - pos)
            chunks = read_range(pos, n)
            try:
                yield from chunks
            finally:
                close = getattr(chunks, "close", None)
                if close is not None:
                    close()
            pos += n

    s = ByteStream(reopen(0), lambda n: None)
    try:
        return _scan(s, reopen, size, name)
    finally:
        s.close()


def _scan(s: ByteStream, reopen: Callable[[int], Iterator[bytes]], size: int, name: str) -> LayoutTar:
    where = f"OCI layout {name}"
    blobs: dict[Digest, Member] = {}
    seen: set[str] = set()
    index: bytes | None = None
    layout: bytes | None = None
    pax: dict[str, str] = {}
    for _ in range(MAX_MEMBERS):
        start = s.offset
        if start + BLOCK > size:
            raise ArchiveError(f"{where} is truncated: it ends at byte {size} without the tar end marker")
        block = s.read(BLOCK)
        if block == bytes(BLOCK):
            break  # the end marker; nothing after it is read
        raw_name, member_size, typeflag = parse_header(block, start)
        raw_name = pax.get("path", raw_name)
        if "size" in pax:
            member_size = _pax_size(pax["size"], where)
        pax = {}
        data_at = s.offset
        if data_at + member_size > size:
            raise ArchiveError(
                f"{where}: member {raw_name[:100]!r} claims {member_size} bytes, past the end of the "
                f"{size}-byte blob (truncated?)"
            )
        if typeflag in (b"x", b"g"):
            if member_size > MAX_PAX:
                raise ArchiveError(f"{where}: pax header at byte {start} is over {MAX_PAX} bytes")
            records = _pax(s.read(member_size), where)
            if typeflag == b"x":  # a global header ('g') changes nothing airlock reads
                pax = records
            _skip(s, reopen, data_at + padded(member_size))
            continue
        if typeflag in _LINKS:
            raise ArchiveError(
                f"{where}: member {raw_name[:100]!r} is a {_LINKS[typeflag]}; only regular files are accepted"
            )
        path = _clean(raw_name, where)
        if typeflag == b"5":
            _skip(s, reopen, data_at + padded(member_size))
            continue
        if typeflag not in (b"0", b"\0", b"7"):
            raise ArchiveError(f"{where}: member {path[:100]!r} is of tar type {typeflag!r}; only files are accepted")
        if path in seen:
            raise ArchiveError(f"{where} has a duplicate member {path[:100]!r}")
        seen.add(path)
        blob = BLOB_NAME_RE.match(path)
        if path == LAYOUT_NAME:
            layout = _small(s, member_size, MAX_LAYOUT_SIZE, path, where)
        elif path == INDEX_NAME:
            index = _small(s, member_size, MAX_INDEX_SIZE, path, where)
        elif blob:
            blobs[Digest("sha256", blob.group(1))] = Member(path, member_size, data_at)
        elif path.startswith("blobs/"):
            raise ArchiveError(f"{where}: member {path[:100]!r} is not blobs/sha256/<digest> (only sha256 is read)")
        # Anything else (docker's manifest.json and repositories, say) is not part of the layout: skipped.
        _skip(s, reopen, data_at + padded(member_size))
    else:
        raise ArchiveError(f"{where} has more than {MAX_MEMBERS} members")
    _check_layout_file(layout, where)
    if index is None:
        raise ArchiveError(f"{where} has no {INDEX_NAME}")
    return LayoutTar(blobs, index)


def _clean(raw: str, where: str) -> str:
    """The member's name without ``./`` and trailing ``/``; refuses absolute and climbing paths."""
    path = raw
    while path.startswith("./"):
        path = path[2:]
    path = path.rstrip("/")
    if raw.startswith("/") or "\\" in path or ".." in path.split("/"):
        raise ArchiveError(f"{where}: member {raw[:100]!r} has an unsafe path")
    return path


def _small(s: ByteStream, size: int, cap: int, path: str, where: str) -> bytes:
    if size > cap:
        raise ArchiveError(f"{where}: {path} is {size} bytes, over the {cap}-byte limit")
    return s.read(size)


def _skip(s: ByteStream, reopen: Callable[[int], Iterator[bytes]], target: int) -> None:
    gap = target - s.offset
    if gap > _READ_THROUGH:
        s.jump(target, reopen(target))
    else:
        for _ in s.pieces(gap):
            pass


def _check_layout_file(layout: bytes | None, where: str) -> None:
    if layout is None:
        raise ArchiveError(f"{where} has no {LAYOUT_NAME} file")
    try:
        version = json.loads(layout).get("imageLayoutVersion")
    except (ValueError, UnicodeDecodeError, AttributeError):
        version = None
    if not isinstance(version, str) or not version.startswith("1."):
        raise ArchiveError(f"{where}: {LAYOUT_NAME} does not declare imageLayoutVersion 1.x")


def _pax(data: bytes, where: str) -> dict[str, str]:
    """Records ``"<len> <key>=<value>\\n"`` of a pax extended header."""
    out: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos, pos + 24)
        length = int(data[pos:space]) if space > pos and data[pos:space].isdigit() else 0
        if (
            space < 0
            or length <= space - pos
            or pos + length > len(data)
            or data[pos + length - 1 : pos + length] != b"\n"
        ):
            raise ArchiveError(f"{where}: a pax header is malformed")
        try:
            key, _, value = data[space + 1 : pos + length - 1].decode("utf-8").partition("=")
        except UnicodeDecodeError:
            raise ArchiveError(f"{where}: a pax header is not UTF-8") from None
        out[key] = value
        pos += length
    return out


def _pax_size(text: str, where: str) -> int:
    if not text.isdigit():
        raise ArchiveError(f"{where}: a pax header has an invalid size {text[:30]!r}")
    return int(text)
