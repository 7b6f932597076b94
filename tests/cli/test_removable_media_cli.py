"""Bundles on removable media: a real FAT32 file system (``airlock.testing.removable_media``), which has
no hard links. Export (one file and in volumes), copy and import work on it as on any disk, and a
name that exists is still refused without OverwriteBlobs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from airlock.testing import content
from airlock.testing.console import Run
from airlock.testing.content import PushedArtifact
from airlock.testing.images import push_oci_image
from airlock.testing.registry_server import RegistryServer
from airlock.testing.removable_media import fat32_mount

REPO = "usb/app"


@pytest.fixture(scope="module")
def stick(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with fat32_mount(tmp_path_factory.mktemp("usb")) as mountpoint:
        yield mountpoint


@pytest.fixture(scope="module")
def app(source_registry: RegistryServer) -> PushedArtifact:
    return push_oci_image(source_registry.url, REPO, "1.0", seed=131, layers=4, layer_size=30 * 1024)


def test_a_link_is_refused_on_the_stick(stick: Path) -> None:
    """What the commit must cope with: FAT has no hard links (the file system is really FAT)."""
    (stick / "a").write_bytes(b"x")
    with pytest.raises(PermissionError):
        (stick / "b").hardlink_to(stick / "a")


def test_export_in_volumes_onto_a_fat32_stick_then_import_from_it(
    stick: Path, cli: Callable[..., Run], source_registry: RegistryServer, target_registry: RegistryServer,
    app: PushedArtifact,
) -> None:  # fmt: skip
    target = stick / "batch1.tar"
    run = cli("export", "--source-registry", source_registry.url, "-a", f"{REPO}:1.0", "--target", target,
              "--volume-size", "64KiB")  # fmt: skip
    out = run.json()
    assert len(out["volumes"]) > 1, out
    assert sorted(p.name for p in stick.iterdir() if p.name.startswith("batch1.tar")) == [
        Path(v["uri"]).name for v in out["volumes"]
    ]
    assert not [p.name for p in stick.iterdir() if p.name.startswith(".")]  # nothing staged left behind
    imported = cli("import", "--source", target, "--target-registry", target_registry.url).json()
    assert imported["importedArtifacts"] == [f"{REPO}:1.0"]
    assert content.get_manifest(target_registry.url, REPO, "1.0")[2] == app.digest


def test_export_and_copy_of_one_file_onto_a_fat32_stick_and_a_name_that_exists_is_refused(
    stick: Path, tmp_path: Path, cli: Callable[..., Run], source_registry: RegistryServer, app: PushedArtifact
) -> None:
    local = tmp_path / "one.tar"
    cli("export", "--source-registry", source_registry.url, "-a", f"{REPO}:1.0", "--target", local).json()
    direct = cli("export", "--source-registry", source_registry.url, "-a", f"{REPO}:1.0", "--target", stick / "one.tar")
    assert direct.json()["catalogDigest"]
    resumable = cli("export", "--source-registry", source_registry.url, "-a", f"{REPO}:1.0", "--target",
                    stick / "resumable.tar", "--resume")  # fmt: skip
    assert resumable.json()["catalogDigest"]  # the staged-file writer (--resume) commits there too
    assert (stick / "resumable.tar").is_file()
    copied = cli("copy", local, stick / "copied.tar").json()
    assert copied["verified"] is True
    assert (stick / "copied.tar").read_bytes() == local.read_bytes()

    again = cli("copy", local, stick / "copied.tar")
    message = again.only_error(1)
    assert "copied.tar" in message and "already exists" in message, message
    assert not [p.name for p in stick.iterdir() if p.name.startswith(".")]
    over = cli("export", "--source-registry", source_registry.url, "-a", f"{REPO}:1.0", "--target", stick / "one.tar",
               "--options", "OverwriteBlobs")  # fmt: skip
    assert over.json()["catalogDigest"]
