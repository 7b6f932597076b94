"""What a blob that is not an airlock transfer archive looks like, from its head.

A newcomer hands airlock whatever tar they have: a skopeo ``oci-archive:``, a ``docker save``,
a gzipped archive, an empty upload. :func:`sniff` names it from the first bytes and the first few
tar headers (read at their offsets, so a large first member costs nothing), and
:func:`not_a_transfer_blob` turns that into the one-line error every reader of transfer blobs
raises, with what to do instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from airlock.archive.format import BLOCK, CATALOG_NAME, padded
from airlock.archive.volumes import lone_volume_hint
from airlock.errors import NotATransferBlob

EMPTY = "empty"
GZIP = "gzip"
ZSTD = "zstd"
XZ = "xz"
BZIP2 = "bzip2"
ZIP = "zip"
DOCKER_SAVE = "docker-save"
OCI_LAYOUT = "oci-layout"
TAR = "tar"
UNKNOWN = "unknown"
KINDS = (EMPTY, GZIP, ZSTD, XZ, BZIP2, ZIP, DOCKER_SAVE, OCI_LAYOUT, TAR, UNKNOWN)

_MAGIC = (
    (b"\x1f\x8b", GZIP),
    (b"\x28\xb5\x2f\xfd", ZSTD),
    (b"\xfd7zXZ\x00", XZ),
    (b"BZh", BZIP2),
    (b"PK\x03\x04", ZIP),
)
# Legacy `docker save` (and skopeo docker-archive:) members: <id>/, <id>/layer.tar, <id>.json, ...
_DOCKER_NAME = re.compile(r"^[0-9a-f]{64}(?:\.json|\.tar|/|/layer\.tar|/json|/VERSION)?\Z")
_DOCKER_FILES = ("manifest.json", "repositories")
_OCI_FILES = ("oci-layout", "index.json", "blobs/")
_MAX_HEADERS = 32  # a handful of headers decides; a huge archive is not walked to its end


@dataclass(frozen=True)
class Sniffed:
    """``kind`` (one of :data:`KINDS`), what it ``looks_like`` and what to do with it (``advice``)."""

    kind: str
    looks_like: str
    advice: str


_ADVICE = {
    EMPTY: ("an empty file", "the upload or copy that made it did not finish; export or copy it again"),
    GZIP: ("a gzip stream", "decompress it first (gunzip); transfer blobs are plain tars"),
    ZSTD: ("a zstd stream", "decompress it first (zstd -d); transfer blobs are plain tars"),
    XZ: ("an xz stream", "decompress it first (xz -d); transfer blobs are plain tars"),
    BZIP2: ("a bzip2 stream", "decompress it first (bunzip2); transfer blobs are plain tars"),
    ZIP: ("a zip file", "airlock reads only the tar that `airlock export` writes"),
    DOCKER_SAVE: (
        "a docker-save archive",
        "load it with `docker load` or `podman load`, push it to a registry and export it with `airlock export`",
    ),
    OCI_LAYOUT: (
        "an OCI layout written by another tool",
        "it has no airlock catalog to verify it against; `airlock import --source` imports it with every blob "
        "verified by its digest, or push it to a registry and export it with `airlock export`",
    ),
    UNKNOWN: ("data that is not a tar archive", "airlock reads only the tar that `airlock export` writes"),
}


def sniff(read_at: Callable[[int, int], bytes]) -> Sniffed:
    """Classify a blob that is not an airlock archive. ``read_at(offset, n)`` returns up to ``n``
    bytes from ``offset`` (fewer at the end). Never raises for any content."""
    head = read_at(0, BLOCK)
    if not head:
        return _sniffed(EMPTY)
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return _sniffed(kind)
    if _header(head) is None:
        return _sniffed(UNKNOWN)
    first: str | None = None
    offset = 0
    for _ in range(_MAX_HEADERS):
        parsed = _header(read_at(offset, BLOCK))
        if parsed is None:
            break
        name, size, typeflag = parsed
        name = name.removeprefix("./")
        if typeflag == b"5" and not name.endswith("/"):
            name += "/"
        if typeflag not in (b"x", b"g", b"L", b"K"):
            first = first or name
            if name in _OCI_FILES or name.startswith("blobs/"):
                return _sniffed(OCI_LAYOUT)  # docker >= 25 saves an OCI layout too: it imports as one
            if name in _DOCKER_FILES or _DOCKER_NAME.match(name):
                return _sniffed(DOCKER_SAVE)
        offset += BLOCK + padded(size)
    shown = f"{first[:80]!r}" if first else "no file"
    return Sniffed(
        TAR,
        "a tar archive of something else",
        f"its first member is {shown}, not {CATALOG_NAME}; airlock reads only the tar that `airlock export` writes",
    )


def not_a_transfer_blob(name: str, sniffed: Sniffed) -> NotATransferBlob:
    """The one-line error for blob ``name`` (its display URI), which is ``sniffed``."""
    advice = lone_volume_hint(name) or sniffed.advice  # batch1.tar.002 given for its bundle
    return NotATransferBlob(
        f"not an airlock transfer blob (it looks like {sniffed.looks_like}): {name}; {advice}",
        kind=sniffed.kind,
    )


def _sniffed(kind: str) -> Sniffed:
    looks_like, advice = _ADVICE[kind]
    return Sniffed(kind, looks_like, advice)


def _header(block: bytes) -> tuple[str, int, bytes] | None:
    """(name, size, typeflag) of a tar header with a valid checksum (any tar dialect), else None."""
    if len(block) < BLOCK or block == bytes(BLOCK):
        return None
    try:
        stored = int(block[148:156].replace(b"\0", b" ").strip() or b"-1", 8)
    except ValueError:
        return None
    if stored != sum(block[:148]) + 8 * 32 + sum(block[156:]):
        return None
    name = block[0:100].split(b"\0", 1)[0].decode("utf-8", "replace")
    if block[257:263] == b"ustar\x00":
        prefix = block[345:500].split(b"\0", 1)[0].decode("utf-8", "replace")
        name = f"{prefix}/{name}" if prefix else name
    field = block[124:136]
    if field[0] & 0x80:
        size = int.from_bytes(bytes([field[0] & 0x7F]) + field[1:], "big")
    else:
        try:
            size = int(field.replace(b"\0", b" ").strip() or b"0", 8)
        except ValueError:
            return None
    return name, size, block[156:157]
