"""Issue 12, resume and retry, through the real console script: an export killed mid-way (SIGKILL)
and run again with --resume fetches only what it lacked, for file and Azure targets; an import
killed mid-way tags nothing and its re-run HEAD-skips what had landed; --retry-failed runs again
for the failed artifacts of an earlier result only."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import tarfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from airlock.storage.base import Blob
from airlock.storage.block_ids import parse_id
from airlock.storage.location import open_blob, parse_blob_uri
from airlock.testing import azurite as az
from airlock.testing import content
from airlock.testing.azurite import AzuriteServer
from airlock.testing.console import Console
from airlock.testing.content import PushedArtifact
from airlock.testing.fault_proxy import Fault, FaultProxy, Seen
from airlock.testing.images import push_oci_image
from airlock.testing.polling import wait_until
from airlock.testing.registry_server import RegistryServer

ACCOUNT = "srcacct"
CONTAINER = "resume"


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Console:
    return Console(home=tmp_path_factory.mktemp("home"))


@pytest.fixture(scope="module")
def image(source_registry: RegistryServer) -> PushedArtifact:
    # Layers of 96 KiB: each ends an Azure block of its own (a resumable write marks members of 64 KiB or more).
    return push_oci_image(source_registry.url, "resume/app", "1.0", seed=121, layers=4, layer_size=96 * 1024)


@pytest.fixture
def proxy(source_registry: RegistryServer) -> Iterator[FaultProxy]:
    with FaultProxy(source_registry.url) as p:
        yield p


def archive_blobs(archive: Path) -> list[tuple[str, int]]:
    """(digest, offset of its tar header) of each manifest, config and layer member, in archive order."""
    with tarfile.open(archive) as tf:
        members = [m for m in tf.getmembers() if m.name.startswith("blobs/sha256/") and m.isfile()]
    return [("sha256:" + m.name.rsplit("/", 1)[1], m.offset) for m in members]


def blob_gets(proxy: FaultProxy) -> set[str]:
    return {r.path.rsplit("/", 1)[1] for r in proxy.requests if r.method == "GET" and "/blobs/sha256:" in r.path}


def kill_when(killed: subprocess.Popen[str], ready: Callable[[], object], release: threading.Event, what: str) -> None:
    """SIGKILL ``killed`` once ``ready()`` is truthy (polled, 60 s at most), then let the held request go."""
    try:
        wait_until(lambda: ready() or killed.poll() is not None, timeout=60, what=what)
        assert killed.poll() is None, f"it ended first, with {killed.returncode}: {killed.communicate()}"
        killed.send_signal(signal.SIGKILL)
        assert killed.wait(30) == -signal.SIGKILL
    finally:
        release.set()
        killed.kill()
        killed.communicate()


def target_for(request: pytest.FixtureRequest, tmp_path: Path, kind: str, name: str) -> tuple[str, Blob, list[str]]:
    """An export target's URI, its Blob (to look at what is staged) and its SAS arguments."""
    if kind == "file":
        uri = (tmp_path / name).as_uri()
        return uri, open_blob(parse_blob_uri(uri)), []
    server: AzuriteServer = request.getfixturevalue("azurite")
    az.create_container(server, ACCOUNT, CONTAINER)
    token = az.container_sas(server, ACCOUNT, CONTAINER, permissions="racwl")
    (tmp_path / "rw.sas").write_text("?" + token)
    uri = f"{az.container_url(server, ACCOUNT, CONTAINER)}/{tmp_path.name}-{name}"
    return uri, open_blob(parse_blob_uri(uri), sas_token=token), ["--sas-token-file", str(tmp_path / "rw.sas")]


def staged_bytes(target: Blob) -> int:
    staged = target.staged()
    return staged.size if staged is not None else 0


