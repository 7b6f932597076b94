"""Helpers for tests that drive the transfer engine's API (export, then import) against real registries."""

from __future__ import annotations

from pathlib import Path

from airlock.oci.reference import ArtifactReference, RegistryURL
from airlock.registry.client import RegistryClient
from airlock.registry.credentials import Credentials
from airlock.registry.retry import RetryPolicy
from airlock.storage.base import Blob
from airlock.storage.location import open_blob, parse_blob_uri
from airlock.testing import content
from airlock.testing.content import PushedArtifact
from airlock.testing.registry_server import RegistryServer
from airlock.transfer.export import ExportResult, export_artifacts

# Tests provoke failures on purpose: two quick attempts, not the default back-off.
FAST = RetryPolicy(attempts=2, base=0.01, cap=0.02)


def client(server: RegistryServer, creds: Credentials | None = None) -> RegistryClient:
    """An engine client of ``server`` that reads no auth files and retries quickly."""
    return RegistryClient(RegistryURL.parse(server.url), credentials=creds, use_auth_files=False, retry=FAST)


def file_blob(path: Path) -> Blob:
    """The local file ``path`` as a transfer blob."""
    return open_blob(parse_blob_uri(path.as_uri()))


def refs(*texts: str) -> list[ArtifactReference]:
    return [ArtifactReference.parse(t) for t in texts]


def tagged(samples: list[PushedArtifact]) -> list[PushedArtifact]:
    """The artifacts pushed with a tag (referrers are pushed by digest)."""
    return [a for a in samples if a.tag]


def export_all(source: RegistryServer, samples: list[PushedArtifact], target: Blob, **kw: object) -> ExportResult:
    """Every tagged one of ``samples`` exported from ``source`` to ``target`` (``kw`` to :func:`export_artifacts`)."""
    return export_artifacts(
        client=client(source),
        artifacts=refs(*(a.reference for a in tagged(samples))),
        target=target,
        **kw,  # type: ignore[arg-type]
    )


def fresh_registry(tmp_path: Path, name: str = "fresh") -> RegistryServer:
    """An empty registry of the caller's own under ``tmp_path`` (use it as a context manager)."""
    return RegistryServer.start(tmp_path / name, name=name)


def assert_same_content(src: RegistryServer, dst: RegistryServer, artifact: PushedArtifact) -> None:
    """``artifact`` (pushed to ``src``) is in ``dst`` byte for byte: manifest, media type, every blob's size."""
    ref = artifact.tag or artifact.digest
    raw, media_type, digest = content.get_manifest(dst.url, artifact.repository, ref)
    assert digest == artifact.digest, f"{artifact.reference}: digest changed"
    assert raw == artifact.manifest
    assert media_type == artifact.media_type
    for blob_digest, size in artifact.blobs:
        data = content.get_blob(dst.url, artifact.repository, blob_digest)
        assert len(data) == size
