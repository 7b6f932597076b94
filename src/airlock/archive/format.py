"""The transfer archive: an OCI image layout in one tar, plus airlock's catalog.

Members, in this order (the reader enforces it, so an import streams in one pass)::

    airlock-catalog.json        the catalog (below)
    airlock-catalog.sig         only in a signed bundle: the signature over the catalog's bytes
    oci-layout                  {"imageLayoutVersion": "1.0.0"}
    index.json                  one entry per exported artifact, named by
                                org.opencontainers.image.ref.name = "<repository>:<tag>" or "<repository>@<digest>"
    blobs/  blobs/sha256/       directory entries (some layout readers want them)
    blobs/sha256/<hex> ...      manifests and indexes, then configs, then layers largest first; each blob once

Tar headers are GNU-format (base-256 sizes past 8 GiB, so layers have no 8 GB limit), mode 0644,
mtime 0, no owner: the same content always makes the same archive.

The ``catalogDigest`` is the SHA-256 of the catalog member's bytes, and the catalog names every
other member by digest and size (``index`` for index.json, ``manifests`` and ``blobs``), so it is
a Merkle root over the archive's content, as a manifest digest is over an image: a reader that
checks each member against the catalog (:mod:`airlock.archive.reader` and the importer do) has
checked everything, with one hash per byte — the one that verifies each blob anyway. Tar headers,
padding and the end marker carry no content; the reader accepts only the form the writer produces.
Because the catalog comes first, the digest is known before any blob moves: an export reports it
without hashing the archive again, and an import refuses a wrong one before uploading anything.

Catalog (``application/vnd.airlock.catalog.v2+json``) evolution rules:
- ``schemaVersion`` changes only for a break; readers refuse versions they do not know. Version 2
  made the catalogDigest the catalog's own digest (version 1's was the whole file's) and added
  ``index``; version 1 archives are refused with a request to re-export.
- ``requires`` lists features a reader must understand to import correctly (``"delta"``: some
  blobs are expected in the target instead of the archive, listed in ``delta``; ``"volumes"``: a
  multi-volume bundle's first volume, below). Readers refuse unknown entries there.
- Everything else is additive: readers ignore fields they do not know (``extra="allow"``), so
  signatures, referrer edges, volume checksums or an inventory receipt can be added without a break.

Signed bundles (``export --sign-key``): the catalog's ``signature`` names the key (``keyId``, the
SHA-256 of its DER SubjectPublicKeyInfo) and ``algorithm`` (``ecdsa-p256-sha256``: a DER signature;
``ed25519``: 64 raw bytes), and ``airlock-catalog.sig``, right after the catalog, holds the
signature over the catalog member's exact bytes — so over the catalogDigest's Merkle root, and
checkable with ``tar`` and ``openssl`` alone. It is at most 512 bytes (one block). See
:mod:`airlock.archive.signature` and :mod:`airlock.archive.keys`. No ``requires`` entry: an older
reader refuses the extra member (it accepts only the members it knows), so it never mis-imports one.

Multi-volume bundles (``requires: ["volumes"]``, ``export --volume-size``): the same logical
archive cut into volumes, so that ``cat`` of the volumes in order is an ordinary archive that tar
and layout readers take. Volume 1 is the head (catalog, layout, index, manifests) and nothing
else; volumes 2..N slice the rest at the volume size; the catalog's ``volumes`` lists 2..N with
digest and size, so each can be verified alone, and the catalogDigest pins volume 1. Volumes 2..N
are written (and hashed) first, the head last: an interrupted export leaves no head, and volumes
without their head are never imported. See :mod:`airlock.archive.volumes`.
"""

from __future__ import annotations

import re
import sys
import tarfile
from datetime import datetime
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter
from pydantic.dataclasses import dataclass as pydantic_dataclass