@pytest.mark.parametrize("kind", ["file", "azure", "azure-signed"])
def test_export_killed_then_resumed_fetches_only_what_was_missing(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    cli: Console,
    source_registry: RegistryServer,
    image: PushedArtifact,
    proxy: FaultProxy,
    kind: str,
) -> None:
    sign: list[str] = []
    if kind == "azure-signed":  # a signed bundle's signature member counts among the kept ones
        kind, key = "azure", tmp_path / "sign.pem"
        subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(key)], check=True)
        sign = ["--sign-key", str(key)]
    reference = tmp_path / "reference.tar"
    cli.ok("export", "--source-registry", source_registry.url, "-a", image.reference, "--target", reference, *sign)
    order = archive_blobs(reference)
    manifest_members = 1  # the image's manifest comes before its config and layers
    blobs = order[manifest_members:]
    held_digest, held_offset = blobs[3]  # the config and two layers are written; the third layer is held

    uri, target, sas = target_for(request, tmp_path, kind, "b.tar")
    release = threading.Event()
    proxy.add(Fault("GET", held_digest, hold=release))
    export = ["export", "--source-registry", proxy.url, "-a", image.reference.replace(source_registry.host, proxy.host)]
    # Everything before the held layer's header (whole members) is staged; then the kill lands.
    kill_when(
        cli.start(*export, "--target", uri, *sas, *sign),
        lambda: staged_bytes(target) >= held_offset,
        release,
        "staged bytes",
    )
    assert target.stat() is None  # nothing visible at the target
    if kind == "azure":
        assert az.list_blob_names(request.getfixturevalue("azurite"), ACCOUNT, CONTAINER, prefix=tmp_path.name) == []

    proxy.reset()
    out = cli.ok(*export, "--target", uri, *sas, *sign, "--resume").json()
    kept_blobs = [d for d, offset in blobs if offset < held_offset]
    assert out["resumed"]["blobs"] == len(kept_blobs) == 3, out
    assert out["resumed"]["bytes"] == held_offset  # whole members, up to the held layer's header
    fetched = blob_gets(proxy)
    assert fetched == {d for d, _ in blobs} - set(kept_blobs)  # nothing written before was fetched again
    verified = cli.ok("inspect", uri, *sas, "--verify").json()
    assert verified["verified"] is True and verified["catalogDigest"] == out["catalogDigest"]
    assert verified.get("signature") == out.get("signature")
    assert target.staged() is None
    if kind == "file":
        assert sorted(p.name for p in tmp_path.iterdir()) == ["b.tar", "reference.tar"]


# The threat model's row for write access to an export's container: a staged block replaced under
# its id is kept by --resume (Azure never returns the bytes), and the import refuses the bundle.
def test_a_forged_staged_block_an_export_resume_keeps_is_refused_by_the_import(
    tmp_path: Path, cli: Console, source_registry: RegistryServer, target_registry: RegistryServer,
    image: PushedArtifact, proxy: FaultProxy, azurite: AzuriteServer, request: pytest.FixtureRequest,
) -> None:  # fmt: skip
    reference = tmp_path / "reference.tar"
    cli.ok("export", "--source-registry", source_registry.url, "-a", image.reference, "--target", reference)
    blobs = archive_blobs(reference)[1:]  # configs and layers, in archive order
    (layer, layer_offset), (held, held_offset) = blobs[1], blobs[3]
    uri, target, sas = target_for(request, tmp_path, "azure", "forged.tar")
    release = threading.Event()
    proxy.add(Fault("GET", held, hold=release))
    export = ["export", "--source-registry", proxy.url, "-a", image.reference.replace(source_registry.host, proxy.host)]
    kill_when(cli.start(*export, "--target", uri, *sas), lambda: staged_bytes(target) >= held_offset, release,
              "staged bytes")  # fmt: skip

    name = uri.rsplit("/", 1)[1]
    blob = az.service_client(azurite, ACCOUNT).get_blob_client(CONTAINER, name)
    staged, start = sorted(blob.get_block_list("uncommitted")[1], key=lambda b: _block_number(b.id)), 0
    flip = layer_offset + 512 + 1000  # in the layer's content; its tar header stays
    block = next(b for b in staged if (start := start + b.size) > flip)
    start -= block.size
    # The same members, from the reference export (their tar headers' times are its createdAt, not the
    # staged run's), with one bit of the layer flipped.
    forged = bytearray(reference.read_bytes()[start : start + block.size])
    forged[flip - start] ^= 0x01
    blob.stage_block(block.id, bytes(forged))

    proxy.reset()
    out = cli.ok(*export, "--target", uri, *sas, "--resume").json()
    assert out["resumed"]["blobs"] == 3 and layer not in blob_gets(proxy)  # kept as staged, not fetched again
    message = cli("import", "--source", uri, *sas, "--target-registry", target_registry.url,
                  "--rename", "resume/=forged/").only_error(1)  # fmt: skip
    assert layer in message and "digest mismatch" in message, message
    assert content.list_tags(target_registry.url, "forged/app") == []


