"""Transfer blobs that are cut, tampered with, or not airlock's at all, through the real console script.

Issue 9, items 3 and 8: `copy` verifies every member as it streams and leaves no target when it
fails; plain `inspect` checks the blob's size against its catalog; a blob that is not an airlock
archive is named for what it is (gzip, docker save, another tool's OCI layout, another tar,
nothing), by `inspect`, `import` and an import pipeline run. Importing another tool's OCI layout
tar is in test_layout_import_cli.py.
"""

from __future__ import annotations

import gzip
import json
import os
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from airlock.testing import azurite as az
from airlock.testing import content
from airlock.testing.azurite import AzuriteServer
from airlock.testing.console import Run, error_message
from airlock.testing.content import PushedArtifact
from airlock.testing.registry_server import RegistryServer
from airlock.testing.skopeo import run_skopeo
from airlock.testing.tars import Members
from airlock.testing.tars import pack as _pack

REPO = "guard/app"
ACCOUNT = "dstacct"
CONTAINER = "guarded"


# ---------------------------------------------------------------------------------------------- fixtures


def assert_nothing_landed(registry: RegistryServer, image: PushedArtifact) -> None:
    assert content.list_tags(registry.url, REPO) == []
    for digest, _size in image.blobs:
        assert not content.blob_exists(registry.url, REPO, digest), digest


def pack(items: Members) -> bytes:
    return _pack(items, format=tarfile.USTAR_FORMAT)  # as skopeo writes its layouts


def largest_layer(image: PushedArtifact) -> str:
    return max(image.blobs, key=lambda b: b[1])[0]


def data_offset(archive: Path, digest: str) -> int:
    with tarfile.open(archive) as tf:
        return tf.getmember("blobs/sha256/" + digest.split(":")[1]).offset_data


# ------------------------------------------------------------------------------------------ item 3: copy


def test_copy_success_reports_verified_and_the_copy_is_byte_for_byte(
    tmp_path: Path, cli: Callable[..., Run], exported: Path
) -> None:
    target = tmp_path / "copy.tar"
    out = cli("copy", exported.as_uri(), target.as_uri()).json()
    assert out["verified"] is True and out["isTransferArchive"] is True
    assert out["catalogDigest"] == content.catalog_digest_of(exported)
    assert out["size"] == exported.stat().st_size
    assert target.read_bytes() == exported.read_bytes()


