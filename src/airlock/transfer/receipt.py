"""Receipts: what a registry holds, per repository, by manifest and blob digest.

A receipt (``application/vnd.airlock.receipt.v1+json``) is written by ``airlock inventory`` for
any registry and by ``airlock import --receipt-out`` after an import; ``airlock export
--delta-from`` reads one to leave out what the target already has (:mod:`airlock.transfer.delta`).

Shape, chosen for size: 10,000 image artifacts (30,020 distinct blobs) make 3.2 MiB, of which the
40,020 digests, each written once, are 2.5 MiB (``tests/transfer/test_receipt.py``)::

    {"schemaVersion": 1, "mediaType": "...receipt.v1+json", "registry": "https://…",
     "createdAt": "…", "creator": "airlock 1.2.0", "rename": {"team/": "mirror/team/"},
     "blobs": [["<hex>", 1234], …],                  every blob once, sorted by digest
     "repositories": {"team/app": {"manifests": ["<hex>", …], "tags": {"1.4": 0},   positions in "manifests"
                                   "blobs": [0, 7, …]}}}                            positions in "blobs"

Digests are SHA-256 hex without the ``sha256:`` prefix. Each digest is written once: a blob shared
by repositories is listed once and referred to by position (shared base layers cost a few bytes per
repository), and a tag names its manifest by position in its repository's list.
``rename`` is the prefix map the import applied (names in the receipt are the target's).
Everything is sorted, so the same holdings make the same bytes apart from ``createdAt``.

Readers refuse a file over :data:`MAX_RECEIPT_SIZE`, another media type or schema version, an
invalid repository name, and positions out of range, with one line naming the file.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from airlock import __version__
from airlock.errors import ReceiptError, UsageError, first_invalid
from airlock.oci.digest import Digest
from airlock.oci.reference import validate_repository

RECEIPT_MEDIA_TYPE: Final = "application/vnd.airlock.receipt.v1+json"
RECEIPT_VERSION: Final = 1
# Far above what 10,000 artifacts make (3.2 MiB): a bigger file is not a receipt we wrote.
MAX_RECEIPT_SIZE = 64 * 1024 * 1024

Hex = Annotated[str, Field(pattern=r"^[a-f0-9]{64}$")]


class RepositoryHoldings(BaseModel):
    model_config = ConfigDict(extra="allow")

    manifests: list[Hex] = Field(default_factory=list)
    tags: dict[str, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)
    blobs: list[Annotated[int, Field(ge=0)]] = Field(default_factory=list)


class Receipt(BaseModel):
    """A registry's holdings. Build one with :class:`Holdings`; read one with :func:`read_receipt`."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    schema_version: Literal[1] = Field(alias="schemaVersion")
    media_type: Literal["application/vnd.airlock.receipt.v1+json"] = Field(alias="mediaType")
    registry: str
    created_at: datetime = Field(alias="createdAt")
    creator: str
    rename: dict[str, str] | None = None
    blobs: list[tuple[Hex, Annotated[int, Field(ge=0)]]]
    repositories: dict[str, RepositoryHoldings]

    def to_bytes(self) -> bytes:
        return self.model_dump_json(by_alias=True, exclude_none=True).encode()

    def blob_holders(self) -> dict[Digest, tuple[int, str]]:
        """Every blob's digest → (size, the first repository, by name, that holds it)."""
        first: dict[int, str] = {}
        for name in sorted(self.repositories):
            for i in self.repositories[name].blobs:
                first.setdefault(i, name)
        return {
            Digest.parse("sha256:" + hex_): (size, first[i]) for i, (hex_, size) in enumerate(self.blobs) if i in first
        }

    def tag_digest(self, repository: str, tag: str) -> str | None:
        """``sha256:<hex>`` the tag points at in the receipt, or None."""
        held = self.repositories.get(repository)
        found = held.tags.get(tag) if held else None
        return f"sha256:{held.manifests[found]}" if held is not None and found is not None else None


