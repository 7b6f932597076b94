"""Multi-volume bundles (issue 12), through the real console script: `export --volume-size`, then
import, inspect and copy given the first volume; a missing, cut or corrupt volume is named by its
index before any tag is written. Tiny volumes (64 KiB) over a few 30 KiB layers."""

from __future__ import annotations

import hashlib
import json
import secrets
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from airlock.testing import azurite as az
from airlock.testing import content
from airlock.testing.azurite import AzuriteServer
from airlock.testing.console import Console, Run
from airlock.testing.content import PushedArtifact
from airlock.testing.images import push_oci_image
from airlock.testing.registry_server import RegistryServer
from airlock.testing.skopeo import run_skopeo

REPO = "vol/app"
VOLUME = 64 * 1024


@pytest.fixture(scope="module")
def app(source_registry: RegistryServer) -> PushedArtifact:
    return push_oci_image(source_registry.url, REPO, "1.0", seed=121, layers=5, layer_size=30 * 1024)


@pytest.fixture(scope="module")
def bundle(
    tmp_path_factory: pytest.TempPathFactory, cli: Callable[..., Run], source_registry: RegistryServer,
    app: PushedArtifact,
) -> dict[str, object]:  # fmt: skip
    """The export's JSON; its volumes are in a directory of their own, which tests copy from."""
    target = tmp_path_factory.mktemp("bundle") / "batch1.tar"
    out: dict[str, object] = cli(
        "export", "--source-registry", source_registry.url, "-a", app.reference, "--target", target,
        "--volume-size", "64KiB",
    ).json()  # fmt: skip
    return out


def volume_paths(bundle: dict[str, object]) -> list[Path]:
    volumes = bundle["volumes"]
    assert isinstance(volumes, list)
    return [Path(v["uri"].removeprefix("file://")) for v in volumes]


def copy_volumes(bundle: dict[str, object], into: Path, *, leave_out: int | None = None) -> Path:
    """The bundle's volumes copied into ``into`` (all but volume ``leave_out``); returns the first."""
    into.mkdir(parents=True, exist_ok=True)
    for index, path in enumerate(volume_paths(bundle), start=1):
        if index != leave_out:
            shutil.copyfile(path, into / path.name)
    return into / volume_paths(bundle)[0].name


def assert_no_tag(registry: RegistryServer) -> None:
    assert content.list_tags(registry.url, REPO) == []


def test_export_in_volumes_each_verifiable_and_listed(
    tmp_path: Path, bundle: dict[str, object], app: PushedArtifact
) -> None:
    volumes = bundle["volumes"]
    assert isinstance(volumes, list) and len(volumes) == 4, volumes
    paths = volume_paths(bundle)
    assert [p.name for p in paths] == ["batch1.tar", "batch1.tar.002", "batch1.tar.003", "batch1.tar.004"]
    assert [v["index"] for v in volumes] == [1, 2, 3, 4]
    for volume, path in zip(volumes, paths, strict=True):
        data = path.read_bytes()
        assert len(data) == volume["size"] <= VOLUME, volume
        assert "sha256:" + hashlib.sha256(data).hexdigest() == volume["digest"], volume  # each verifiable alone
    assert sum(v["size"] for v in volumes) == bundle["size"]

    # cat of the volumes, in order, is an ordinary archive: tar and skopeo read it.
    whole = tmp_path / "whole.tar"
    whole.write_bytes(b"".join(p.read_bytes() for p in paths))
    with tarfile.open(whole) as tf:
        catalog = json.loads(tf.extractfile("airlock-catalog.json").read())  # type: ignore[union-attr]
    assert catalog["requires"] == ["volumes"]
    # The first volume lists the others, each with its digest and size.
    assert catalog["volumes"] == [{"index": v["index"], "size": v["size"], "digest": v["digest"]} for v in volumes[1:]]
    assert content.catalog_digest_of(whole) == bundle["catalogDigest"]
    inspected = run_skopeo("inspect", f"oci-archive:{whole}:{REPO}:1.0").stdout
    assert json.loads(inspected)["Digest"] == app.digest
    # The first volume holds the head and nothing more: the first config or layer begins volume 2.
    assert paths[1].read_bytes()[:13] == b"blobs/sha256/"


def test_import_from_the_first_volume_reads_the_others_beside_it(
    tmp_path: Path, cli: Callable[..., Run], bundle: dict[str, object], target_registry: RegistryServer,
    app: PushedArtifact,
) -> None:  # fmt: skip
    first = copy_volumes(bundle, tmp_path / "usb")
    out = cli(
        "import", "--source", first, "--target-registry", target_registry.url,
        "--catalog-digest", bundle["catalogDigest"], "--options", "OverwriteTags",
    ).json()  # fmt: skip
    assert out["importedArtifacts"] == [f"{REPO}:1.0"]
    assert out["catalogDigest"] == bundle["catalogDigest"]
    assert content.get_manifest(target_registry.url, REPO, "1.0")[2] == app.digest