def _block_number(block_id: str) -> int:
    parsed = parse_id(block_id)
    assert parsed is not None, f"staged block {block_id!r} is not a resumable write's"
    return parsed[1]


@pytest.mark.parametrize("kind", ["file", "azure"])
def test_export_resume_refuses_what_was_staged_for_another_catalog(
    request: pytest.FixtureRequest, tmp_path: Path, cli: Console, source_registry: RegistryServer, proxy: FaultProxy,
    kind: str,
) -> None:  # fmt: skip
    repo = f"resume/moving-{kind}"
    push_oci_image(source_registry.url, repo, "1.0", seed=131, layers=3, layer_size=96 * 1024)
    reference = tmp_path / "reference.tar"
    cli.ok("export", "--source-registry", source_registry.url, "-a", f"{repo}:1.0", "--target", reference)
    last = archive_blobs(reference)[-1][0]
    reference.unlink()
    uri, target, sas = target_for(request, tmp_path, kind, "m.tar")
    release = threading.Event()
    proxy.add(Fault("GET", last, hold=release))  # the config and two layers get written
    export = ["export", "--source-registry", proxy.url, "-a", f"{repo}:1.0", "--target", uri, *sas]
    kill_when(cli.start(*export), lambda: staged_bytes(target) > 2048, release, "a staged part")
    moved = push_oci_image(source_registry.url, repo, "1.0", seed=132, layers=3, layer_size=96 * 1024)
    message = cli(*export, "--resume").only_error(1)
    assert "cannot resume the export to" in message and "a tag moved" in message, message
    assert target.stat() is None
    out = cli.ok(*export).json()  # without --resume it starts over, replacing what was staged
    assert out["artifactDetails"][0]["digest"] == moved.digest and "resumed" not in out
    assert target.staged() is None
    if kind == "file":
        assert sorted(p.name for p in tmp_path.iterdir()) == ["m.tar"]


def test_export_resume_with_nothing_staged_exports_it_all_and_says_so(
    tmp_path: Path, cli: Console, source_registry: RegistryServer, image: PushedArtifact
) -> None:
    target = tmp_path / "fresh.tar"
    out = cli.ok("export", "--source-registry", source_registry.url, "-a", image.reference, "--target", target,
                 "--resume").json()  # fmt: skip
    assert out["resumed"] == {"bytes": 0, "members": 0, "blobs": 0}
    assert out["catalogDigest"] == content.catalog_digest_of(target)
    assert json.loads(cli.ok("inspect", target, "--verify").stdout)["verified"] is True


