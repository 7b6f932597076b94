"""Media types, descriptors and manifests: just enough structure to walk an artifact's graph.

Manifests are kept as the exact bytes the registry served; parsing only extracts descriptors.
Re-serialising a manifest would change its digest, so nothing here ever does.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from airlock.errors import IntegrityError
from airlock.oci.digest import Digest

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"

INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
IMAGE_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
MANIFEST_TYPES = INDEX_TYPES | IMAGE_TYPES

# Order matters to some registries (they pick the first acceptable type); indexes first so that a
# multi-arch tag is never resolved to one platform's manifest.
ACCEPT_MANIFESTS = ", ".join([OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST])

# Manifests are small; a cap stops a hostile registry or archive from exhausting memory.
# regclient uses 8 MiB for pull; the distribution registry refuses manifests over 4 MiB on push.
MAX_MANIFEST_SIZE = 8 * 1024 * 1024


# One shared, read-only empty mapping: most descriptors have no annotations, and an empty dict each
# costs 64 bytes over the hundreds of thousands of descriptors of a large bundle.
_NO_ANNOTATIONS: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Descriptor:
    """An OCI content descriptor: what a manifest says about one piece of content."""

    media_type: str
    digest: Digest
    size: int
    artifact_type: str | None = None
    platform: dict[str, Any] | None = None
    annotations: Mapping[str, str] = field(default_factory=lambda: _NO_ANNOTATIONS)

    @classmethod
    def from_json(cls, obj: Any, *, where: str) -> Descriptor:
        """Build from a parsed descriptor object.

        Raises:
            IntegrityError: fields missing or of the wrong type (``where`` names the manifest).
        """
        if not isinstance(obj, dict):
            raise IntegrityError(f"{where}: descriptor is not an object")
        media_type, digest, size = obj.get("mediaType"), obj.get("digest"), obj.get("size")
        if not isinstance(media_type, str) or not isinstance(digest, str):
            raise IntegrityError(f"{where}: descriptor lacks mediaType or digest")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise IntegrityError(f"{where}: descriptor {digest} has an invalid size")
        try:
            parsed = Digest.parse(digest)
        except Exception as exc:
            raise IntegrityError(f"{where}: {exc}") from None
        annotations = obj.get("annotations") or {}
        platform = obj.get("platform")
        artifact_type = obj.get("artifactType")
        return cls(
            media_type=sys.intern(media_type),  # a handful of distinct values over thousands of descriptors
            digest=parsed,
            size=size,
            artifact_type=artifact_type if isinstance(artifact_type, str) else None,
            platform=platform if isinstance(platform, dict) else None,
            annotations={str(k): str(v) for k, v in annotations.items()}
            if isinstance(annotations, dict) and annotations
            else _NO_ANNOTATIONS,
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": str(self.digest), "size": self.size}
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.platform:
            out["platform"] = self.platform
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out


@dataclass(frozen=True, slots=True)
class Manifest:
    """A manifest or index: its exact bytes, its digest, and the descriptors it references."""

    raw: bytes
    digest: Digest
    media_type: str
    children: tuple[Descriptor, ...]  # index entries (manifests)
    blobs: tuple[Descriptor, ...]  # config then layers (image manifests)
    subject: Descriptor | None
    artifact_type: str | None

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES

    @property
    def size(self) -> int:
        return len(self.raw)

    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, len(self.raw), artifact_type=self.artifact_type)

    @classmethod
    def parse(cls, raw: bytes, *, media_type: str | None, where: str) -> Manifest:
        """Parse manifest bytes. The digest is computed from ``raw``, never trusted from outside.

        ``media_type`` is what the registry's Content-Type said; the document's own ``mediaType``
        wins when present (OCI 1.1 makes it mandatory; old Docker clients may send a generic type).

        Raises:
            IntegrityError: not JSON, too big, or not a manifest of a known type.
        """
        if len(raw) > MAX_MANIFEST_SIZE:
            raise IntegrityError(f"{where}: manifest of {len(raw)} bytes exceeds the {MAX_MANIFEST_SIZE} cap")
        try:
            doc = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise IntegrityError(f"{where}: manifest is not valid JSON") from None
        if not isinstance(doc, dict):
            raise IntegrityError(f"{where}: manifest is not a JSON object")
        declared = doc.get("mediaType")
        mt = declared if isinstance(declared, str) else media_type
        if mt not in MANIFEST_TYPES:
            # An OCI manifest without mediaType is still recognisable by its shape.
            if "manifests" in doc:
                mt = OCI_INDEX
            elif "config" in doc and "layers" in doc:
                mt = OCI_MANIFEST
            else:
                raise IntegrityError(f"{where}: unsupported manifest media type {mt!r}")
        children: list[Descriptor] = []
        blobs: list[Descriptor] = []
        if mt in INDEX_TYPES:
            entries = doc.get("manifests")
            if not isinstance(entries, list):
                raise IntegrityError(f"{where}: index has no 'manifests' list")
            children = [Descriptor.from_json(e, where=where) for e in entries]
        else:
            config = doc.get("config")
            layers = doc.get("layers")
            if layers is None:
                layers = []
            if not isinstance(layers, list):
                raise IntegrityError(f"{where}: manifest 'layers' is not a list")
            blobs = [Descriptor.from_json(config, where=where)]
            blobs += [Descriptor.from_json(e, where=where) for e in layers]
        subject_obj = doc.get("subject")
        subject = Descriptor.from_json(subject_obj, where=where) if subject_obj is not None else None
        artifact_type = doc.get("artifactType")
        if not isinstance(artifact_type, str):
            artifact_type = None
            if blobs and mt == OCI_MANIFEST and blobs[0].media_type != "application/vnd.oci.image.config.v1+json":
                artifact_type = blobs[0].media_type  # OCI 1.1 rule for artifacts without artifactType
        return cls(
            raw=raw,
            digest=Digest.of(raw),
            media_type=mt,
            children=tuple(children),
            blobs=tuple(blobs),
            subject=subject,
            artifact_type=artifact_type,
        )