CATALOG_NAME = "airlock-catalog.json"
SIGNATURE_NAME = "airlock-catalog.sig"
MAX_SIGNATURE_SIZE = 512  # one tar block: ECDSA P-256 DER is at most 72 bytes, Ed25519 64
LAYOUT_NAME = "oci-layout"
INDEX_NAME = "index.json"
DIR_NAMES = ("blobs/", "blobs/sha256/")
BLOB_PREFIX = "blobs/sha256/"
BLOB_NAME_RE = re.compile(r"^blobs/sha256/([a-f0-9]{64})\Z")  # \Z: "$" would accept "<hex>\n"
CATALOG_VERSION: Final = 2
CATALOG_MEDIA_TYPE: Final = "application/vnd.airlock.catalog.v2+json"
LAYOUT_BYTES = b'{"imageLayoutVersion":"1.0.0"}'
REF_NAME = "org.opencontainers.image.ref.name"

# Features this reader understands in ``requires``. "delta": some blobs (and unchanged artifacts)
# are left out because a receipt says the target has them; ``Catalog.delta`` lists them.
DELTA_FEATURE: Final = "delta"
# "platforms": an index travelled without some platforms' manifests (``omittedManifests``):
# an older reader would walk the index and stop at its first missing child.
FEATURE_PLATFORMS: Final = "platforms"
# "volumes": a multi-volume bundle's first volume (``volumes``; archive.volumes.VOLUMES_FEATURE).
SUPPORTED_FEATURES: frozenset[str] = frozenset({DELTA_FEATURE, FEATURE_PLATFORMS, "volumes"})

# JSON members are read into memory; caps keep a hostile archive from exhausting it.
MAX_CATALOG_SIZE = 32 * 1024 * 1024
MAX_INDEX_SIZE = 16 * 1024 * 1024
MAX_LAYOUT_SIZE = 4096
MAX_ARTIFACTS = 10_000
MAX_BLOBS = 1_000_000

BLOCK = 512


def padded(size: int) -> int:
    """Bytes a member's data occupies in the tar (rounded up to 512)."""
    return (size + BLOCK - 1) // BLOCK * BLOCK


def _tarfile_header(name: str, size: int, *, directory: bool = False) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = 0 if directory else size
    info.mode = 0o755 if directory else 0o644
    info.mtime = 0
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.uname = info.gname = ""
    return info.tobuf(format=tarfile.GNU_FORMAT, encoding="utf-8", errors="strict")


# tarfile's header for a regular member, with an empty name, size 0 and its checksum field blank:
# the form every blob's header takes, so it is filled in instead of rebuilt (a TarInfo took 18.5 us
# a header here, 6-7% of the time a many-small export or import held the GIL).
_REGULAR = bytearray(_tarfile_header("", 0))
_REGULAR[148:156] = b" " * 8
_REGULAR_SUM = sum(_REGULAR) - sum(_REGULAR[124:136])  # without its size field (its name field is NULs)
_MAX_OCTAL_SIZE = 8**11  # from here up tarfile writes a GNU base-256 size


def member_header(name: str, size: int, *, directory: bool = False) -> bytes:
    """The 512-byte tar header for a member (GNU format; deterministic): tarfile's, byte for byte."""
    raw = name.encode("utf-8")
    if directory or len(raw) > 100 or not 0 <= size < _MAX_OCTAL_SIZE:
        return _tarfile_header(name, size, directory=directory)
    size_field = b"%011o\0" % size
    block = _REGULAR.copy()
    block[: len(raw)] = raw
    block[124:136] = size_field
    # The checksum sums the header with its own field as spaces (as in the template).
    block[148:155] = b"%06o\0" % (_REGULAR_SUM + sum(raw) + sum(size_field))
    return bytes(block)


def archive_size(catalog_size: int, catalog: Catalog) -> int:
    """The exact size of the archive the writer makes for ``catalog`` (whose member is
    ``catalog_size`` bytes): every member's header and padded data, the two directories, and the
    end marker. A blob of another size is truncated or has something appended."""
    members = [catalog_size, len(LAYOUT_BYTES), catalog.index.size]
    members += [m.size for m in catalog.manifests] + [b.size for b in catalog.blobs]
    return sum(BLOCK + padded(n) for n in members) + BLOCK * len(DIR_NAMES) + 2 * BLOCK + signature_span(catalog)