def test_interrupted_import_tags_nothing_and_rerun_skips_present_blobs(
    tmp_path: Path, cli: Console, source_registry: RegistryServer, target_registry: RegistryServer,
    image: PushedArtifact,
) -> None:  # fmt: skip
    archive = tmp_path / "i.tar"
    cli.ok("export", "--source-registry", source_registry.url, "-a", image.reference, "--target", archive)
    held = max(image.blobs, key=lambda b: b[1])[0]
    others = [d for d, _ in image.blobs if d != held]
    release = threading.Event()
    with FaultProxy(target_registry.url) as into:
        into.add(Fault("PUT", held.split(":")[1], hold=release))  # its upload's last request waits
        kill_when(
            cli.start("import", "--source", archive, "--target-registry", into.url),
            lambda: all(content.blob_exists(target_registry.url, image.repository, d) for d in others),
            release,
            "every blob but the held one to land",
        )
    assert content.list_tags(target_registry.url, image.repository) == []  # no tag before the whole bundle
    assert not content.manifest_exists(target_registry.url, image.repository, image.digest)

    out = cli.ok("import", "--source", archive, "--target-registry", target_registry.url).json()
    assert out["importedArtifacts"] == [image.reference]
    # The held blob may have landed after the kill (its request was already sent): then it is skipped too.
    assert out["blobs"]["skipped"] >= len(others) == len(image.blobs) - 1
    assert out["blobs"]["skipped"] + out["blobs"]["uploaded"] == len(image.blobs)
    assert content.list_tags(target_registry.url, image.repository) == ["1.0"]


def test_export_retry_failed_exports_only_the_failed_artifacts(
    tmp_path: Path, cli: Console, source_registry: RegistryServer, image: PushedArtifact
) -> None:
    later = "resume/later:1.0"
    first = cli("export", "--source-registry", source_registry.url, "-a", image.reference, later,
                "--target", tmp_path / "first.tar", "--options", "ContinueOnErrors")  # fmt: skip
    assert first.returncode == 1 and later in first.error(1)
    result = json.loads(first.stdout)
    assert result["artifacts"] == [image.reference] and list(result["failedArtifacts"]) == [later]
    (tmp_path / "first.json").write_text(first.stdout)

    push_oci_image(source_registry.url, "resume/later", "1.0", seed=141, layers=1, layer_size=4 * 1024)
    retry = tmp_path / "retry.tar"
    out = cli.ok("export", "--source-registry", source_registry.url, "--retry-failed", tmp_path / "first.json",
                 "--target", retry).json()  # fmt: skip
    assert out["artifacts"] == [later] and out["failedArtifacts"] == {}
    inspected = cli.ok("inspect", retry, "--verify").json()
    assert [a["reference"] for a in inspected["artifacts"]] == [later]

    both = cli("export", "--source-registry", source_registry.url, "-a", later, "--retry-failed",
               tmp_path / "first.json", "--target", tmp_path / "x.tar")  # fmt: skip
    assert "give --artifacts (or --repository, --selection) or --retry-failed, not both" in both.only_error(2)
    (tmp_path / "ok.json").write_text(cli.ok("inspect", retry).stdout)
    nothing = cli("export", "--source-registry", source_registry.url, "--retry-failed", tmp_path / "ok.json",
                  "--target", tmp_path / "y.tar")  # fmt: skip
    assert "not the output of `airlock export` (it has no target and no failedArtifacts)" in nothing.only_error(2)
    # Regression: a failedArtifacts that is not an object was said to be missing.
    (tmp_path / "list.json").write_text(json.dumps({"target": {}, "failedArtifacts": ["a:1"]}))
    listed = cli("export", "--source-registry", source_registry.url, "--retry-failed", tmp_path / "list.json",
                 "--target", tmp_path / "z.tar")  # fmt: skip
    assert "its failedArtifacts is not an object of reference: reason" in listed.only_error(2)


def test_an_export_whose_every_artifact_failed_still_prints_its_failures_for_retry_failed(
    tmp_path: Path, cli: Console, source_registry: RegistryServer
) -> None:
    """Regression: with ContinueOnErrors and no artifact exported, stdout was empty, so the README's
    `> b1.json || true` left --retry-failed a file that was not JSON."""
    missing = ["resume/none:1.0", "resume/none:2.0"]
    target = tmp_path / "none.tar"
    first = cli("export", "--source-registry", source_registry.url, "-a", *missing, "--target", target,
                "--options", "ContinueOnErrors")  # fmt: skip
    assert first.returncode == 1 and "no artifact could be exported" in first.error(1)
    result = json.loads(first.stdout)
    assert result["artifacts"] == [] and sorted(result["failedArtifacts"]) == missing and not target.exists()
    (tmp_path / "none.json").write_text(first.stdout)
    push_oci_image(source_registry.url, "resume/none", "1.0", seed=151, layers=1, layer_size=1024)
    push_oci_image(source_registry.url, "resume/none", "2.0", seed=152, layers=1, layer_size=1024)
    out = cli.ok("export", "--source-registry", source_registry.url, "--retry-failed", tmp_path / "none.json",
                 "--target", target).json()  # fmt: skip
    assert sorted(out["artifacts"]) == missing and out["failedArtifacts"] == {}


