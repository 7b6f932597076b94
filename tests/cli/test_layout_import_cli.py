"""`airlock import` of an OCI layout tar written by another tool (skopeo `oci-archive:`), through the
real console script: every digest lands, the output says there was no catalog, and hostile
layout tars are refused with one line and nothing tagged (issue 9, item 8).
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from airlock.testing import azurite as az
from airlock.testing import content
from airlock.testing.azurite import AzuriteServer
from airlock.testing.console import Run, error_message
from airlock.testing.content import PushedArtifact
from airlock.testing.images import push_oci_image, push_oci_index
from airlock.testing.registry_server import RegistryServer
from airlock.testing.skopeo import skopeo_oci_archive
from airlock.testing.tars import Members, members
from airlock.testing.tars import pack as _pack

REPO = "guard/app"
ACCOUNT = "dstacct"


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def multi(source_registry: RegistryServer) -> PushedArtifact:
    return push_oci_index(source_registry.url, "guard/multi", "2.0", seed=92)


@pytest.fixture(scope="module")
def hostile_target(workdir: Path) -> Iterator[RegistryServer]:
    """The target of hostile layout imports (one with a bad layer may upload the good blobs, untagged)."""
    with RegistryServer.start(workdir / "hostile-layout-registry", name="hostile-layouts") as server:
        yield server


def assert_nothing_landed(registry: RegistryServer, image: PushedArtifact) -> None:
    assert content.list_tags(registry.url, REPO) == []
    for digest, _size in image.blobs:
        assert not content.blob_exists(registry.url, REPO, digest), digest


def pack(items: Members) -> bytes:
    return _pack(items, format=tarfile.USTAR_FORMAT)  # as skopeo writes its layouts


def largest_layer(image: PushedArtifact) -> str:
    return max(image.blobs, key=lambda b: b[1])[0]


def test_import_of_a_skopeo_oci_archive_from_azure_reads_it_by_ranges_and_lands_every_digest(
    tmp_path: Path, cli: Callable[..., Run], source_registry: RegistryServer, target_registry: RegistryServer,
    azurite: AzuriteServer,
) -> None:  # fmt: skip
    # Layers over the scanner's 1 MiB read-through window, so the header scan jumps over them.
    big = push_oci_image(source_registry.url, "guard/big", "3.0", seed=93, layers=2, layer_size=3 << 20)
    layout = skopeo_oci_archive(source_registry, big.reference, tmp_path / "big.tar", big.reference)
    az.create_container(azurite, ACCOUNT, "layouts")
    sas = tmp_path / "r.sas"
    sas.write_text("?" + az.container_sas(azurite, ACCOUNT, "layouts", permissions="rl"))
    az.upload_blob(azurite, ACCOUNT, "layouts", "big.tar", layout.read_bytes())
    url = az.container_url(azurite, ACCOUNT, "layouts") + "/big.tar"
    out = cli("import", "--source", url, "--sas-token-file", sas, "--target-registry", target_registry.url).json()
    assert out["sourceFormat"] == "oci-layout" and out["importedArtifacts"] == [big.reference]
    assert content.get_manifest(target_registry.url, big.repository, "3.0")[2] == big.digest
    for blob, _size in big.blobs:
        content.get_blob(target_registry.url, big.repository, blob)


# --------------------------------------------------------------------- item 8: importing another tool's layout


def test_import_of_a_skopeo_oci_archive_lands_every_digest_and_says_it_had_no_catalog(
    tmp_path: Path, cli: Callable[..., Run], skopeo_tar: Path, multi: PushedArtifact, image: PushedArtifact,
    source_registry: RegistryServer, target_registry: RegistryServer,
) -> None:  # fmt: skip
    run = cli("import", "--source", skopeo_tar.as_uri(), "--target-registry", target_registry.url)
    out = run.json()
    assert out["sourceFormat"] == "oci-layout" and out["catalogDigest"] is None
    assert "no airlock catalog" in out["note"] and "verified by its digest" in out["note"]
    assert "no airlock catalog" in run.stderr  # said on stderr too, not only in the JSON
    assert out["importedArtifacts"] == [image.reference] and out["failedArtifacts"] == {}
    multi_tar = skopeo_oci_archive(source_registry, multi.reference, tmp_path / "multi.tar", multi.reference, "--all")
    out = cli("import", "--source", multi_tar.as_uri(), "--target-registry", target_registry.url).json()
    assert out["importedArtifacts"] == [multi.reference]
    for artifact in (image, multi):
        _, media_type, digest = content.get_manifest(target_registry.url, artifact.repository, str(artifact.tag))
        assert digest == artifact.digest and media_type == artifact.media_type
        for blob, _size in artifact.blobs:
            content.get_blob(target_registry.url, artifact.repository, blob)  # present, and checked by digest


def test_import_of_a_bare_tag_oci_layout_needs_repository_and_lands_there(
    tmp_path: Path, cli: Callable[..., Run], source_registry: RegistryServer, target_registry: RegistryServer,
    untouched: RegistryServer, image: PushedArtifact,
) -> None:  # fmt: skip
    bare = skopeo_oci_archive(source_registry, image.reference, tmp_path / "bare.tar", "1.0")  # ref.name "1.0"
    message = error_message(cli("import", "--source", bare.as_uri(), "--target-registry", untouched.url), 2)
    assert "'1.0'" in message and "--repository" in message, message
    assert_nothing_landed(untouched, image)
    out = cli("import", "--source", bare.as_uri(), "--target-registry", target_registry.url,
              "--repository", "guard/elsewhere").json()  # fmt: skip
    assert out["importedArtifacts"] == ["guard/elsewhere:1.0"]
    assert content.get_manifest(target_registry.url, "guard/elsewhere", "1.0")[2] == image.digest


def test_import_of_an_oci_layout_refuses_catalog_digest_and_airlock_archives_refuse_repository(
    cli: Callable[..., Run], skopeo_tar: Path, exported: Path, untouched: RegistryServer, image: PushedArtifact
) -> None:
    digest = content.catalog_digest_of(exported)
    base = ["import", "--target-registry", untouched.url]
    message = error_message(cli(*base, "--source", skopeo_tar.as_uri(), "--catalog-digest", digest), 2)
    assert "--catalog-digest" in message and "no airlock catalog" in message, message
    message = error_message(cli(*base, "--source", exported.as_uri(), "--repository", "guard/x"), 2)
    assert "--repository" in message and "airlock transfer blob" in message, message
    assert_nothing_landed(untouched, image)


def _layout_blob(items: list[tuple[tarfile.TarInfo, bytes]], digest: str) -> int:
    return next(i for i, (info, _) in enumerate(items) if info.name.endswith(digest.split(":")[1]))


def _link(name: str, target: str, kind: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, b""


def _without(items: list[tuple[tarfile.TarInfo, bytes]], name: str) -> list[tuple[tarfile.TarInfo, bytes]]:
    return [(i, d) for i, d in items if i.name != name]


def _hostile_layouts(
    image: PushedArtifact,
) -> dict[str, tuple[Callable[[list[tuple[tarfile.TarInfo, bytes]]], bytes], str]]:
    layer = largest_layer(image)
    layer_name = "blobs/sha256/" + layer.split(":")[1]

    def flipped(items: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
        at = _layout_blob(items, layer)
        info, data = items[at]
        return pack([*items[:at], (info, bytes([data[0] ^ 1]) + data[1:]), *items[at + 1 :]])

    def linked(kind: bytes, target: str) -> Callable[[list[tuple[tarfile.TarInfo, bytes]]], bytes]:
        return lambda items: pack([*_without(items, layer_name), _link(layer_name, target, kind)])

    def huge(items: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
        data = pack(items)
        return data[: len(data) // 2]  # a member's header now claims more than the blob holds

    return {
        "dotdot-member": (lambda items: pack([(tarfile.TarInfo("../../evil"), b"x"), *items]), "unsafe path"),
        "absolute-member": (lambda items: pack([(tarfile.TarInfo("/tmp/airlock-evil"), b"x"), *items]), "unsafe path"),
        "symlink-blob": (linked(tarfile.SYMTYPE, "/etc/passwd"), "symbolic link"),
        "hardlink-blob": (linked(tarfile.LNKTYPE, "index.json"), "hard link"),
        "huge-member": (huge, "past the end"),
        "missing-blob": (lambda items: pack(_without(items, layer_name)), "lacks"),
        "flipped-layer-byte": (flipped, "digest mismatch"),
        "duplicate-member": (lambda items: pack([*items, items[-1]]), "duplicate"),
        "no-index": (lambda items: pack(_without(items, "index.json")), "no index.json"),
        "manifest-missing": (
            lambda items: pack(_without(items, "blobs/sha256/" + image.digest.split(":")[1])),
            "not in the tar",
        ),
    }


HOSTILE_LAYOUTS = [
    "dotdot-member", "absolute-member", "symlink-blob", "hardlink-blob", "huge-member", "missing-blob",
    "flipped-layer-byte", "duplicate-member", "no-index", "manifest-missing",
]  # fmt: skip


@pytest.mark.parametrize("case", HOSTILE_LAYOUTS)
def test_import_refuses_hostile_oci_layouts_with_one_line_and_tags_nothing(
    tmp_path: Path, cli: Callable[..., Run], skopeo_tar: Path, hostile_target: RegistryServer,
    image: PushedArtifact, case: str,
) -> None:  # fmt: skip
    make, expected = _hostile_layouts(image)[case]
    bad = tmp_path / "work" / f"{case}.tar"
    bad.parent.mkdir()
    bad.write_bytes(make(members(skopeo_tar)))
    before = set(os.listdir("/tmp"))
    message = error_message(cli("import", "--source", bad.as_uri(), "--target-registry", hostile_target.url))
    assert expected in message, message
    assert content.list_tags(hostile_target.url, REPO) == []
    assert not (tmp_path / "evil").exists() and "airlock-evil" not in set(os.listdir("/tmp")) - before
    assert sorted(p.name for p in bad.parent.iterdir()) == [bad.name]