def signature_span(catalog: Catalog) -> int:
    """Bytes of the signature member (header and one block of data) when ``catalog`` is signed, else 0."""
    return 2 * BLOCK if catalog.signature is not None else 0


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class CatalogSource(_Model):
    registry: str


# Digests are validated where the catalog is parsed, so a corrupt archive is an ArchiveError. Interned,
# as a Digest's text is: the same digest named by an artifact, its origin, the manifest list and the
# manifests' descriptors is then one string in memory.
DigestStr = Annotated[str, Field(pattern=r"^sha256:[a-f0-9]{64}$", max_length=71), AfterValidator(sys.intern)]


# A bundle of N artifacts lists about 5N blobs, N artifacts and N origins: as slotted dataclasses they cost a
# third of what models do (no __dict__, no fields-set), which keeps a 10,000-artifact bundle within
# its memory budget. Unknown fields of theirs are ignored; one that matters would come with a
# ``requires`` name.
_BLOB_CONFIG = ConfigDict(extra="ignore", populate_by_name=True)


@pydantic_dataclass(slots=True, kw_only=True, config=_BLOB_CONFIG)
class ArtifactOrigin:
    """Provenance: the artifact's full original reference, as it was in the source registry
    (``reference`` is ``host/repository:tag@digest``; the digest is the source's, also for an index
    rewritten by a platform filter)."""

    reference: str = Field(max_length=2048)
    registry: str = Field(max_length=1024)
    repository: str = Field(max_length=255)
    tag: str | None = Field(default=None, max_length=128)
    digest: DigestStr

    def to_json(self) -> dict[str, Any]:
        """As the catalog has it (camel case, no nulls)."""
        out: dict[str, Any] = _ORIGIN_JSON.dump_python(self, by_alias=True, exclude_none=True)
        return out


_ORIGIN_JSON: TypeAdapter[ArtifactOrigin] = TypeAdapter(ArtifactOrigin)


class ExportRecord(_Model):
    """Provenance: who exported the bundle, when (the catalog's ``createdAt``), from which
    registry, with which airlock, and by which selection rules (``--repository/--tags/...``, as
    :class:`airlock.transfer.selection.Selection` reads them; None: artifacts named outright)."""

    time: datetime
    principal: str = Field(max_length=256)
    source_registry: str = Field(alias="sourceRegistry", max_length=1024)
    airlock_version: str = Field(alias="airlockVersion", max_length=64)
    selection: dict[str, Any] | None = None


@pydantic_dataclass(slots=True, kw_only=True, config=_BLOB_CONFIG)
class CatalogArtifact:
    """One exported artifact: what index.json names, with what the import needs to tag it.

    A slotted dataclass, as the blobs are: an import keeps one per artifact for its whole run.
    Copy with :func:`dataclasses.replace`, dump with :meth:`to_json`.
    """

    reference: str = Field(max_length=1024)
    repository: str = Field(max_length=255)
    tag: str | None = Field(default=None, max_length=128)
    digest: DigestStr
    media_type: str = Field(alias="mediaType")
    size: int = Field(ge=0)
    artifact_type: str | None = Field(default=None, alias="artifactType")
    # For referrers (signatures, SBOMs): the digest of the manifest they refer to.
    subject: DigestStr | None = None
    # Exported with a platform filter (transfer.platform_filter): the platforms asked for; the
    # index's children left out of the archive (``requires`` "platforms"); or, when the index was
    # rewritten to the chosen platforms, the digest of the source's index.
    platforms: list[Annotated[str, Field(max_length=64)]] | None = Field(default=None, max_length=64)
    omitted_manifests: list[DigestStr] | None = Field(default=None, alias="omittedManifests", max_length=4096)
    source_digest: DigestStr | None = Field(default=None, alias="sourceDigest")
    # Provenance (optional: older catalogs lack it, older readers ignore it).
    origin: ArtifactOrigin | None = None

    @classmethod
    def from_json(cls, doc: dict[str, object]) -> CatalogArtifact:
        """From its catalog form (camel case; unknown fields ignored). Raises pydantic's ValidationError."""
        return _ARTIFACT_JSON.validate_python(doc)

    def to_json(self, *, include: set[str] | None = None) -> dict[str, Any]:
        """As the catalog has it (camel case, no nulls); ``include``: only these fields (Python names)."""
        out: dict[str, Any] = _ARTIFACT_JSON.dump_python(self, by_alias=True, exclude_none=True, include=include)
        return out