def test_import_retry_failed_imports_only_the_failed_artifacts(
    tmp_path: Path, cli: Console, source_registry: RegistryServer, workdir: Path
) -> None:
    a = push_oci_image(source_registry.url, "resume/imp-a", "1", seed=151, layers=1, layer_size=4 * 1024)
    b = push_oci_image(source_registry.url, "resume/imp-b", "1", seed=152, layers=2, layer_size=4 * 1024)
    archive = tmp_path / "ab.tar"
    digest = cli.ok("export", "--source-registry", source_registry.url, "-a", a.reference, b.reference,
                    "--target", archive).json()["catalogDigest"]  # fmt: skip
    with RegistryServer.start(workdir / "retry-target", name="retry-target") as target:
        push_oci_image(target.url, "resume/imp-b", "1", seed=153, layers=1, layer_size=1024)  # b's tag is taken
        first = cli("import", "--source", archive, "--target-registry", target.url, "--options", "ContinueOnErrors")
        # Regression: a WARNING log line of the same failure came before the one error line.
        assert b.reference in first.only_error(1, stdout_empty=False)
        result = json.loads(first.stdout)
        assert result["importedArtifacts"] == [a.reference] and list(result["failedArtifacts"]) == [b.reference]
        (tmp_path / "first.json").write_text(first.stdout)

        out = cli.ok("import", "--source", archive, "--target-registry", target.url, "--retry-failed",
                     tmp_path / "first.json", "--options", "OverwriteTags").json()  # fmt: skip
        assert out["importedArtifacts"] == [b.reference] and out["catalogDigest"] == digest
        # Only b's blobs moved: a's (already there) were read and verified, not even HEAD-skipped.
        assert out["blobs"] == {"uploaded": len(b.blobs), "skipped": 0, "mounted": 0}
        assert content.get_manifest(target.url, "resume/imp-b", "1")[0] == b.manifest

        other = tmp_path / "other.tar"
        cli.ok("export", "--source-registry", source_registry.url, "-a", a.reference, "--target", other)
        wrong = cli("import", "--source", other, "--target-registry", target.url, "--retry-failed",
                    tmp_path / "first.json")  # fmt: skip
        assert "catalog digest mismatch" in wrong.only_error(1)
        # Regression: a malformed catalogDigest in the result was refused without naming the file.
        edited = json.loads(first.stdout) | {"catalogDigest": "sha256:zz"}
        (tmp_path / "edited.json").write_text(json.dumps(edited))
        bad = cli("import", "--source", archive, "--target-registry", target.url, "--retry-failed",
                  tmp_path / "edited.json")  # fmt: skip
        assert bad.only_error(2).startswith(f"--retry-failed {tmp_path / 'edited.json'}: its catalogDigest: invalid")


