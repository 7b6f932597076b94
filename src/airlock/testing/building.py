"""Sample artifacts as built in memory before a push, their parts, and the push itself.

Content depends only on the kind of artifact, the platform and ``seed`` (not on the repository), so
the same call yields the same digests on every run and in every repository: layers are gzipped tars
(level 1, mtime 0, fixed tar metadata) of seeded random bytes. Digests are stable for a given zlib;
a different zlib build could compress differently.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from airlock.testing.content import Client, PushedArtifact, sha256

__all__ = ["EPOCH", "Built", "compact_json", "descriptor", "push_built", "tar_gz"]

EPOCH = "1970-01-01T00:00:00Z"


def compact_json(obj: Any) -> bytes:
    """``obj`` as JSON without spaces, as the bytes of a manifest or config."""
    return json.dumps(obj, separators=(",", ":")).encode()


@dataclass
class Built:
    """An artifact built in memory: its manifest, its blobs and (for indexes) built children."""

    media_type: str
    manifest: bytes
    blobs: list[bytes]
    children: list[Built] = field(default_factory=list)
    artifact_type: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return sha256(self.manifest)

    def all_blobs(self) -> list[tuple[str, int]]:
        seen: dict[str, int] = {}
        for child in self.children:
            for digest, size in child.all_blobs():
                seen.setdefault(digest, size)
        for blob in self.blobs:
            seen.setdefault(sha256(blob), len(blob))
        return list(seen.items())


def descriptor(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    """The OCI descriptor of ``data`` (with ``extra`` fields such as ``annotations``)."""
    return {"mediaType": media_type, "digest": sha256(data), "size": len(data), **extra}


def tar_gz(files: Sequence[tuple[str, bytes]]) -> tuple[bytes, bytes]:
    """A gzipped tar of ``files`` with fixed metadata; returns (gzipped, uncompressed tar)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    plain = raw.getvalue()
    return gzip.compress(plain, compresslevel=1, mtime=0), plain


def push_built(client: Client, repository: str, tag: str | None, built: Built) -> PushedArtifact:
    """Push children (by digest), then blobs, then the manifest under ``tag`` (None: by digest)."""
    for child in built.children:
        push_built(client, repository, None, child)
    for blob in built.blobs:
        client.push_blob(repository, blob)
    digest = client.put_manifest(repository, tag or built.digest, built.media_type, built.manifest)
    return PushedArtifact(
        repository=repository,
        tag=tag,
        digest=digest,
        media_type=built.media_type,
        manifest=built.manifest,
        blobs=tuple(built.all_blobs()),
        children=tuple(child.digest for child in built.children),
        artifact_type=built.artifact_type,
        annotations=dict(built.annotations),
    )