@dataclass
class Holdings:
    """What an inventory collects, repository by repository; :meth:`receipt` makes the receipt."""

    repositories: dict[str, tuple[dict[str, str], set[str], set[str]]] = field(default_factory=dict)
    blob_sizes: dict[str, int] = field(default_factory=dict)

    def repository(self, name: str) -> tuple[dict[str, str], set[str], set[str]]:
        """(tags → manifest hex, manifest hexes, blob hexes) of ``name``, created empty."""
        return self.repositories.setdefault(name, ({}, set(), set()))

    def receipt(self, registry: str, *, rename: Mapping[str, str] | None = None) -> Receipt:
        table = sorted(self.blob_sizes.items())
        position = {hex_: i for i, (hex_, _) in enumerate(table)}
        repos: dict[str, RepositoryHoldings] = {}
        for name, (tags, manifests, blobs) in sorted(self.repositories.items()):
            listed = sorted(manifests | set(tags.values()))
            at = {hex_: i for i, hex_ in enumerate(listed)}
            repos[name] = RepositoryHoldings(
                manifests=listed,
                tags={tag: at[hex_] for tag, hex_ in sorted(tags.items())},
                blobs=sorted(position[b] for b in blobs),
            )
        return Receipt(
            schemaVersion=RECEIPT_VERSION,
            mediaType=RECEIPT_MEDIA_TYPE,
            registry=registry,
            createdAt=datetime.now(UTC),
            creator=f"airlock {__version__}",
            rename=dict(rename) if rename else None,
            blobs=table,
            repositories=repos,
        )


def write_receipt(receipt: Receipt, path: str | Path) -> int:
    """Write ``receipt`` to ``path`` atomically (a temporary file renamed into place); returns its size.

    Raises:
        ReceiptError: the file cannot be written (naming it and why).
    """
    target = Path(path).expanduser()
    data = receipt.to_bytes()
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent if str(target.parent) else ".", prefix=".receipt-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, target)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as exc:
        raise ReceiptError(f"receipt {target}: cannot write it ({exc.strerror or exc})") from None
    return len(data)


def read_receipt(path: str | Path) -> tuple[Receipt, Digest]:
    """The receipt at ``path`` and the digest of its bytes.

    Raises:
        ReceiptError: missing or unreadable, over MAX_RECEIPT_SIZE, not JSON, not a receipt (another
            media type or version), or blob positions out of range.
    """
    source = Path(path).expanduser()
    try:
        with source.open("rb") as f:
            data = f.read(MAX_RECEIPT_SIZE + 1)
    except OSError as exc:
        raise ReceiptError(f"receipt {source}: cannot read it ({exc.strerror or exc})") from None
    if len(data) > MAX_RECEIPT_SIZE:
        raise ReceiptError(f"receipt {source}: larger than {MAX_RECEIPT_SIZE // 2**20} MiB, not a receipt")
    try:
        doc = json.loads(data)
    except ValueError:
        raise ReceiptError(f"receipt {source}: not JSON") from None
    if not isinstance(doc, dict) or doc.get("mediaType") != RECEIPT_MEDIA_TYPE:
        kind = doc.get("mediaType") if isinstance(doc, dict) else None
        raise ReceiptError(
            f"receipt {source}: not an airlock receipt (mediaType {kind!r}, expected {RECEIPT_MEDIA_TYPE}); "
            "write one with airlock inventory or airlock import --receipt-out"
        )
    try:
        receipt = Receipt.model_validate(doc)
    except ValidationError as exc:
        where, why = first_invalid(exc)
        raise ReceiptError(f"receipt {source} is invalid at {where or 'top level'}: {why}") from None
    count = len(receipt.blobs)
    for name, held in receipt.repositories.items():
        try:
            validate_repository(name)  # names from the other side go into mount URLs
        except UsageError as exc:
            raise ReceiptError(f"receipt {source}: {exc}") from None
        if any(i >= count for i in held.blobs) or any(i >= len(held.manifests) for i in held.tags.values()):
            raise ReceiptError(f"receipt {source}: repository {name} names a position past the end of its list")
    return receipt, Digest.of(data)