def test_copy_interrupted_resumes_from_the_targets_length(tmp_path: Path, cli: Console, azurite: AzuriteServer) -> None:
    # Azure reads in 4 MiB ranges: 9 MiB is the least that puts two whole ranges before a held third.
    az.create_container(azurite, ACCOUNT, CONTAINER)
    data = bytes(range(256)) * (9 * 4096) + b"tail"
    az.upload_blob(azurite, ACCOUNT, CONTAINER, "big.bin", data)
    (tmp_path / "r.sas").write_text("?" + az.container_sas(azurite, ACCOUNT, CONTAINER, permissions="r"))
    url = az.container_url(azurite, ACCOUNT, CONTAINER)  # http://127.0.0.1:PORT/account/container
    host = url.split("/")[2]
    with FaultProxy(f"http://{host}") as via:  # the SAS signs the path, not the host
        source = url.replace(host, via.host) + "/big.bin"
        target = tmp_path / "big.bin"
        partial = tmp_path / ".big.bin.airlock-partial"
        copy: list[str | Path] = ["copy", source, target, "--source-sas-token-file", tmp_path / "r.sas"]
        release = threading.Event()
        two_ranges = 8 * 1024 * 1024
        via.add(Fault("GET", "/big.bin", header=("x-ms-range", f"bytes={two_ranges}-"), hold=release))  # the third
        kill_when(cli.start(*copy), lambda: partial.exists() and partial.stat().st_size >= two_ranges, release,
                  "two ranges staged")  # fmt: skip
        assert not target.exists()
        via.reset()
        out = cli.ok(*copy, "--resume").json()
        ranges = [r.headers.get("x-ms-range", "") for r in via.requests if r.method == "GET"]
    assert out["resumed"] == {"bytes": two_ranges} and out["size"] == len(data)
    assert ranges and all(int(r.removeprefix("bytes=").split("-")[0]) >= two_ranges for r in ranges), ranges
    assert target.read_bytes() == data and not partial.exists()