_ARTIFACT_JSON: TypeAdapter[CatalogArtifact] = TypeAdapter(CatalogArtifact)


@pydantic_dataclass(slots=True, config=_BLOB_CONFIG)
class CatalogBlob:
    digest: DigestStr
    size: int = Field(ge=0)
    media_type: str | None = Field(default=None, alias="mediaType")


class CatalogVolume(_Model):
    """Volume ``index`` (2..N) of a multi-volume bundle: the SHA-256 and size of its bytes."""

    index: int = Field(ge=2)
    size: int = Field(gt=0)
    digest: DigestStr


class CatalogSignature(_Model):
    """A signed bundle's key (``keyId``: SHA-256 hex of its DER SubjectPublicKeyInfo) and
    ``algorithm``; the signature itself is the ``airlock-catalog.sig`` member."""

    key_id: str = Field(alias="keyId", pattern=r"^[a-f0-9]{64}$")
    algorithm: str = Field(max_length=64)


@pydantic_dataclass(slots=True, config=_BLOB_CONFIG)
class DeltaBlob(CatalogBlob):
    """A blob a delta archive leaves out: the receipt says the target has it, in ``repository``."""

    repository: str | None = Field(default=None, max_length=255)


class DeltaArtifact(_Model):
    """An artifact a delta archive leaves out: its tag already points at this digest in the target."""

    reference: str = Field(max_length=1024)
    digest: DigestStr


class DeltaReceipt(_Model):
    """The receipt a delta was made against: whose registry, when, and the receipt file's digest."""

    registry: str
    created_at: datetime = Field(alias="createdAt")
    digest: DigestStr


class CatalogDelta(_Model):
    """What a delta archive (``requires: ["delta"]``) expects the target to hold instead of carrying it."""

    receipt: DeltaReceipt
    blobs: list[DeltaBlob] = Field(max_length=MAX_BLOBS)
    artifacts: list[DeltaArtifact] = Field(default_factory=list, max_length=MAX_ARTIFACTS)
    # The archive a full export of the same artifacts would have made, in bytes.
    full_size: int = Field(alias="fullSize", ge=0)


class Catalog(_Model):
    schema_version: Literal[2] = Field(alias="schemaVersion")
    media_type: Literal["application/vnd.airlock.catalog.v2+json"] = Field(alias="mediaType")
    requires: list[str] = Field(default_factory=list, max_length=64)
    created_at: datetime = Field(alias="createdAt")
    creator: str
    source: CatalogSource
    artifacts: list[CatalogArtifact] = Field(max_length=MAX_ARTIFACTS)
    # index.json's digest and size: the catalogDigest covers it too.
    index: CatalogBlob
    # Every manifest/index in the archive, in the order they are stored (children before parents).
    manifests: list[CatalogBlob] = Field(max_length=MAX_BLOBS)
    # Every other blob (configs, layers), in the order they are stored.
    blobs: list[CatalogBlob] = Field(max_length=MAX_BLOBS)
    # Only in a delta archive (``requires`` then names "delta").
    delta: CatalogDelta | None = None
    # With requires "volumes": volumes 2..N in order (volume 1, the head, is pinned by the catalogDigest).
    volumes: list[CatalogVolume] | None = Field(default=None, max_length=1000)
    # In a signed bundle: who signed it (the signature is the next member, SIGNATURE_NAME).
    signature: CatalogSignature | None = None
    # Provenance of the export (optional: older catalogs lack it, older readers ignore it).
    export_record: ExportRecord | None = Field(default=None, alias="exportRecord")

    def to_bytes(self) -> bytes:
        return self.model_dump_json(by_alias=True, exclude_none=True).encode()