def test_import_names_missing_volume_by_index_and_tags_nothing(
    tmp_path: Path, cli: Callable[..., Run], bundle: dict[str, object], untouched: RegistryServer
) -> None:
    first = copy_volumes(bundle, tmp_path / "usb", leave_out=3)
    message = cli("import", "--source", first, "--target-registry", untouched.url).only_error(1)
    assert "volume 3 of 4" in message and "missing" in message, message
    assert (tmp_path / "usb" / "batch1.tar.003").as_uri() in message, message
    assert "send that volume again" in message, message
    assert_no_tag(untouched)


@pytest.mark.parametrize("damage", ["flipped", "cut"])
def test_import_names_corrupt_volume_by_index_and_tags_nothing(
    tmp_path: Path, cli: Callable[..., Run], bundle: dict[str, object], untouched: RegistryServer, damage: str
) -> None:
    first = copy_volumes(bundle, tmp_path / "usb")
    third = tmp_path / "usb" / "batch1.tar.003"
    data = bytearray(third.read_bytes())
    if damage == "flipped":
        data[len(data) // 2] ^= 0x01  # inside a layer: its size is right, its content is not
    else:
        del data[-1000:]
    third.write_bytes(bytes(data))
    message = cli("import", "--source", first, "--target-registry", untouched.url).only_error(1)
    assert "volume 3 of 4" in message and third.as_uri() in message, message
    if damage == "flipped":
        assert message.endswith("send that volume again; no tag was written"), message
    assert ("corrupt" if damage == "flipped" else "truncated") in message, message
    assert "send that volume again" in message, message
    assert_no_tag(untouched)


# Regression: damage in volumes 2-4 was named by volume; in volume 1 (the head: catalog, index.json,
# manifests) the error named the manifest only, so nobody could tell which volume to send again.
def test_a_manifest_corrupt_in_the_first_volume_is_named_as_in_volume_1_and_other_failures_are_not(
    tmp_path: Path, cli: Callable[..., Run], bundle: dict[str, object], untouched: RegistryServer
) -> None:
    first = copy_volumes(bundle, tmp_path / "usb")
    whole = first.read_bytes()
    data = bytearray(whole)
    data[data.rfind(b'"schemaVersion"') + 3] ^= 0x01  # inside the last manifest of the head
    first.write_bytes(bytes(data))
    runs = [
        cli("import", "--source", first, "--target-registry", untouched.url),
        cli("inspect", first, "--verify"),
        cli("copy", first, tmp_path / "copy.tar"),
    ]
    for run, outcome in zip(runs, ["no tag was written", "", "nothing was written"], strict=True):
        message = run.only_error(1)
        assert f"volume 1 of 4 of bundle {first.as_uri()} is corrupt: " in message, message
        assert "manifest sha256:" in message and "send that volume again" in message and outcome in message, message
    assert_no_tag(untouched)
    assert not (tmp_path / "copy.tar").exists()

    # What is not damage is not blamed on volume 1: a signature policy's refusal, a catalog digest
    # other than the one asked for.
    first.write_bytes(whole)
    subprocess.run(["openssl", "ecparam", "-genkey", "-name", "prime256v1", "-noout", "-out", str(tmp_path / "k.pem")],
                   check=True)  # fmt: skip
    subprocess.run(["openssl", "ec", "-in", str(tmp_path / "k.pem"), "-pubout", "-out", str(tmp_path / "k.pub")],
                   check=True, capture_output=True)  # fmt: skip
    for extra in (["--require-signed-by", tmp_path / "k.pub"], ["--catalog-digest", "sha256:" + "0" * 64]):
        message = cli("import", "--source", first, "--target-registry", untouched.url, *extra).only_error(1)
        assert "volume 1" not in message and "send that volume again" not in message, message
    assert_no_tag(untouched)


def test_a_later_volume_given_alone_is_named_as_one_and_its_first_volume_asked_for(
    cli: Callable[..., Run], bundle: dict[str, object], untouched: RegistryServer
) -> None:
    second, third = volume_paths(bundle)[1:3]
    message = cli("import", "--source", second, "--target-registry", untouched.url).only_error(1)
    assert "named like volume 2 of a multi-volume bundle: give the bundle's first volume (batch1.tar)" in message
    message = cli("inspect", third).only_error(1)
    assert "named like volume 3 of a multi-volume bundle" in message, message
    assert_no_tag(untouched)


def test_inspect_verify_checks_every_volume(tmp_path: Path, cli: Callable[..., Run], bundle: dict[str, object]) -> None:
    first = copy_volumes(bundle, tmp_path / "usb")
    out = cli("inspect", first, "--verify").json()
    assert out["verified"] is True
    assert out["catalogDigest"] == bundle["catalogDigest"]
    # Regression: the first volume had no "verified", as if it were not checked; every member of it is.
    assert [(v["index"], v["verified"]) for v in out["volumes"]] == [(1, True), (2, True), (3, True), (4, True)]
    assert [v["verified"] for v in cli("inspect", first).json()["volumes"]] == [False] * 4  # only looked up
    # Plain inspect stats every volume: a missing one is named without reading the others.
    (tmp_path / "usb" / "batch1.tar.004").unlink()
    message = cli("inspect", first).only_error(1)
    assert "volume 4 of 4" in message and "missing" in message, message
    # --verify reads every volume: one with a flipped byte is named by its index.
    copy_volumes(bundle, tmp_path / "usb")
    second = tmp_path / "usb" / "batch1.tar.002"
    data = bytearray(second.read_bytes())
    data[-100] ^= 0x40
    second.write_bytes(bytes(data))
    assert "volumes" in cli("inspect", first).json()  # sizes are right: plain inspect cannot tell
    message = cli("inspect", first, "--verify").only_error(1)
    assert "volume 2 of 4" in message and "corrupt" in message and second.as_uri() in message, message


def test_copy_resume_of_a_bundle_over_another_copys_partial_copies_every_volume_and_removes_it(
    tmp_path: Path, cli: Callable[..., Run], bundle: dict[str, object]
) -> None:
    # Regression: a partial under the first volume's name (another, single-file copy's, interrupted)
    # made --resume take the first volume for a whole archive: "archive is truncated", blaming the
    # source; and a bundle's write left the partial behind, hidden space on the stick.
    first = copy_volumes(bundle, tmp_path / "usb")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / ".h.tar.airlock-partial").write_bytes(first.read_bytes()[:5000])
    out = cli("copy", first, out_dir / "h.tar", "--resume").json()
    assert out["verified"] is True and out["resumed"] == {"bytes": 0}
    assert [v["verified"] for v in out["volumes"]] == [True] * 4
    assert sorted(p.name for p in out_dir.iterdir()) == ["h.tar", "h.tar.002", "h.tar.003", "h.tar.004"]


