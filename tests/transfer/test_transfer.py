"""Export → import end to end through the engine API, against real registries: every media-type family, the
options, tampered and interrupted archives, auth and referrers (Azure storage: test_transfer_azure.py)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from airlock.archive.format import BLOB_PREFIX
from airlock.errors import (
    ArchiveError,
    BlobExists,
    IntegrityError,
    NotFound,
    RegistryError,
    TagConflict,
)
from airlock.oci.digest import Digest
from airlock.registry.credentials import Credentials
from airlock.storage.base import Blob
from airlock.testing import content
from airlock.testing.content import PushedArtifact
from airlock.testing.images import push_docker_image, push_oci_image
from airlock.testing.referrers import referrers_tag
from airlock.testing.registry_server import RegistryServer
from airlock.testing.round_trip import assert_same_content, client, export_all, file_blob, fresh_registry, refs, tagged
from airlock.testing.skopeo import run_skopeo
from airlock.transfer.export import ExportResult, export_artifacts
from airlock.transfer.importer import LARGE_BLOB, import_archive
from airlock.transfer.inspection import inspect_archive
from airlock.transfer.options import PipelineOption as Opt


@pytest.fixture(scope="module")
def archive(source_registry: RegistryServer, samples: list[PushedArtifact], workdir: Path) -> tuple[Path, ExportResult]:
    path = workdir / "all.tar"
    result = export_all(source_registry, samples, file_blob(path), options=frozenset({Opt.INCLUDE_REFERRERS}))
    return path, result


# -- the happy path ---------------------------------------------------------------------------------


def test_round_trip_preserves_every_digest(
    archive: tuple[Path, ExportResult],
    samples: list[PushedArtifact],
    source_registry: RegistryServer,
    target_registry: RegistryServer,
) -> None:
    path, exported = archive
    assert str(exported.catalog_digest) == content.catalog_digest_of(path)
    assert exported.size == path.stat().st_size
    result = import_archive(
        source=file_blob(path), client=client(target_registry), catalog_digest=exported.catalog_digest
    )
    assert result.catalog_digest == exported.catalog_digest
    assert not result.failures
    for artifact in samples:
        assert artifact.reference in result.imported or artifact.tag is None
        assert_same_content(source_registry, target_registry, artifact)
    # The signature came along (include_referrers) with the tag-schema index that finds it.
    signature = samples[1]
    assert signature.reference in result.imported
    fallback = referrers_tag(samples[0].digest)
    assert fallback in content.list_tags(target_registry.url, "samples/app")
    # Indexes kept all platforms: children exist by digest.
    for child in samples[2].children:
        assert content.manifest_exists(target_registry.url, "samples/multi", child)


class _RangeSpy:
    """A storage blob that records the ranged reads made of it (offset, length)."""

    def __init__(self, blob: Blob) -> None:
        self._blob = blob
        self.ranges: list[tuple[int, int | None]] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self._blob, name)

    def read(self, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        self.ranges.append((offset, length))
        return self._blob.read(offset, length)


def test_large_blobs_upload_from_ranged_reads_alongside_the_pass(
    archive: tuple[Path, ExportResult],
    samples: list[PushedArtifact],
    source_registry: RegistryServer,
    tmp_path: Path,
) -> None:
    path, exported = archive
    spy = _RangeSpy(file_blob(path))
    blobs = {d for artifact in samples for d, _ in artifact.blobs}  # configs and layers, not manifests
    with tarfile.open(path) as tf:
        large = {
            m.offset_data: m.size
            for m in tf.getmembers()
            if m.name.startswith(BLOB_PREFIX) and m.size >= 1024 and "sha256:" + m.name.rsplit("/", 1)[1] in blobs
        }
    with fresh_registry(tmp_path) as reg:
        result = import_archive(
            source=spy,  # type: ignore[arg-type]
            client=client(reg),
            catalog_digest=exported.catalog_digest,
            large_blob=1024,
            concurrency=3,
        )
        assert not result.failures
        for artifact in samples:
            assert_same_content(source_registry, reg, artifact)
    # Every large blob was read by a ranged read of exactly its data, and the pass jumped past each.
    # (Reads at 0 and 512 are of the catalog: open_bundle looks whether this is a bundle's first volume.)
    ranged = {offset: length for offset, length in spy.ranges if length is not None and offset > 512}
    assert ranged and set(ranged.items()) <= set(large.items())
    assert len(ranged) == len(large)
    jumps = [offset for offset, length in spy.ranges if length is None and offset > 0]
    assert len(jumps) == len(ranged)


def test_shared_blobs_are_stored_once_and_mounted_across_repositories(
    archive: tuple[Path, ExportResult], tmp_path: Path
) -> None:
    path, _ = archive
    with tarfile.open(path) as tf:
        names = [n for n in tf.getnames() if n.startswith(BLOB_PREFIX)]
    assert len(names) == len(set(names))
    info = inspect_archive(file_blob(path))
    assert info["blobCount"] + info["manifestCount"] == len(names)
    with fresh_registry(tmp_path) as reg:
        result = import_archive(source=file_blob(path), client=client(reg))
        assert result.blobs_mounted >= 2  # samples/app and samples/app-copy share config and layers
        # A second import of the same archive re-uploads nothing: every blob is HEAD-skipped.
        again = import_archive(source=file_blob(path), client=client(reg))
        assert again.blobs_uploaded == 0 and again.blobs_skipped >= len(names) - info["manifestCount"]
        assert sorted(again.imported) == sorted(result.imported)


def test_skopeo_reads_the_archive_and_keeps_digests(
    archive: tuple[Path, ExportResult], samples: list[PushedArtifact], tmp_path: Path
) -> None:
    path, _ = archive
    multi = samples[2]
    raw = run_skopeo("inspect", "--raw", f"oci-archive:{path}:{multi.reference}").stdout
    assert hashlib.sha256(raw.encode()).hexdigest() == multi.digest.split(":")[1]
    with fresh_registry(tmp_path, "skopeo-dst") as reg:
        run_skopeo(
            "copy",
            "--all",
            "--preserve-digests",
            "--dest-tls-verify=false",
            f"oci-archive:{path}:{multi.reference}",
            f"docker://{reg.host}/{multi.repository}:{multi.tag}",
        )
        _, _, digest = content.get_manifest(reg.url, multi.repository, multi.tag or "")
        assert digest == multi.digest


def test_referenced_forms_repo_means_latest_and_digest_only(
    source_registry: RegistryServer, samples: list[PushedArtifact], tmp_path: Path
) -> None:
    app = samples[0]
    path = tmp_path / "forms.tar"
    result = export_artifacts(
        client=client(source_registry),
        target=file_blob(path),
        artifacts=refs("samples/multi", f"samples/app@{app.digest}"),
    )
    assert [a.reference for a in result.artifacts] == ["samples/multi:latest", f"samples/app@{app.digest}"]
    with fresh_registry(tmp_path) as reg:
        imported = import_archive(source=file_blob(path), client=client(reg))
        assert content.list_tags(reg.url, "samples/app") == []  # digest-only: no tag invented
        assert content.manifest_exists(reg.url, "samples/app", app.digest)
        assert "samples/multi:latest" in imported.imported


# -- options ------------------------------------------------------------------------------------------


def test_overwrite_blobs(source_registry: RegistryServer, samples: list[PushedArtifact], tmp_path: Path) -> None:
    target = file_blob(tmp_path / "o.tar")
    export_artifacts(client=client(source_registry), artifacts=refs("samples/legacy:v2"), target=target)
    first = (tmp_path / "o.tar").read_bytes()
    with pytest.raises(BlobExists, match="OverwriteBlobs"):
        export_artifacts(client=client(source_registry), artifacts=refs("charts/mychart:0.1.0"), target=target)
    assert (tmp_path / "o.tar").read_bytes() == first
    export_artifacts(
        client=client(source_registry),
        artifacts=refs("charts/mychart:0.1.0"),
        target=target,
        options=frozenset({Opt.OVERWRITE_BLOBS}),
    )
    assert inspect_archive(target)["artifacts"][0]["reference"] == "charts/mychart:0.1.0"


def test_export_continue_on_errors(
    source_registry: RegistryServer, samples: list[PushedArtifact], tmp_path: Path
) -> None:
    target = file_blob(tmp_path / "c.tar")
    with pytest.raises(NotFound, match="samples/nope"):
        export_artifacts(
            client=client(source_registry),
            artifacts=refs("samples/nope:1", "samples/legacy:v2"),
            target=target,
        )
    assert target.stat() is None
    result = export_artifacts(
        client=client(source_registry),
        artifacts=refs("samples/nope:1", "samples/legacy:v2"),
        target=target,
        options=frozenset({Opt.CONTINUE_ON_ERRORS}),
    )
    assert [a.reference for a in result.artifacts] == ["samples/legacy:v2"]
    assert list(result.failures) == ["samples/nope:1"]


def test_overwrite_tags_and_continue_on_errors_on_import(
    archive: tuple[Path, ExportResult], samples: list[PushedArtifact], tmp_path: Path
) -> None:
    path, _ = archive
    with fresh_registry(tmp_path) as reg:
        # The target already has samples/legacy:v2, pointing at other content.
        other = push_docker_image(reg.url, "samples/legacy", "v2", layer_size=1024, seed=99)
        with pytest.raises(TagConflict, match="OverwriteTags"):
            import_archive(source=file_blob(path), client=client(reg))
        # Fail-fast happened before any upload: nothing else arrived.
        assert content.list_tags(reg.url, "samples/multi") == []
        result = import_archive(source=file_blob(path), client=client(reg), options=frozenset({Opt.CONTINUE_ON_ERRORS}))
        assert list(result.failures) == ["samples/legacy:v2"]
        assert "samples/multi:latest" in result.imported
        assert content.get_manifest(reg.url, "samples/legacy", "v2")[2] == other.digest  # untouched
        result = import_archive(source=file_blob(path), client=client(reg), options=frozenset({Opt.OVERWRITE_TAGS}))
        assert not result.failures
        assert content.get_manifest(reg.url, "samples/legacy", "v2")[2] == samples[3].digest


def test_delete_source_blob_on_success_only(archive: tuple[Path, ExportResult], tmp_path: Path) -> None:
    path, _ = archive
    copy = tmp_path / "copy.tar"
    copy.write_bytes(path.read_bytes())
    with fresh_registry(tmp_path) as reg:
        push_oci_image(reg.url, "samples/legacy", "v2", layer_size=1024, seed=98)  # forces a conflict
        result = import_archive(
            source=file_blob(copy),
            client=client(reg),
            options=frozenset({Opt.DELETE_SOURCE_BLOB_ON_SUCCESS, Opt.CONTINUE_ON_ERRORS}),
        )
        assert result.failures and not result.source_deleted and copy.exists()
        result = import_archive(
            source=file_blob(copy),
            client=client(reg),
            options=frozenset({Opt.DELETE_SOURCE_BLOB_ON_SUCCESS, Opt.OVERWRITE_TAGS}),
        )
        assert result.source_deleted and not copy.exists()


# -- tampering: nothing half-landed --------------------------------------------------------------------


def _tamper(path: Path, out: Path, *, member_digest: str | None = None, cut: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    if member_digest is not None:
        with tarfile.open(path) as tf:
            m = tf.getmember(BLOB_PREFIX + member_digest.split(":")[1])
            data[m.offset_data + m.size // 2] ^= 0x01
    if cut is not None:
        del data[cut:]
    out.write_bytes(bytes(data))


def _largest_layer(samples: list[PushedArtifact]) -> str:
    return max(samples[3].blobs, key=lambda b: b[1])[0]  # a layer of samples/legacy:v2


@pytest.mark.parametrize("large_blob", [LARGE_BLOB, 1024], ids=["streamed", "ranged"])
@pytest.mark.parametrize("kind", ["flipped-layer-byte", "truncated", "wrong-catalog-digest"])
def test_tampered_archives_write_no_tags(
    kind: str, large_blob: int, archive: tuple[Path, ExportResult], samples: list[PushedArtifact], tmp_path: Path
) -> None:
    path, exported = archive
    bad = tmp_path / "bad.tar"
    expected: Digest | None = None
    error: type[Exception]
    if kind == "flipped-layer-byte":
        _tamper(path, bad, member_digest=_largest_layer(samples))
        error = IntegrityError
    elif kind == "truncated":
        _tamper(path, bad, cut=path.stat().st_size * 2 // 3)
        error = ArchiveError
    else:
        bad.write_bytes(path.read_bytes())
        expected = Digest.of(b"another archive")
        error = IntegrityError
    with fresh_registry(tmp_path) as reg:
        with pytest.raises(error) as info:
            import_archive(source=file_blob(bad), client=client(reg), catalog_digest=expected, large_blob=large_blob)
        assert "\n" not in str(info.value)
        for artifact in tagged(samples):
            assert content.list_tags(reg.url, artifact.repository) == [], f"{artifact.reference} was tagged"
        # Once the fault is gone (the original archive), the same import completes.
        result = import_archive(source=file_blob(path), client=client(reg), catalog_digest=exported.catalog_digest)
        assert not result.failures


@pytest.mark.parametrize("large_blob", [LARGE_BLOB, 1024], ids=["streamed", "ranged"])
def test_flipped_byte_with_continue_on_errors_fails_only_the_affected_artifact(
    large_blob: int, archive: tuple[Path, ExportResult], samples: list[PushedArtifact], tmp_path: Path
) -> None:
    path, _ = archive
    bad = tmp_path / "bad.tar"
    _tamper(path, bad, member_digest=_largest_layer(samples))
    with fresh_registry(tmp_path) as reg:
        result = import_archive(
            source=file_blob(bad),
            client=client(reg),
            options=frozenset({Opt.CONTINUE_ON_ERRORS}),
            large_blob=large_blob,
        )
        assert list(result.failures) == ["samples/legacy:v2"]
        assert content.list_tags(reg.url, "samples/legacy") == []
        assert "samples/multi:latest" in result.imported


# -- interrupted exports leave nothing visible -------------------------------------------------------


def test_export_failing_mid_stream_leaves_no_blob(
    source_registry: RegistryServer,
    samples: list[PushedArtifact],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    c = client(source_registry)
    real = c.iter_blob
    calls = 0

    def broken(repository: str, desc: object, **kw: object) -> Iterator[bytes]:
        nonlocal calls
        calls += 1
        it = real(repository, desc, **kw)  # type: ignore[arg-type]
        yield next(it)
        if calls >= 2:
            raise RegistryError("registry went away", transient=True)
        yield from it

    monkeypatch.setattr(c, "iter_blob", broken)
    with pytest.raises(RegistryError):
        export_artifacts(client=c, artifacts=refs("samples/multi:latest"), target=file_blob(tmp_path / "x.tar"))
    # Nothing visible: only the hidden staged part a resume continues (the source failed, not the target).
    assert os.listdir(tmp_path) == [".x.tar.airlock-partial"]


def test_killed_export_process_leaves_no_file(source_registry: RegistryServer, tmp_path: Path) -> None:
    big = push_oci_image(source_registry.url, "samples/big", "1", layers=1, layer_size=48 * 1024 * 1024, seed=3)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    exe = Path(sys.executable).parent / "airlock"
    proc = subprocess.Popen(
        [
            str(exe),
            "export",
            "--source-registry",
            source_registry.url,
            "--artifacts",
            big.reference,
            "--target",
            (out_dir / "big.tar").as_uri(),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # Wait until the export holds its staged file open, then freeze the registry and kill airlock.
    deadline = time.monotonic() + 30
    staged = False
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            links = [os.readlink(f"/proc/{proc.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{proc.pid}/fd")]
        except OSError:
            links = []
        if any(str(out_dir) in link for link in links):
            staged = True
            break
        time.sleep(0.005)
    assert staged, "the export never started writing"
    os.kill(source_registry.pid or 0, signal.SIGSTOP)
    try:
        proc.kill()
        assert proc.wait(10) == -signal.SIGKILL
    finally:
        os.kill(source_registry.pid or 0, signal.SIGCONT)
    assert os.listdir(out_dir) in ([], [".big.tar.airlock-partial"])  # nothing visible; what --resume continues


# -- registries with authentication ---------------------------------------------------------------------


def test_basic_auth_registries_on_both_sides(tmp_path: Path) -> None:
    creds = ("airlock", "s3cret-pass")
    with (
        RegistryServer.start(tmp_path / "a", name="auth-src", htpasswd=creds) as src,
        RegistryServer.start(tmp_path / "b", name="auth-dst", htpasswd=creds) as dst,
    ):
        img = push_oci_image(src.url, "secure/app", "1", seed=5, auth=creds)
        path = tmp_path / "auth.tar"
        export_artifacts(client=client(src, Credentials(*creds)), artifacts=refs(img.reference), target=file_blob(path))
        import_archive(source=file_blob(path), client=client(dst, Credentials(*creds)))
        assert content.get_manifest(dst.url, "secure/app", "1", auth=creds)[2] == img.digest


def test_referrers_stay_discoverable_on_a_target_without_the_referrers_api(
    source_registry: RegistryServer, samples: list[PushedArtifact], tmp_path: Path
) -> None:
    """An archive without the subject's tag-schema index (as from a source with the referrers API):
    the import writes that index on a target without the API, so the signature can be found."""
    app, signature = samples[0], samples[1]
    path = tmp_path / "referrers.tar"
    export_artifacts(
        client=client(source_registry),
        target=file_blob(path),
        artifacts=refs(app.reference, f"samples/app@{signature.digest}"),
    )
    fallback = referrers_tag(app.digest)
    assert all(a["reference"] != f"samples/app:{fallback}" for a in inspect_archive(file_blob(path))["artifacts"])
    with fresh_registry(tmp_path) as reg:
        import_archive(source=file_blob(path), client=client(reg))
        raw, _, _ = content.get_manifest(reg.url, "samples/app", fallback)
        listed = json.loads(raw)["manifests"]
        assert [d["digest"] for d in listed] == [signature.digest]
        assert listed[0]["artifactType"] == signature.artifact_type
        # Importing again does not list it twice.
        import_archive(source=file_blob(path), client=client(reg))
        assert len(json.loads(content.get_manifest(reg.url, "samples/app", fallback)[0])["manifests"]) == 1
