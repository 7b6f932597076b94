"""Many small artifacts at once (issue 12): what concurrency must not change, through the console script.

Export resolves artifacts, and import checks tags and pushes manifests and tags, many at a time;
these tests hold the contracts that sequential code gave for free: every artifact, in order,
verified, tags only for complete content, failures named and contained as before.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import urllib3

from airlock.testing.console import Console, error_message
from airlock.testing.content import PushedArtifact, get_manifest, list_tags
from airlock.testing.fault_proxy import Fault, FaultProxy
from airlock.testing.images import push_oci_image, push_oci_index
from airlock.testing.polling import wait_until
from airlock.testing.registry_server import RegistryServer
from airlock.transfer.concurrent_map import GETS_IN_FLIGHT

REPOS = 4
TAGS = 6  # 24 artifacts, 72 blobs: more than the 16 requests or 32 GETs in flight, so concurrency is exercised


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Console:
    return Console(home=tmp_path_factory.mktemp("home"))


@pytest.fixture(scope="module")
def many(source_registry: RegistryServer) -> list[PushedArtifact]:
    images = [
        push_oci_image(source_registry.url, f"many/r{r}", f"t{t}", seed=1000 + 10 * r + t, layers=2, layer_size=2048)
        for r in range(REPOS)
        for t in range(TAGS)
    ]
    # One multi-platform index: its manifests must land children first.
    return [*images, push_oci_index(source_registry.url, "many/idx", "multi", seed=77, layer_size=2048)]


def _export(cli: Console, registry: RegistryServer, refs: list[str], target: Path, *extra: str) -> dict[str, object]:
    args = ["export", "--source-registry", registry.url, "--target", target.as_uri(), *extra, "-a", *refs]
    out: dict[str, object] = cli.ok(*args).json()
    return out


def test_many_small_artifacts_round_trip_in_order_every_digest_equal_and_a_second_import_skips_every_blob(
    cli: Console, tmp_path: Path, source_registry: RegistryServer, many: list[PushedArtifact]
) -> None:
    refs = [a.reference for a in many]
    exported = _export(cli, source_registry, refs, tmp_path / "many.tar")
    assert exported["artifacts"] == refs  # resolved concurrently, reported in the order asked
    with RegistryServer.start(tmp_path / "target", name="target") as target:
        args = ["import", "--source", (tmp_path / "many.tar").as_uri(), "--target-registry", target.url]
        first = cli.ok(*args, "--catalog-digest", str(exported["catalogDigest"])).json()
        assert first["importedArtifacts"] == refs and first["failedArtifacts"] == {}
        for a in many:
            assert get_manifest(target.url, a.repository, str(a.tag))[2] == a.digest
            for child in a.children:  # the index's children were pushed by digest before it
                assert get_manifest(target.url, a.repository, child)[2] == child
        again = cli.ok(*args).json()
        assert again["importedArtifacts"] == refs
        assert again["blobs"]["uploaded"] == 0 and again["blobs"]["skipped"] == first["blobs"]["uploaded"]


def test_export_without_continue_on_errors_names_the_artifact_whose_blob_is_missing_and_writes_nothing(
    cli: Console, tmp_path: Path, source_registry: RegistryServer, many: list[PushedArtifact]
) -> None:
    broken = push_oci_image(source_registry.url, "many/broken", "1", seed=4242, layers=2, layer_size=2048)
    layer = broken.blobs[-1][0]
    resp = urllib3.request("DELETE", f"{source_registry.url}/v2/many/broken/blobs/{layer}")
    assert resp.status == 202, resp.status
    refs = [a.reference for a in many[:10]] + [broken.reference] + [a.reference for a in many[10:20]]
    target = tmp_path / "broken.tar"
    base = ["export", "--source-registry", source_registry.url, "--target", target.as_uri()]
    message = error_message(cli(*base, "-a", *refs), 1)
    assert "many/broken:1" in message and layer in message and "missing" in message, message
    assert not target.exists() and not list(tmp_path.iterdir())  # the staged file was never linked

    # With ContinueOnErrors the blob check up front leaves that artifact out and exports the others.
    out = cli(*base, "--options", "ContinueOnErrors", "-a", *refs)
    assert "many/broken:1" in error_message(out, 1, stdout_empty=False)
    result = json.loads(out.stdout)
    assert list(result["failedArtifacts"]) == ["many/broken:1"] and layer in result["failedArtifacts"]["many/broken:1"]
    assert result["artifacts"] == [r for r in refs if r != broken.reference]


def test_export_dry_run_fails_on_a_missing_blob_as_the_export_would(
    cli: Console, tmp_path: Path, source_registry: RegistryServer
) -> None:
    # A dry run makes no blob GET, so it HEADs every blob: it must not pass what the export fails.
    broken = push_oci_image(source_registry.url, "many/dry-broken", "1", seed=4343, layers=2, layer_size=2048)
    layer = broken.blobs[-1][0]
    resp = urllib3.request("DELETE", f"{source_registry.url}/v2/many/dry-broken/blobs/{layer}")
    assert resp.status == 202, resp.status
    target = tmp_path / "dry.tar"
    base = ["export", "--source-registry", source_registry.url, "--target", target.as_uri(), "--dry-run"]
    message = error_message(cli(*base, "-a", broken.reference), 1)
    assert "many/dry-broken:1" in message and layer in message and "missing" in message, message
    assert not list(tmp_path.iterdir())


def test_import_with_continue_on_errors_tags_every_artifact_but_the_conflicting_one(
    cli: Console, tmp_path: Path, source_registry: RegistryServer, many: list[PushedArtifact]
) -> None:
    refs = [a.reference for a in many[: TAGS * 2]]
    exported = _export(cli, source_registry, refs, tmp_path / "conflict.tar")
    with RegistryServer.start(tmp_path / "target", name="target") as target:
        # The target already has many/r1:t3 pointing elsewhere: the tag checks run concurrently.
        other = push_oci_image(target.url, "many/r1", "t3", seed=9999, layers=1, layer_size=1024)
        args = ["import", "--source", (tmp_path / "conflict.tar").as_uri(), "--target-registry", target.url]
        message = error_message(cli(*args), 1)
        assert "many/r1:t3" in message and "OverwriteTags" in message, message
        assert list_tags(target.url, "many/r0") == []  # refused before anything was tagged

        out = cli(*args, "--options", "ContinueOnErrors", "--catalog-digest", str(exported["catalogDigest"]))
        assert "many/r1:t3" in out.error(1)
        result = json.loads(out.stdout)
        assert list(result["failedArtifacts"]) == ["many/r1:t3"]
        assert result["importedArtifacts"] == [r for r in refs if r != "many/r1:t3"]
        assert get_manifest(target.url, "many/r1", "t3")[2] == other.digest  # left as it was
        for a in many[: TAGS * 2]:
            if a.reference != "many/r1:t3":
                assert get_manifest(target.url, a.repository, str(a.tag))[2] == a.digest


def test_import_into_a_fresh_registry_sends_a_mount_and_a_put_per_blob_a_put_per_image_and_no_head(
    cli: Console, tmp_path: Path, source_registry: RegistryServer, many: list[PushedArtifact]
) -> None:
    # Round trips are what thousands of small artifacts cost: a HEAD and a POST per blob become one
    # POST (a mount from the repository itself), a HEAD per tag one tag list per repository, and an
    # image's manifest goes once, by its tag.
    images = many[: TAGS * 2]
    exported = _export(cli, source_registry, [a.reference for a in images], tmp_path / "requests.tar")
    target = RegistryServer.start(tmp_path / "target", name="target")
    # A body stalled past the proxy's client timeout, or a registry slower to answer than its upstream
    # timeout (a loaded machine; likeliest cause of CI's failure on dd26dc9), would be re-sent from storage,
    # correctly, but as more requests than this test counts: give both all the time they need.
    with target, FaultProxy(target.url, client_timeout=120, upstream_timeout=120) as proxy:
        args = ["import", "--source", (tmp_path / "requests.tar").as_uri(), "--target-registry", proxy.url]
        out = cli.ok(*args, "--catalog-digest", str(exported["catalogDigest"])).json()
        assert out["importedArtifacts"] == [a.reference for a in images]
        placements = sum(len(a.blobs) for a in images)
        assert out["blobs"] == {"uploaded": placements, "skipped": 0, "mounted": 0}
        seen = [(s.method, s.path) for s in proxy.requests if s.path != "/v2/"]
        mounts = [p for m, p in seen if m == "POST" and "/blobs/uploads/?mount=" in p]
        assert len(mounts) == placements
        assert len([p for m, p in seen if m == "PUT" and "/blobs/uploads/" in p]) == placements
        assert sorted(p for m, p in seen if m == "PUT" and "/manifests/" in p) == sorted(
            f"/v2/{a.repository}/manifests/{a.tag}" for a in images
        )
        assert len([p for m, p in seen if m == "GET" and "/tags/list" in p]) == 2  # many/r0 and many/r1
        assert not [p for m, p in seen if m == "HEAD"]
        assert not proxy.errors
        counted = {"POST": "/blobs/uploads/?mount=", "PUT": "/", "GET": "/tags/list"}
        others = [(m, p) for m, p in seen if counted.get(m, "\0") not in p]
        assert not others, others  # e.g. a plain POST and a DELETE for an upload sent again
        assert len(seen) == 2 * placements + len(images) + 2
        for a in images:
            assert get_manifest(target.url, a.repository, str(a.tag))[2] == a.digest


def test_import_checks_each_tag_by_head_when_the_target_will_not_list_tags_and_still_refuses_a_conflict(
    cli: Console, tmp_path: Path, source_registry: RegistryServer, many: list[PushedArtifact]
) -> None:
    images = many[:TAGS]
    _export(cli, source_registry, [a.reference for a in images], tmp_path / "unlisted.tar")
    with RegistryServer.start(tmp_path / "target", name="target") as target, FaultProxy(target.url) as proxy:
        other = push_oci_image(target.url, "many/r0", "t2", seed=8888, layers=1, layer_size=1024)
        # A 404 that does not say NAME_UNKNOWN: the listing proves nothing, so every tag is asked.
        proxy.add(Fault("GET", "/tags/list", status=404, times=5))
        args = ["import", "--source", (tmp_path / "unlisted.tar").as_uri(), "--target-registry", proxy.url]
        # Without ContinueOnErrors the first conflict ends the checks still queued; with it, every
        # tag is checked and only the conflicting one is left out.
        out = cli(*args, "--options", "ContinueOnErrors")
        message = out.error(1)
        assert "many/r0:t2" in message and other.digest in message and "OverwriteTags" in message, message
        result = json.loads(out.stdout)
        assert list(result["failedArtifacts"]) == ["many/r0:t2"]
        assert result["importedArtifacts"] == [a.reference for a in images if a.reference != "many/r0:t2"]
        heads = {s.path for s in proxy.requests if s.method == "HEAD" and "/manifests/" in s.path}
        assert heads == {f"/v2/many/r0/manifests/t{t}" for t in range(TAGS)}
        assert get_manifest(target.url, "many/r0", "t2")[2] == other.digest  # left as it was
        for a in images:
            if a.reference != "many/r0:t2":
                assert get_manifest(target.url, a.repository, str(a.tag))[2] == a.digest


def test_export_keeps_32_blob_gets_in_flight_while_the_registry_is_slow_to_answer(
    cli: Console, tmp_path: Path, source_registry: RegistryServer, many: list[PushedArtifact]
) -> None:
    """An export's blob GETs overlap the registry's latency, GETS_IN_FLIGHT (32) at once. Every blob
    GET is held at a proxy: an export that sent fewer at once would wait on the held ones for good,
    and the count would never reach 32; one that sent more would pass it, since nothing is let go."""
    release = threading.Event()
    refs = [a.reference for a in many]
    with FaultProxy(source_registry.url, client_timeout=120, upstream_timeout=120) as proxy:
        held = proxy.add(Fault("GET", "/blobs/sha256:", hold=release, times=10_000))
        where = ["--source-registry", proxy.url, "--target", (tmp_path / "held.tar").as_uri()]
        proc = cli.start("export", *where, "-a", *refs)
        try:
            wait_until(lambda: held.hits >= GETS_IN_FLIGHT, timeout=60, what=f"{GETS_IN_FLIGHT} blob GETs held")
            assert proc.poll() is None
            assert held.hits == GETS_IN_FLIGHT  # every fetching thread waits on its answer: no more are sent
        finally:
            release.set()
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert json.loads(out)["artifacts"] == refs
    assert held.hits > GETS_IN_FLIGHT  # the rest of the blobs went through the proxy afterwards