def test_export_to_azure_in_volumes_then_copy_of_the_first_volume_copies_every_volume_verified(
    tmp_path: Path, cli: Callable[..., Run], source_registry: RegistryServer, target_registry: RegistryServer,
    app: PushedArtifact, azurite: AzuriteServer,
) -> None:  # fmt: skip
    az.create_container(azurite, "srcacct", "outbox")
    sas = tmp_path / "rw.sas"
    sas.write_text("?" + az.container_sas(azurite, "srcacct", "outbox", permissions="racwdl"))
    url = az.container_url(azurite, "srcacct", "outbox")
    out = cli(
        "export", "--source-registry", source_registry.url, "-a", app.reference, "--target", f"{url}/nightly.tar",
        "--sas-token-file", sas, "--volume-size", "64KiB",
    ).json()  # fmt: skip
    assert [v["uri"] for v in out["volumes"]] == [f"{url}/nightly.tar"] + [
        f"{url}/nightly.tar.00{i}" for i in (2, 3, 4)
    ]
    names = az.list_blob_names(azurite, "srcacct", "outbox")
    assert names == ["nightly.tar", "nightly.tar.002", "nightly.tar.003", "nightly.tar.004"]
    # Only the head is a transfer blob to a trigger (ACR's or airlock's); the others say what they are.
    assert az.blob_properties(azurite, "srcacct", "outbox", "nightly.tar").metadata["category"] == "acr-transfer-blob"
    later = az.blob_properties(azurite, "srcacct", "outbox", "nightly.tar.003").metadata
    assert later["category"] == "airlock-transfer-volume" and later["airlockvolume"] == "3", later

    # copy given the first volume copies every volume, each checked as it streams.
    usb = tmp_path / "usb"
    usb.mkdir()
    copied = cli("copy", f"{url}/nightly.tar", usb / "n.tar", "--source-sas-token-file", sas).json()
    assert copied["verified"] is True and copied["catalogDigest"] == out["catalogDigest"]
    assert [v["uri"] for v in copied["volumes"]] == [
        (usb / n).as_uri() for n in ("n.tar", "n.tar.002", "n.tar.003", "n.tar.004")
    ]
    assert [v["verified"] for v in copied["volumes"]] == [True] * 4
    for volume in out["volumes"]:
        name = "n.tar" + ("" if volume["index"] == 1 else f".00{volume['index']}")
        assert "sha256:" + hashlib.sha256((usb / name).read_bytes()).hexdigest() == volume["digest"]
    imported = cli(
        "import", "--source", usb / "n.tar", "--target-registry", target_registry.url, "-z", "OverwriteTags"
    ).json()  # fmt: skip
    assert imported["importedArtifacts"] == [f"{REPO}:1.0"]

    # A corrupt volume fails the copy, naming it, and leaves no target volume at all.
    damaged = bytearray((usb / "n.tar.002").read_bytes())
    damaged[5000] ^= 0x01
    (usb / "n.tar.002").write_bytes(bytes(damaged))
    message = cli("copy", usb / "n.tar", f"{url}/again.tar", "--target-sas-token-file", sas).only_error(1)
    assert "volume 2 of 4" in message and "corrupt" in message and "nothing was written" in message, message
    assert [n for n in az.list_blob_names(azurite, "srcacct", "outbox") if n.startswith("again")] == []
    # A later volume copied on its own is copied as it is, and says how to copy the bundle.
    alone = cli("copy", usb / "n.tar.003", tmp_path / "n.tar.003").json()
    assert alone["verified"] is False and "copy the first volume (n.tar)" in alone["note"], alone