@pytest.mark.parametrize("cut", ["half", "end-marker", "last-byte"])
def test_copy_refuses_truncated_archive_and_leaves_no_target(
    tmp_path: Path, cli: Callable[..., Run], exported: Path, cut: str
) -> None:
    data = exported.read_bytes()
    keep = {"half": len(data) // 2, "end-marker": len(data) - 1024, "last-byte": len(data) - 1}[cut]
    source = tmp_path / "cut.tar"
    source.write_bytes(data[:keep])
    target = tmp_path / "out" / "copy.tar"
    target.parent.mkdir()
    message = error_message(cli("copy", source.as_uri(), target.as_uri()))
    assert "truncated" in message, message
    assert not target.exists() and list(target.parent.iterdir()) == []


def test_copy_refuses_tampered_archive_and_leaves_no_target(
    tmp_path: Path, cli: Callable[..., Run], exported: Path, image: PushedArtifact
) -> None:
    layer = largest_layer(image)
    data = bytearray(exported.read_bytes())
    data[data_offset(exported, layer) + 1000] ^= 0x01
    source = tmp_path / "flipped.tar"
    source.write_bytes(bytes(data))
    target = tmp_path / "copy.tar"
    message = error_message(cli("copy", source.as_uri(), target.as_uri()))
    assert layer in message and "digest mismatch" in message, message
    assert not target.exists()


def test_copy_to_azure_refuses_tampered_archive_and_commits_no_blob(
    tmp_path: Path, cli: Callable[..., Run], exported: Path, image: PushedArtifact, azurite: AzuriteServer
) -> None:
    az.create_container(azurite, ACCOUNT, CONTAINER)
    sas = tmp_path / "rw.sas"
    sas.write_text("?" + az.container_sas(azurite, ACCOUNT, CONTAINER, permissions="racwl"))
    url = az.container_url(azurite, ACCOUNT, CONTAINER)
    data = bytearray(exported.read_bytes())
    data[data_offset(exported, largest_layer(image)) + 7] ^= 0x80
    source = tmp_path / "flipped.tar"
    source.write_bytes(bytes(data))
    run = cli("copy", source.as_uri(), f"{url}/flipped.tar", "--target-sas-token-file", sas)
    assert "digest mismatch" in error_message(run)
    assert az.list_blob_names(azurite, ACCOUNT, CONTAINER) == []
    # The intact archive goes through, verified.
    out = cli("copy", exported.as_uri(), f"{url}/good.tar", "--target-sas-token-file", sas).json()
    assert out["verified"] is True
    assert az.download_blob(azurite, ACCOUNT, CONTAINER, "good.tar") == exported.read_bytes()


def test_copy_refuses_data_appended_to_an_archive(tmp_path: Path, cli: Callable[..., Run], exported: Path) -> None:
    source = tmp_path / "appended.tar"
    source.write_bytes(exported.read_bytes() + b"riding along")
    target = tmp_path / "copy.tar"
    assert "after its end marker" in error_message(cli("copy", source.as_uri(), target.as_uri()))
    assert not target.exists()


def test_copy_of_a_non_airlock_blob_copies_it_unverified_and_says_what_it_is(
    tmp_path: Path, cli: Callable[..., Run], exported: Path
) -> None:
    source = tmp_path / "batch.tar.gz"
    source.write_bytes(gzip.compress(exported.read_bytes()))
    target = tmp_path / "copy.tar.gz"
    out = cli("copy", source.as_uri(), target.as_uri()).json()
    assert out["verified"] is False and out["isTransferArchive"] is False and out["catalogDigest"] is None
    assert out["note"].startswith("not an airlock transfer blob (it looks like a gzip stream)"), out
    assert target.read_bytes() == source.read_bytes()


# --------------------------------------------------------------------------------------- item 3: inspect


@pytest.mark.parametrize("cut", ["half", "end-marker"])
def test_inspect_without_verify_refuses_a_truncated_blob(
    tmp_path: Path, cli: Callable[..., Run], exported: Path, cut: str
) -> None:
    data = exported.read_bytes()
    keep = len(data) // 2 if cut == "half" else len(data) - 1024
    source = tmp_path / "cut.tar"
    source.write_bytes(data[:keep])
    message = error_message(cli("inspect", source.as_uri()))
    assert f"is truncated: {keep} bytes, its catalog implies {len(data)}" in message, message
    assert "inspect --verify" in message


def test_inspect_without_verify_refuses_data_appended_past_the_end(
    tmp_path: Path, cli: Callable[..., Run], exported: Path
) -> None:
    data = exported.read_bytes()
    source = tmp_path / "appended.tar"
    source.write_bytes(data + b"x" * 600)
    assert "past its end" in error_message(cli("inspect", source.as_uri()))
    # Replacing the end marker with data of the same length is caught by the tail check.
    same_size = tmp_path / "same-size.tar"
    same_size.write_bytes(data[:-1024] + b"y" * 1024)
    assert "end marker" in error_message(cli("inspect", same_size.as_uri()))
    # The archive as written passes, with its exact size.
    assert cli("inspect", exported.as_uri()).json()["size"] == len(data)


def test_import_refuses_a_truncated_blob_before_uploading_anything(
    tmp_path: Path, cli: Callable[..., Run], exported: Path, untouched: RegistryServer, image: PushedArtifact
) -> None:
    data = exported.read_bytes()
    source = tmp_path / "cut.tar"
    source.write_bytes(data[: len(data) - 4096])
    message = error_message(cli("import", "--source", source.as_uri(), "--target-registry", untouched.url))
    assert "truncated" in message and "nothing was imported" in message, message
    assert_nothing_landed(untouched, image)


# ----------------------------------------------------------------------------- item 8: not airlock's blobs


def _docker_save_tar() -> bytes:
    """The shape of `docker save` (legacy, and skopeo's docker-archive:): <id>/ dirs, layer.tar, json."""
    layer_id, config = "c" * 64, "d" * 64
    items: list[tuple[tarfile.TarInfo, bytes]] = []
    folder = tarfile.TarInfo(layer_id + "/")
    folder.type = tarfile.DIRTYPE
    items.append((folder, b""))
    items += [(tarfile.TarInfo(f"{layer_id}/VERSION"), b"1.0"), (tarfile.TarInfo(f"{layer_id}/json"), b"{}")]
    items.append((tarfile.TarInfo(f"{layer_id}/layer.tar"), bytes(2048)))
    items.append((tarfile.TarInfo(f"{config}.json"), b'{"architecture":"amd64"}'))
    manifest = [{"Config": f"{config}.json", "RepoTags": ["guard/app:1.0"], "Layers": [f"{layer_id}/layer.tar"]}]
    items.append((tarfile.TarInfo("manifest.json"), json.dumps(manifest).encode()))
    items.append((tarfile.TarInfo("repositories"), json.dumps({"guard/app": {"1.0": layer_id}}).encode()))
    return pack(items)


def _random_tar() -> bytes:
    return pack(
        [(tarfile.TarInfo("notes/readme.txt"), b"hello\n" * 100), (tarfile.TarInfo("data.bin"), os.urandom(5000))]
    )


# kind -> (how to make it from the airlock archive, what the error must say it looks like, a word of advice)
FOREIGN: dict[str, tuple[Callable[[bytes], bytes], str, str]] = {
    "gzip": (gzip.compress, "a gzip stream", "decompress it first"),
    "docker-save": (lambda _: _docker_save_tar(), "a docker-save archive", "docker load"),
    "random-tar": (lambda _: _random_tar(), "a tar archive of something else", "'notes/readme.txt'"),
    "empty": (lambda _: b"", "an empty file", "did not finish"),
    "not-a-tar": (lambda _: b"just some text\n" * 10, "data that is not a tar archive", "airlock export"),
}


@pytest.mark.parametrize("kind", sorted(FOREIGN))
def test_import_says_what_a_non_airlock_blob_looks_like_and_lands_nothing(
    tmp_path: Path, cli: Callable[..., Run], exported: Path, untouched: RegistryServer, image: PushedArtifact,
    kind: str,
) -> None:  # fmt: skip
    make, looks_like, advice = FOREIGN[kind]
    source = tmp_path / f"{kind}.tar"
    source.write_bytes(make(exported.read_bytes()))
    message = error_message(cli("import", "--source", source.as_uri(), "--target-registry", untouched.url))
    assert message.startswith(f"not an airlock transfer blob (it looks like {looks_like}): {source.as_uri()}; ")
    assert advice in message, message
    assert_nothing_landed(untouched, image)


@pytest.mark.parametrize("kind", [*sorted(FOREIGN), "skopeo-oci-archive", "skopeo-docker-archive"])
def test_inspect_says_what_a_non_airlock_blob_looks_like(
    tmp_path: Path, cli: Callable[..., Run], exported: Path, skopeo_tar: Path, source_registry: RegistryServer,
    image: PushedArtifact, kind: str,
) -> None:  # fmt: skip
    if kind == "skopeo-oci-archive":
        source, looks_like, advice = skopeo_tar, "an OCI layout written by another tool", "airlock import --source"
    elif kind == "skopeo-docker-archive":
        source = tmp_path / "docker-archive.tar"
        host = source_registry.url.split("://", 1)[1]
        run_skopeo("copy", "--src-tls-verify=false", f"docker://{host}/{image.reference}", f"docker-archive:{source}")
        looks_like, advice = "a docker-save archive", "docker load"
    else:
        make, looks_like, advice = FOREIGN[kind]
        source = tmp_path / f"{kind}.tar"
        source.write_bytes(make(exported.read_bytes()))
    for argv in (["inspect", source.as_uri()], ["inspect", "--verify", source.as_uri()]):
        message = error_message(cli(*argv))
        assert message.startswith(f"not an airlock transfer blob (it looks like {looks_like}): "), message
        assert advice in message, message


def test_import_pipeline_run_says_a_skopeo_archive_is_not_an_airlock_transfer_blob(
    tmp_path: Path, cli: Callable[..., Run], skopeo_tar: Path, untouched: RegistryServer, image: PushedArtifact
) -> None:
    container = tmp_path / "container"
    container.mkdir()
    (container / "skopeo.tar").write_bytes(skopeo_tar.read_bytes())
    cli("acr", "create", "-g", "rg", "-n", "guardreg", "--login-server", untouched.url).json()
    cli("acr", "import-pipeline", "create", "-g", "rg", "-r", "guardreg", "-n", "guardimport",
        "-c", container.as_uri(), "-e", "False").json()  # fmt: skip
    run = cli("acr", "pipeline-run", "create", "-g", "rg", "-r", "guardreg", "-p", "guardimport", "-n", "guardrun",
              "-t", "import", "-b", "skopeo.tar")  # fmt: skip
    message = error_message(run, 1, stdout_empty=False)
    error = json.loads(run.stdout)["properties"]["response"]["pipelineRunErrorMessage"]
    assert error.startswith("not an airlock transfer blob (it looks like an OCI layout written by another tool)")
    assert error in message
    assert_nothing_landed(untouched, image)