def test_copy_resume_checks_the_kept_bytes_and_refuses_a_staged_part_that_is_not_the_sources(
    tmp_path: Path, cli: Console, source_registry: RegistryServer, image: PushedArtifact
) -> None:
    archive = tmp_path / "src.tar"
    cli.ok("export", "--source-registry", source_registry.url, "-a", image.reference, "--target", archive)
    data = archive.read_bytes()
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    target, partial = out_dir / "b.tar", out_dir / ".b.tar.airlock-partial"
    partial.write_bytes(data[: len(data) // 2])  # what a copy killed half-way leaves
    out = cli.ok("copy", archive, target, "--resume").json()
    assert out["resumed"] == {"bytes": len(data) // 2} and out["verified"] is True
    assert target.read_bytes() == data and sorted(p.name for p in out_dir.iterdir()) == ["b.tar"]

    target.unlink()
    flipped = bytearray(data[: len(data) // 2])
    flipped[-100] ^= 0x01  # inside a layer: the staged part is not the source's
    partial.write_bytes(bytes(flipped))
    message = cli("copy", archive, target, "--resume").only_error(1)
    assert "digest mismatch" in message and "nothing was written" in message, message
    assert list(out_dir.iterdir()) == []  # the bad staged part is discarded too


def test_export_that_lost_its_registry_keeps_what_it_wrote_and_resume_fetches_only_the_rest(
    tmp_path: Path, cli: Console, source_registry: RegistryServer, image: PushedArtifact, proxy: FaultProxy
) -> None:
    reference = tmp_path / "reference.tar"
    cli.ok("export", "--source-registry", source_registry.url, "-a", image.reference, "--target", reference)
    blobs = archive_blobs(reference)[1:]  # configs and layers, in archive order
    lost = blobs[2][0]
    proxy.add(Fault("GET", lost, times=1000, drop=True))  # the network is gone for this layer, retries and all
    export: list[str | Path] = [
        "export", "--source-registry", proxy.url, "-a", image.reference, "--target", tmp_path / "n.tar"
    ]  # fmt: skip
    message = cli(*export).only_error(1)
    assert lost in message and "cannot reach the registry" in message, message
    assert sorted(p.name for p in tmp_path.iterdir()) == [".n.tar.airlock-partial", "reference.tar"]

    proxy.reset()
    out = cli.ok(*export, "--resume").json()
    assert out["resumed"]["blobs"] == 2
    assert blob_gets(proxy) == {d for d, _ in blobs[2:]}
    assert cli.ok("inspect", tmp_path / "n.tar", "--verify").json()["verified"] is True


# Regression: a copy --resume to Azure kept the staged blocks without checking them (they cannot
# be read back) and said "verified". A source file rewritten in place with its mtime kept (a FAT
# stick's 2 s clock does that by itself) has the same version, so the blocks staged from its old
# bytes were committed with the new ones after them.
def test_copy_resume_to_azure_checks_the_staged_blocks_against_the_source_and_commits_a_content_md5(
    tmp_path: Path, cli: Console, source_registry: RegistryServer, azurite: AzuriteServer
) -> None:
    mib = 1024 * 1024  # the copy stages each 1 MiB the file gives it as a marked block
    bundles = []
    for seed in (122, 123):  # two images of the same sizes under one tag: bundles of one size
        image = push_oci_image(source_registry.url, "resume/big", "1.0", seed=seed, layers=2, layer_size=mib)
        cli.ok("export", "--source-registry", source_registry.url, "-a", image.reference, "--target",
               tmp_path / f"{seed}.tar")  # fmt: skip
        bundles.append((tmp_path / f"{seed}.tar").read_bytes())
    old, new = bundles
    tail = len(new) - 2 * mib
    assert len(old) == len(new) and 0 < tail < 64 * 1024, (len(old), len(new))
    source = tmp_path / "src.tar"
    source.write_bytes(old)
    az.create_container(azurite, ACCOUNT, CONTAINER)
    token = az.container_sas(azurite, ACCOUNT, CONTAINER, permissions="racwl")
    (tmp_path / "rw.sas").write_text("?" + token)
    url = az.container_url(azurite, ACCOUNT, CONTAINER)
    host = url.split("/")[2]

    def tail_uploads(via: FaultProxy) -> list[Seen]:
        return [r for r in via.seen("PUT", "comp=block&") if r.headers.get("content-length") == str(tail)]

    def killed_copy(via: FaultProxy, name: str) -> tuple[list[str | Path], Blob]:
        """A copy of the source to ``name`` killed once its two 1 MiB blocks are staged (the tail's is held)."""
        copy: list[str | Path] = [
            "copy", source, f"{url.replace(host, via.host)}/{name}", "--target-sas-token-file", tmp_path / "rw.sas"
        ]  # fmt: skip
        staged = open_blob(parse_blob_uri(f"{url}/{name}"), sas_token=token)
        release = threading.Event()
        via.reset()
        via.add(Fault("PUT", "comp=block", header=("content-length", str(tail)), hold=release))
        kill_when(cli.start(*copy), lambda: staged_bytes(staged) >= 2 * mib, release, "two blocks staged")
        assert staged.stat() is None and staged_bytes(staged) == 2 * mib
        # The held upload goes on once released: seen before the reset, it is not counted as the resume's.
        wait_until(lambda: len(tail_uploads(via)) == 1, what="the held upload forwarded")
        via.reset()
        return copy, staged

    with FaultProxy(f"http://{host}") as via:  # the SAS signs the path, not the host
        copy, staged = killed_copy(via, f"{tmp_path.name}-a.tar")
        version = (source.stat().st_ino, source.stat().st_mtime_ns)
        with source.open("r+b") as f:  # rewritten in place: same inode, size and (restored) mtime
            f.write(new)
        os.utime(source, ns=(version[1], version[1]))
        assert (source.stat().st_ino, source.stat().st_mtime_ns) == version
        message = cli(*copy, "--resume").only_error(1)
        assert f"staged block 0 (bytes 0-{mib - 1}) is not the source's bytes there" in message, message
        assert "copy again without --resume" in message and "nothing was written" in message, message
        assert staged.stat() is None
        assert cli.ok(*copy).json()["verified"] is True  # as the message says: the staged blocks are replaced
        assert b"".join(staged.read()) == new

        copy, staged = killed_copy(via, f"{tmp_path.name}-b.tar")
        out = cli.ok(*copy, "--resume").json()
        uploads = via.seen("PUT", "comp=block&")
    assert [r.headers.get("content-length") for r in uploads] == [str(tail)]  # only the tail went up again
    assert out["verified"] is True and out["resumed"] == {"bytes": 2 * mib} and out["size"] == len(new)
    assert b"".join(staged.read()) == new
    info = staged.stat()
    assert info is not None and info.content_md5 == hashlib.md5(new).digest()  # the kept bytes were hashed too