def test_volume_size_too_small_or_not_a_size_is_a_usage_error(
    tmp_path: Path, cli: Callable[..., Run], source_registry: RegistryServer, app: PushedArtifact
) -> None:
    export = ["export", "--source-registry", source_registry.url, "-a", app.reference, "--target", tmp_path / "x.tar"]
    message = cli(*export, "--volume-size", "4KiB").only_error(2)
    assert "at least 65536" in message, message
    message = cli(*export, "--volume-size", "lots").only_error(2)
    assert "expected a size such as 4GiB, 700MB or 512KiB" in message, message
    message = cli(*export, "--volume-size", "64KiB", "--resume").only_error(2)
    assert "a multi-volume export cannot be resumed" in message, message
    assert list(tmp_path.iterdir()) == []
    # An archive that fits in one volume is one ordinary blob, listed as the only volume.
    out = cli(*export, "--volume-size", "4GiB").json()
    assert out["volumes"] == [{"index": 1, "uri": (tmp_path / "x.tar").as_uri(), "size": out["size"]}]


def test_export_pipeline_with_volume_size_writes_a_bundle_that_an_import_run_reads(
    tmp_path: Path, source_registry: RegistryServer, target_registry: RegistryServer, app: PushedArtifact
) -> None:
    (tmp_path / "home").mkdir()
    cli = Console(home=tmp_path / "home")
    transfer = tmp_path / "transfer"
    transfer.mkdir()
    cli.ok("acr", "create", "-g", "volrg", "-n", "srcreg", "--login-server", source_registry.url, "-o", "none")
    cli.ok("acr", "create", "-g", "volrg", "-n", "dstreg", "--login-server", target_registry.url, "-o", "none")
    message = cli(
        "acr", "export-pipeline", "create", "-g", "volrg", "-r", "srcreg", "-n", "tinyvolumes", "-c", transfer,
        "--volume-size", "1KiB",
    ).only_error(2)  # fmt: skip
    assert "at least 65536" in message, message
    pipeline = cli.ok(
        "acr", "export-pipeline", "create", "-g", "volrg", "-r", "srcreg", "-n", "volumes", "-c", transfer,
        "--volume-size", "64KiB",
    ).json()  # fmt: skip
    assert pipeline["properties"]["volumeSize"] == "64KiB"
    run = cli.ok(
        "acr", "pipeline-run", "create", "-g", "volrg", "-r", "srcreg", "-p", "volumes", "-n", "export1",
        "-t", "export", "-b", "nightly.tar", "-a", app.reference,
    ).json()  # fmt: skip
    response = run["properties"]["response"]
    assert run["properties"]["provisioningState"] == "Succeeded", response
    names = ["nightly.tar", "nightly.tar.002", "nightly.tar.003", "nightly.tar.004"]
    assert [v["uri"] for v in response["volumes"]] == [(transfer / n).as_uri() for n in names]
    assert sorted(p.name for p in transfer.iterdir()) == names

    cli.ok(
        "acr", "import-pipeline", "create", "-g", "volrg", "-r", "dstreg", "-n", "inbound", "-c", transfer,
        "-e", "False",
    )  # fmt: skip
    imported = cli.ok(
        "acr", "pipeline-run", "create", "-g", "volrg", "-r", "dstreg", "-p", "inbound", "-n", "import1",
        "-t", "import", "-b", "nightly.tar",
    ).json()  # fmt: skip
    assert imported["properties"]["provisioningState"] == "Succeeded", imported["properties"]["response"]
    assert imported["properties"]["response"]["catalogDigest"] == response["catalogDigest"]
    assert content.get_manifest(target_registry.url, REPO, "1.0")[2] == app.digest


