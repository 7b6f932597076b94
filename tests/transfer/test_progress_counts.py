"""The engine's progress reports: bytes, and blobs done of total, as the dashboard and the run's
``response.progress`` show them (through the engine API, against a real registry)."""

from __future__ import annotations

import threading
from pathlib import Path

from airlock.oci.reference import ArtifactReference, RegistryURL
from airlock.registry.client import RegistryClient
from airlock.storage.location import open_blob, parse_blob_uri
from airlock.testing.images import push_oci_image
from airlock.testing.registry_server import RegistryServer
from airlock.transfer.export import export_artifacts
from airlock.transfer.importer import import_archive
from airlock.transfer.inspection import inspect_archive


class Counts:
    """A Progress that keeps every ``blobs`` report and the bytes advanced."""

    def __init__(self) -> None:
        self.reports: list[tuple[int, int]] = []
        self.bytes = 0
        self._lock = threading.Lock()

    def begin(self, total_bytes: int, description: str) -> None:
        pass

    def advance(self, nbytes: int) -> None:
        with self._lock:
            self.bytes += nbytes

    def note(self, message: str) -> None:
        pass

    def blobs(self, done: int, total: int) -> None:
        with self._lock:
            self.reports.append((done, total))

    def artifact_done(self, reference: str, digest: str, size: int) -> None:
        pass


def _client(server: RegistryServer) -> RegistryClient:
    return RegistryClient(RegistryURL.parse(server.url), use_auth_files=False)


def test_export_and_import_report_blobs_done_of_total(source_registry: RegistryServer, tmp_path: Path) -> None:
    # Two repositories holding the same image: the archive stores its blobs once, the import places
    # them twice (one upload, one mount each), and the counts say so.
    push_oci_image(source_registry.url, "progress/a", "1", layer_size=4096, seed=61)
    push_oci_image(source_registry.url, "progress/b", "1", layer_size=4096, seed=61)
    bundle = open_blob(parse_blob_uri((tmp_path / "p.tar").as_uri()))
    exported = Counts()
    export_artifacts(
        client=_client(source_registry),
        artifacts=[ArtifactReference.parse("progress/a:1"), ArtifactReference.parse("progress/b:1")],
        target=bundle,
        progress=exported,
    )
    blobs = inspect_archive(bundle)["blobCount"]
    assert blobs >= 2
    assert exported.reports[0] == (0, blobs)
    assert exported.reports[-1] == (blobs, blobs)
    assert [done for done, _ in exported.reports] == list(range(blobs + 1))

    target = RegistryServer.start(tmp_path / "target", name="target")
    try:
        imported = Counts()
        result = import_archive(source=bundle, client=_client(target), progress=imported)
        placed = result.blobs_uploaded + result.blobs_mounted + result.blobs_skipped
        assert placed == 2 * blobs
        assert imported.reports[0] == (0, placed)
        assert imported.reports[-1] == (placed, placed)
        assert sorted(done for done, _ in imported.reports) == list(range(placed + 1))
    finally:
        target.stop()
