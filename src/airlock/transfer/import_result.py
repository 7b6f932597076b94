"""What an import did (:class:`ImportResult`): the artifacts it tagged or failed, the blobs it
uploaded, skipped and mounted, and what the bundle said of itself (signature, provenance)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from airlock.oci.digest import Digest


@dataclass
class ImportResult:
    source: str
    catalog_digest: Digest | None  # None: an OCI layout written by another tool (see layout_import)
    size: int
    imported: list[str]
    failures: dict[str, str] = field(default_factory=dict)
    blobs_uploaded: int = 0
    blobs_skipped: int = 0
    blobs_mounted: int = 0
    source_deleted: bool = False
    source_format: str = "airlock"  # or "oci-layout"
    note: str | None = None
    unchanged: list[str] = field(default_factory=list)  # a delta's left-out artifacts, already in the target
    signature: dict[str, object] | None = None  # a signed bundle's keyId and algorithm; trusted: checked against keys
    provenance: dict[str, Any] | None = None  # transfer.provenance.import_provenance: where each came from

    def to_json(self) -> dict[str, object]:
        return {
            "source": {"uri": self.source},
            "sourceFormat": self.source_format,
            "catalogDigest": str(self.catalog_digest) if self.catalog_digest else None,
            **({"note": self.note} if self.note else {}),
            "size": self.size,
            "importedArtifacts": self.imported,
            "failedArtifacts": self.failures,
            **({"unchangedArtifacts": self.unchanged} if self.unchanged else {}),
            "blobs": {
                "uploaded": self.blobs_uploaded,
                "skipped": self.blobs_skipped,
                "mounted": self.blobs_mounted,
            },
            "sourceBlobDeleted": self.source_deleted,
            **({"signature": self.signature} if self.signature is not None else {}),
            **({"provenance": self.provenance} if self.provenance is not None else {}),
        }
