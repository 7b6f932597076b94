"""Multi-volume bundles: one logical archive cut into volumes of at most a given size.

The logical archive is the ordinary one (:mod:`airlock.archive.format`); concatenated in order,
the volumes are exactly it. Volume 1, the *head*, holds the catalog, ``oci-layout``, ``index.json``,
the directories and the manifests — everything before the first config or layer — and no more.
Volumes 2..N are the rest of the tar stream (configs, layers, the end marker) cut every
``volume size`` bytes, so only the last may be shorter. The catalog ``requires`` ``"volumes"`` and
lists volumes 2..N with their SHA-256 digest and size (``volumes``); volume 1 is pinned by the
catalogDigest (the catalog is its first member and names the rest of it by digest). Its size is not
listed — it would be circular — but implied: :func:`head_size`.

Names: volume 1 is the target's own name; volume k is that name followed by ``.%03d`` (``batch1.tar``,
``batch1.tar.002``, ...), in the same directory or container; at most :data:`MAX_VOLUMES`. Renaming
a bundle means renaming every volume alike.

This module is pure: sizes, names and the volume table. Reading and writing volumes in storage is
:mod:`airlock.transfer.volume_source` and :mod:`airlock.transfer.volume_export`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from airlock.archive.format import BLOCK, DIR_NAMES, LAYOUT_BYTES, Catalog, padded, signature_span
from airlock.errors import ArchiveError, UsageError

VOLUMES_FEATURE: Final = "volumes"
# Later volumes are not transfer blobs of their own: ACR's and airlock's triggers must not import them.
VOLUME_CATEGORY = {"category": "airlock-transfer-volume"}
MAX_VOLUMES = 999  # names keep three digits: batch1.tar.002 ... batch1.tar.999
MIN_VOLUME_SIZE = 64 * 1024  # below this even a one-manifest head hardly fits; also keeps volumes countable
PLACEHOLDER_DIGEST = "sha256:" + "0" * 64  # same length as a real one: the catalog's size is known up front

_VOLUME_NAME_RE = re.compile(r"^(.+)\.(\d{3})\Z", re.DOTALL)
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*\Z", re.IGNORECASE)
_UNITS = {
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}


def parse_volume_size(text: str, *, what: str = "--volume-size") -> int:
    """``4GiB``, ``700MB``, ``512KiB`` or a number of bytes → bytes.

    Raises:
        UsageError: not a size, or under :data:`MIN_VOLUME_SIZE`.
    """
    match = _SIZE_RE.match(text)
    if not match:
        raise UsageError(f"{what} {text!r}: expected a size such as 4GiB, 700MB or 512KiB")
    size = int(float(match.group(1)) * _UNITS[(match.group(2) or "B").lower()])
    if size < MIN_VOLUME_SIZE:
        raise UsageError(f"{what} {text!r} is {size} bytes; a volume must hold at least {MIN_VOLUME_SIZE} (64KiB)")
    return size


def volume_suffix(index: int) -> str:
    """What volume ``index`` (2..) adds to the first volume's name: ``.002``."""
    return f".{index:03d}"


def parse_volume_name(name: str) -> tuple[str, int] | None:
    """(first volume's name, index) when ``name`` is named like volume 2 or later of a bundle."""
    match = _VOLUME_NAME_RE.match(name)
    if not match or int(match.group(2)) < 2:
        return None
    return match.group(1), int(match.group(2))


def lone_volume_hint(uri: str) -> str | None:
    """For a blob named like a later volume (``…/batch1.tar.002``) that is not an archive of its
    own: what it most likely is, and what to give instead; None for other names."""
    name = uri.rstrip("/").rsplit("/", 1)[-1]
    parsed = parse_volume_name(name)
    if parsed is None:
        return None
    return (
        f"it is named like volume {parsed[1]} of a multi-volume bundle: give the bundle's first volume "
        f"({parsed[0]}), which lists the others and is read with them"
    )


def head_size(catalog_size: int, catalog: Catalog) -> int:
    """Bytes of volume 1: the catalog (``catalog_size`` bytes), its signature if signed, ``oci-layout``,
    ``index.json``, the directories and every manifest, each with its header and padding."""
    members = [catalog_size, len(LAYOUT_BYTES), catalog.index.size, *(m.size for m in catalog.manifests)]
    return sum(BLOCK + padded(n) for n in members) + BLOCK * len(DIR_NAMES) + signature_span(catalog)


def tail_size(catalog: Catalog) -> int:
    """Bytes after the head: every config and layer member, and the end marker (independent of the catalog's size)."""
    return sum(BLOCK + padded(b.size) for b in catalog.blobs) + 2 * BLOCK


def split_sizes(total: int, volume_size: int) -> list[int]:
    """``total`` bytes cut into volumes of ``volume_size`` (the last may be shorter)."""
    full, rest = divmod(total, volume_size)
    return [volume_size] * full + ([rest] if rest else [])


@dataclass(frozen=True)
class VolumeSpec:
    """What the catalog says of one volume: index (1 is the head), offset in the logical archive,
    size, and digest (None for the head, which the catalogDigest pins)."""

    index: int
    offset: int
    size: int
    digest: str | None


class _Requires(BaseModel):
    model_config = ConfigDict(extra="ignore")  # the rest of the catalog is parsed, not built
    requires: list[str] = Field(default_factory=list)


def requires_volumes(data: bytes) -> bool | None:
    """Whether the catalog member's bytes require volumes, read without building the rest of the
    catalog; None when they are not a JSON object whose ``requires`` (if any) is a list of strings.

    Not a check of the catalog (:func:`airlock.archive.reader.parse_catalog` is): it lets a caller
    that only asks this skip the full parse, which for a 10,000-artifact bundle takes a quarter of a
    second and, when a reader then parses the catalog again, 14 MiB more at the peak.
    """
    try:
        return VOLUMES_FEATURE in _Requires.model_validate_json(data).requires
    except ValidationError:
        return None


def volume_table(catalog: Catalog, catalog_size: int) -> list[VolumeSpec] | None:
    """Every volume of a multi-volume catalog (head first), or None for a one-blob archive.

    Raises:
        ArchiveError: the catalog requires volumes but its table does not add up (indexes out of
            order, a volume over the first one's size or empty, sizes not summing to the archive's).
    """
    if VOLUMES_FEATURE not in catalog.requires:
        return None
    listed = catalog.volumes or []
    if not listed or len(listed) + 1 > MAX_VOLUMES:
        raise ArchiveError(
            f"archive catalog requires volumes but lists {len(listed)} (expected 1 to {MAX_VOLUMES - 1})"
        )
    head = head_size(catalog_size, catalog)
    specs = [VolumeSpec(1, 0, head, None)]
    offset = head
    for position, volume in enumerate(listed, start=2):
        if volume.index != position or volume.size <= 0:
            raise ArchiveError(f"archive catalog's volume table is invalid at volume {position}")
        specs.append(VolumeSpec(position, offset, volume.size, volume.digest))
        offset += volume.size
    sizes = [s.size for s in specs[1:]]
    if offset - head != tail_size(catalog) or any(n != sizes[0] for n in sizes[:-1]) or sizes[-1] > sizes[0]:
        raise ArchiveError("archive catalog's volume table does not add up to the archive its catalog describes")
    return specs
