"""Sample OCI content: deterministic, well-formed, readable by an independent client (skopeo)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airlock.testing import content
from airlock.testing.content import PushedArtifact
from airlock.testing.helm import push_helm_chart
from airlock.testing.images import push_docker_image, push_docker_manifest_list, push_oci_image
from airlock.testing.referrers import push_oci_artifact, push_referrer, referrers_tag
from airlock.testing.registry_server import RegistryServer
from airlock.testing.samples import push_sample_set
from airlock.testing.skopeo import run_skopeo

USER, PASSWORD = "bob", "hunter2-but-longer"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("content")


@pytest.fixture(scope="module")
def registry(workdir: Path) -> Iterator[RegistryServer]:
    with RegistryServer.start(workdir) as server:
        yield server


@pytest.fixture(scope="module")
def samples(registry: RegistryServer) -> list[PushedArtifact]:
    return push_sample_set(registry.url)


def read_back(registry: RegistryServer, artifact: PushedArtifact) -> dict[str, Any]:
    raw, media_type, digest = content.get_manifest(registry.url, artifact.repository, artifact.digest)
    assert (raw, media_type, digest) == (artifact.manifest, artifact.media_type, artifact.digest)
    manifest: dict[str, Any] = json.loads(raw)
    return manifest


def assert_blobs_stored(registry: RegistryServer, artifact: PushedArtifact) -> None:
    for digest, size in artifact.blobs:
        assert len(content.get_blob(registry.url, artifact.repository, digest)) == size


def untar_gz(blob: bytes) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        for member in tar.getmembers():
            extracted = tar.extractfile(member)
            if extracted is not None:
                files[member.name] = extracted.read()
    return files


def test_sample_set(registry: RegistryServer, samples: list[PushedArtifact]) -> None:
    refs = [a.reference for a in samples]
    app, signature, multi, legacy, chart = samples
    assert refs == [
        "samples/app:1.0",
        f"samples/app@{signature.digest}",
        "samples/multi:latest",
        "samples/legacy:v2",
        "charts/mychart:0.1.0",
    ]
    assert [a.media_type for a in samples] == [
        content.OCI_MANIFEST,
        content.OCI_MANIFEST,
        content.OCI_INDEX,
        content.DOCKER_MANIFEST,
        content.OCI_MANIFEST,
    ]
    total = sum(size for a in samples for _, size in a.blobs) + sum(a.size for a in samples)
    assert total <= 1024 * 1024
    assert sorted(content.list_tags(registry.url, "samples/app")) == sorted(["1.0", referrers_tag(app.digest)])
    assert content.list_tags(registry.url, "samples/multi") == ["latest"]
    assert content.list_tags(registry.url, "nope/nothing") == []
    for artifact in samples:
        read_back(registry, artifact)
        assert_blobs_stored(registry, artifact)
    assert len(multi.children) == 2 and len(multi.blobs) == 6
    # Pushing again is idempotent and reproduces every digest.
    assert [a.digest for a in push_sample_set(registry.url)] == [a.digest for a in samples]
    assert (legacy.tag, chart.tag) == ("v2", "0.1.0")


def test_deterministic_digests(registry: RegistryServer) -> None:
    first = push_oci_image(registry.url, "det/one", "a", layer_size=4096, seed=7)
    same = push_oci_image(registry.url, "det/two", "b", layer_size=4096, seed=7)
    other = push_oci_image(registry.url, "det/two", "c", layer_size=4096, seed=8)
    assert first.digest == same.digest and first.blobs == same.blobs
    assert other.digest != first.digest
    assert not {d for d, _ in other.blobs} & {d for d, _ in first.blobs}
    arm = push_oci_image(registry.url, "det/two", "d", layer_size=4096, seed=7, platform=("linux", "arm64"))
    assert arm.digest != first.digest


def test_oci_image_layers_and_config(registry: RegistryServer) -> None:
    image = push_oci_image(registry.url, "shape/oci", "1", layers=3, layer_size=5000, seed=3)
    manifest = read_back(registry, image)
    assert manifest["mediaType"] == content.OCI_MANIFEST and manifest["schemaVersion"] == 2
    assert manifest["config"]["mediaType"] == content.OCI_CONFIG
    config = json.loads(content.get_blob(registry.url, "shape/oci", manifest["config"]["digest"]))
    assert (config["os"], config["architecture"]) == ("linux", "amd64")
    assert len(manifest["layers"]) == 3
    for layer, diff_id in zip(manifest["layers"], config["rootfs"]["diff_ids"], strict=True):
        assert layer["mediaType"] == content.OCI_LAYER
        blob = content.get_blob(registry.url, "shape/oci", layer["digest"])
        assert sha256(gzip.decompress(blob)) == diff_id
        files = untar_gz(blob)
        assert [len(data) for data in files.values()] == [5000]
    assert content.blob_exists(registry.url, "shape/oci", manifest["layers"][0]["digest"])
    assert not content.blob_exists(registry.url, "shape/oci", sha256(b"absent"))
    assert content.manifest_exists(registry.url, "shape/oci", "1")
    assert not content.manifest_exists(registry.url, "shape/oci", "2")
    with pytest.raises(RuntimeError, match="not found"):
        content.get_manifest(registry.url, "shape/oci", "2")


def test_docker_image_and_manifest_list(registry: RegistryServer) -> None:
    image = push_docker_image(registry.url, "shape/docker", "img", layer_size=1024)
    manifest = read_back(registry, image)
    assert manifest["config"]["mediaType"] == content.DOCKER_CONFIG
    assert {layer["mediaType"] for layer in manifest["layers"]} == {content.DOCKER_LAYER}

    listed = push_docker_manifest_list(registry.url, "shape/docker", "list", layer_size=1024)
    index = read_back(registry, listed)
    assert index["mediaType"] == content.DOCKER_MANIFEST_LIST
    assert [m["platform"]["architecture"] for m in index["manifests"]] == ["amd64", "arm64"]
    assert [m["digest"] for m in index["manifests"]] == list(listed.children)
    assert index["manifests"][0]["digest"] == image.digest  # same seed and platform as the single image
    for child in listed.children:
        assert content.get_manifest(registry.url, "shape/docker", child)[1] == content.DOCKER_MANIFEST
    assert_blobs_stored(registry, listed)


def test_helm_chart(registry: RegistryServer, samples: list[PushedArtifact]) -> None:
    chart = samples[-1]
    manifest = read_back(registry, chart)
    assert manifest["config"]["mediaType"] == content.HELM_CONFIG
    config = json.loads(content.get_blob(registry.url, chart.repository, manifest["config"]["digest"]))
    assert config == {"name": "mychart", "version": "0.1.0", "apiVersion": "v2", "type": "application"}
    (layer,) = manifest["layers"]
    assert layer["mediaType"] == content.HELM_CHART_LAYER
    files = untar_gz(content.get_blob(registry.url, chart.repository, layer["digest"]))
    assert b"version: 0.1.0" in files["mychart/Chart.yaml"]


def test_oci_artifact(registry: RegistryServer) -> None:
    assert sha256(b"{}") == content.EMPTY_DIGEST
    sbom = push_oci_artifact(registry.url, "shape/sbom", "sbom")
    manifest = read_back(registry, sbom)
    assert manifest["artifactType"] == "application/vnd.example.sbom.v1+json" == sbom.artifact_type
    assert manifest["config"] == {
        "mediaType": content.EMPTY_CONFIG,
        "digest": content.EMPTY_DIGEST,
        "size": 2,
    }
    assert content.get_blob(registry.url, "shape/sbom", content.EMPTY_DIGEST) == b"{}"
    assert len(manifest["layers"]) == 1


def test_referrers_fallback_index(registry: RegistryServer, samples: list[PushedArtifact]) -> None:
    app, signature = samples[0], samples[1]
    signed = read_back(registry, signature)
    assert signed["subject"] == app.descriptor()
    assert signed["artifactType"] == "application/vnd.example.signature.v1"

    tag = referrers_tag(app.digest)
    assert tag == "sha256-" + app.digest.removeprefix("sha256:")
    raw, media_type, _ = content.get_manifest(registry.url, "samples/app", tag)
    assert media_type == content.OCI_INDEX
    entries = json.loads(raw)["manifests"]
    assert entries == [
        {
            **signature.descriptor(),
            "artifactType": "application/vnd.example.signature.v1",
            "annotations": dict(signature.annotations),
        }
    ]

    sbom = push_referrer(registry.url, "samples/app", app, artifact_type="application/vnd.example.sbom.v1+json", seed=5)
    again = push_referrer(registry.url, "samples/app", app)  # same as the sample's: no duplicate
    assert again.digest == signature.digest
    entries = json.loads(content.get_manifest(registry.url, "samples/app", tag)[0])["manifests"]
    assert [e["digest"] for e in entries] == [signature.digest, sbom.digest]
    assert sbom.tag is None and sbom.reference == f"samples/app@{sbom.digest}"


def test_skopeo_copies_samples(registry: RegistryServer, samples: list[PushedArtifact]) -> None:
    # skopeo re-reads and verifies every blob against its digest, so a copy proves the content is sound.
    multi = samples[2]
    src = f"docker://{registry.host}/{multi.reference}"
    dst = f"docker://{registry.host}/copied/multi:latest"
    run_skopeo("copy", "--all", "--preserve-digests", "--src-tls-verify=false", "--dest-tls-verify=false", src, dst)
    assert content.get_manifest(registry.url, "copied/multi", "latest")[2] == multi.digest
    raw = run_skopeo("inspect", "--tls-verify=false", "--raw", src).stdout.encode()
    assert sha256(raw) == multi.digest
    inspected = json.loads(
        run_skopeo("inspect", "--tls-verify=false", f"docker://{registry.host}/samples/legacy:v2").stdout
    )
    assert inspected["Digest"] == samples[3].digest
    assert inspected["Layers"] == [d for d, _ in samples[3].blobs[1:]]


def test_basic_auth(workdir: Path) -> None:
    with RegistryServer.start(workdir, name="locked", htpasswd=(USER, PASSWORD)) as locked:
        pushed = push_helm_chart(locked.url, "charts/locked", "1.2.3", auth=(USER, PASSWORD))
        assert content.list_tags(locked.url, "charts/locked", auth=(USER, PASSWORD)) == ["1.2.3"]
        assert content.get_manifest(locked.url, "charts/locked", "1.2.3", auth=(USER, PASSWORD))[2] == pushed.digest
        with pytest.raises(RuntimeError, match="401"):
            push_oci_image(locked.url, "charts/locked", "x", layer_size=16)
        with pytest.raises(RuntimeError, match="401"):
            content.get_manifest(locked.url, "charts/locked", "1.2.3", auth=(USER, "wrong"))