class Place:
    """Where a copy goes: a local directory, or an Azure container (Azurite) with its SAS arguments."""

    def __init__(self, request: pytest.FixtureRequest, tmp_path: Path, kind: str) -> None:
        self.dir: Path | None = None
        if kind == "file":
            self.dir = tmp_path / "out"
            self.dir.mkdir()
            self.uri, self.sas = str(self.dir), []
            return
        self.server: AzuriteServer = request.getfixturevalue("azurite")
        self.container = f"kept-{secrets.token_hex(3)}"
        az.create_container(self.server, "srcacct", self.container)
        token = az.container_sas(self.server, "srcacct", self.container, permissions="racwdl")
        (tmp_path / "rw.sas").write_text("?" + token)
        self.uri = az.container_url(self.server, "srcacct", self.container)
        self.sas = ["--target-sas-token-file", str(tmp_path / "rw.sas")]

    def put(self, name: str, data: bytes) -> None:
        if self.dir is not None:
            (self.dir / name).write_bytes(data)
        else:
            az.upload_blob(self.server, "srcacct", self.container, name, data)

    def delete(self, name: str) -> None:
        if self.dir is not None:
            (self.dir / name).unlink()
        else:
            az.delete_blob(self.server, "srcacct", self.container, name)

    def names(self) -> list[str]:
        if self.dir is not None:
            return sorted(p.name for p in self.dir.iterdir())
        return az.list_blob_names(self.server, "srcacct", self.container)

    def version(self, name: str) -> object:
        if self.dir is not None:
            return (self.dir / name).stat().st_mtime_ns
        return az.blob_properties(self.server, "srcacct", self.container, name).etag


# Regression: a copy of a bundle killed while committing (later volumes first, the first last)
# left later volumes without a first; every re-run was refused ("already exists") but --overwrite,
# which wrote them all again.
@pytest.mark.parametrize("kind", ["file", "azure"])
def test_copy_resume_of_a_bundle_keeps_the_later_volumes_a_killed_copy_committed_when_they_are_the_sources(
    request: pytest.FixtureRequest, tmp_path: Path, cli: Callable[..., Run], bundle: dict[str, object], kind: str
) -> None:
    first = copy_volumes(bundle, tmp_path / "usb")
    volumes = volume_paths(bundle)
    place = Place(request, tmp_path, kind)
    target = f"{place.uri}/k.tar"
    place.put("k.tar.002", volumes[1].read_bytes())  # what a copy killed after committing volumes 2 and 3 leaves
    place.put("k.tar.003", volumes[2].read_bytes())
    before = {n: place.version(n) for n in ("k.tar.002", "k.tar.003")}
    message = cli("copy", first, target, *place.sas).only_error(1)
    assert "k.tar.002 already exists (volume 2 of 4, without the first" in message and "--resume" in message, message
    assert message.count("--overwrite") == 1, message  # the hint is the message's own, not repeated

    out = cli("copy", first, target, *place.sas, "--resume").json()
    assert out["verified"] is True and [v["verified"] for v in out["volumes"]] == [True] * 4
    assert [v.get("kept", False) for v in out["volumes"]] == [False, True, True, False]
    assert out["resumed"] == {"bytes": volumes[1].stat().st_size + volumes[2].stat().st_size}
    assert {n: place.version(n) for n in before} == before  # read back, not written again
    assert place.names() == ["k.tar", "k.tar.002", "k.tar.003", "k.tar.004"]

    # A later volume that is not this bundle's is refused, by name, and nothing is written.
    for name in ("k.tar", "k.tar.003", "k.tar.004"):
        place.delete(name)
    other = bytearray(volumes[1].read_bytes())
    other[100] ^= 0x01
    place.put("k.tar.002", bytes(other))
    message = cli("copy", first, target, *place.sas, "--resume").only_error(1)
    assert "k.tar.002 already exists and is not volume 2 of 4" in message and "digest mismatch" in message, message
    assert message.count("--overwrite") == 1, message
    assert place.names() == ["k.tar.002"]
