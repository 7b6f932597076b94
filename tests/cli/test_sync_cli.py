"""Recurring air-gap sync through the real console script (issue 12): rename on import, receipts
(`import --receipt-out`, `airlock inventory`) and delta bundles (`export --delta-from`)."""

from __future__ import annotations

import json
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import urllib3

from airlock.testing import content
from airlock.testing.airlock_server import AirlockServer
from airlock.testing.console import Console, Run
from airlock.testing.content import PushedArtifact
from airlock.testing.images import push_oci_image, push_oci_index
from airlock.testing.polling import wait_until
from airlock.testing.referrers import push_referrer, referrers_tag
from airlock.testing.registry_server import RegistryServer


def export(cli: Callable[..., Run], registry: RegistryServer, target: Path, *args: str | Path) -> dict[str, Any]:
    out: dict[str, Any] = cli("export", "--source-registry", registry.url, "--target", target, *args).json()
    return out


def receipt_without_time(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text())
    doc.pop("createdAt")
    return doc


def members(archive: Path) -> set[str]:
    with tarfile.open(archive) as tf:
        return {m.name.removeprefix("blobs/sha256/") for m in tf.getmembers()}


# ------------------------------------------------------------------------------------------- rename


def test_rename_on_import_moves_children_referrers_and_fallback_tags(
    tmp_path: Path, cli: Callable[..., Run], source_registry: RegistryServer, fresh: RegistryServer
) -> None:
    app = push_oci_index(source_registry.url, "ren/team/app", "1.0", seed=301, layer_size=2048)
    signature = push_referrer(source_registry.url, "ren/team/app", app, seed=302)
    base = push_oci_image(source_registry.url, "ren/team/base", "2", seed=303, layer_size=2048)
    batch = tmp_path / "batch.tar"
    export(cli, source_registry, batch, "-a", app.reference, base.reference, "--include-referrers")

    # Longest match wins: ren/team/base goes by its own rule, ren/team/app by the shorter one.
    out = cli(
        "import", "--source", batch, "--target-registry", fresh.url,
        "--rename", "ren/team/=mirror/team/", "--rename", "ren/team/base=legacy/base",
    ).json()  # fmt: skip

    fallback = referrers_tag(app.digest)
    assert sorted(out["importedArtifacts"]) == sorted(
        ["mirror/team/app:1.0", f"mirror/team/app:{fallback}", f"mirror/team/app@{signature.digest}", "legacy/base:2"]
    )
    assert sorted(content.list_tags(fresh.url, "mirror/team/app")) == sorted(["1.0", fallback])
    assert content.get_manifest(fresh.url, "mirror/team/app", "1.0")[2] == app.digest
    for child in app.children:  # index children are in the renamed repository, by digest
        assert content.manifest_exists(fresh.url, "mirror/team/app", child)
    assert content.get_manifest(fresh.url, "mirror/team/app", signature.digest)[2] == signature.digest
    fallback_index = json.loads(content.get_manifest(fresh.url, "mirror/team/app", fallback)[0])
    assert [m["digest"] for m in fallback_index["manifests"]] == [signature.digest]
    for digest, _size in app.blobs + signature.blobs:
        assert content.blob_exists(fresh.url, "mirror/team/app", digest)
    assert content.get_manifest(fresh.url, "legacy/base", "2")[2] == base.digest
    for repo in ("ren/team/app", "ren/team/base", "mirror/team/base"):
        assert content.list_tags(fresh.url, repo) == []


def test_rename_on_import_of_another_tools_oci_layout_too(
    cli: Callable[..., Run], skopeo_tar: Path, image: PushedArtifact, fresh: RegistryServer
) -> None:
    out = cli("import", "--source", skopeo_tar, "--target-registry", fresh.url, "--rename", "guard/=mirror/").json()
    assert out["sourceFormat"] == "oci-layout" and out["importedArtifacts"] == ["mirror/app:1.0"]
    assert content.get_manifest(fresh.url, "mirror/app", "1.0")[2] == image.digest
    assert content.list_tags(fresh.url, "guard/app") == []


@pytest.mark.parametrize(
    ("spec", "said"),
    [
        ("ren/=Upper/", "invalid repository name"),
        ("ren/", "expected SRC_PREFIX=DST_PREFIX"),
        ("=mirror/", "expected SRC_PREFIX=DST_PREFIX"),
    ],
)
def test_rename_to_an_invalid_name_is_refused_before_anything_is_uploaded(
    tmp_path: Path, cli: Callable[..., Run], source_registry: RegistryServer, fresh: RegistryServer, spec: str,
    said: str,
) -> None:  # fmt: skip
    image = push_oci_image(source_registry.url, "ren/bad", "1", seed=304, layer_size=1024)
    batch = tmp_path / "batch.tar"
    export(cli, source_registry, batch, "-a", image.reference)
    message = cli("import", "--source", batch, "--target-registry", fresh.url, "--rename", spec).only_error(2)
    assert said in message and spec.split("=")[0] in message
    for repo in ("ren/bad", "Upper/bad", "bad"):
        assert content.list_tags(fresh.url, repo.lower()) == []
    for digest, _size in image.blobs:
        assert not content.blob_exists(fresh.url, "ren/bad", digest)


# Regression: two prefixes renaming into one repository merged different artifacts onto one tag;
# the import listed the target reference twice, exit 0, and the one pushed last won.
def test_rename_that_merges_two_artifacts_onto_one_tag_is_refused_before_anything_is_uploaded(
    tmp_path: Path, cli: Callable[..., Run], source_registry: RegistryServer, fresh: RegistryServer
) -> None:
    team = push_oci_image(source_registry.url, "merge/team/app", "1", seed=305, layer_size=1024)
    other = push_oci_image(source_registry.url, "merge/other/app", "1", seed=306, layer_size=1024)
    same = push_oci_image(source_registry.url, "merge/other/lib", "1", seed=307, layer_size=1024)
    batch = tmp_path / "batch.tar"
    export(cli, source_registry, batch, "-a", team.reference, other.reference, same.reference)
    rules = ("--rename", "merge/team/=m/", "--rename", "merge/other/=m/")
    message = cli("import", "--source", batch, "--target-registry", fresh.url, *rules).only_error(2)
    assert f"{team.reference} ({team.digest}) and {other.reference} ({other.digest}) on one tag, m/app:1" in message
    assert "nothing was imported" in message
    assert content.list_tags(fresh.url, "m/app") == [] and content.list_tags(fresh.url, "m/lib") == []
    for digest, _size in (*team.blobs, *other.blobs):
        assert not content.blob_exists(fresh.url, "m/app", digest)
    # Apart, the same rules import all three.
    apart = ("--rename", "merge/team/=m/team/", "--rename", "merge/other/=m/")
    done = cli("import", "--source", batch, "--target-registry", fresh.url, *apart).json()
    assert sorted(done["importedArtifacts"]) == ["m/app:1", "m/lib:1", "m/team/app:1"]
    assert content.get_manifest(fresh.url, "m/app", "1")[2] == other.digest


# ------------------------------------------------------------------------------------------ receipts


def test_receipt_from_import_equals_inventory_of_the_target(
    tmp_path: Path, cli: Callable[..., Run], source_registry: RegistryServer, fresh: RegistryServer
) -> None:
    app = push_oci_index(source_registry.url, "rcpt/app", "1.0", seed=311, layer_size=2048)
    push_referrer(source_registry.url, "rcpt/app", app, seed=312)
    base = push_oci_image(source_registry.url, "rcpt/base", "2", seed=313, layer_size=2048)
    batch = tmp_path / "batch.tar"
    export(cli, source_registry, batch, "-a", app.reference, base.reference, "--include-referrers")

    from_import = tmp_path / "import-receipt.json"
    out = cli("import", "--source", batch, "--target-registry", fresh.url, "--receipt-out", from_import).json()
    assert out["receipt"]["path"] == str(from_import) and out["receipt"]["repositories"] == 2

    from_inventory = tmp_path / "inventory-receipt.json"
    summary = cli("inventory", "--registry", fresh.url, "--receipt-out", from_inventory).json()
    assert summary["size"] == from_inventory.stat().st_size
    assert receipt_without_time(from_import) == receipt_without_time(from_inventory)
    printed = cli("inventory", "--registry", fresh.url, "--repository", "rcpt/app", "rcpt/base").json()
    printed.pop("createdAt")
    assert printed == receipt_without_time(from_inventory)

    doc = receipt_without_time(from_inventory)
    assert doc["mediaType"] == "application/vnd.airlock.receipt.v1+json" and doc["registry"] == fresh.url
    assert doc["creator"].startswith("airlock ")
    table = [f"sha256:{hex_}" for hex_, _size in doc["blobs"]]
    assert len(table) == len(set(table))  # each blob once, across repositories
    app_held = doc["repositories"]["rcpt/app"]
    assert app_held["manifests"][app_held["tags"]["1.0"]] == app.digest.removeprefix("sha256:")
    assert {c.removeprefix("sha256:") for c in app.children} <= set(app_held["manifests"])
    assert {table[i] for i in app_held["blobs"]} >= {d for d, _ in app.blobs}
    assert {table[i] for i in doc["repositories"]["rcpt/base"]["blobs"]} == {d for d, _ in base.blobs}


def test_inventory_of_a_renamed_target_with_its_rename_makes_a_delta_that_leaves_out(
    tmp_path: Path, cli: Callable[..., Run], source_registry: RegistryServer, fresh: RegistryServer
) -> None:
    """The README's other way to a receipt: ``inventory --rename`` of a target an import renamed into."""
    image = push_oci_image(source_registry.url, "inv/team/app", "1", seed=315, layer_size=1024)
    batch = tmp_path / "batch.tar"
    export(cli, source_registry, batch, "-a", image.reference)
    cli("import", "--source", batch, "--target-registry", fresh.url, "--rename", "inv/team/=mirror/").json()
    receipt = tmp_path / "receipt.json"
    run = cli("inventory", "--registry", fresh.url, "--repository", "mirror/app", "mirror/nothing",
              "--rename", "inv/team/=mirror/", "--receipt-out", receipt)  # fmt: skip
    assert run.json()["repositories"] == 2
    # A named repository that does not exist is recorded empty, and said: a typo is not silent.
    assert f"repository mirror/nothing has no tags in {fresh.url}: recorded as holding nothing" in run.stderr
    assert json.loads(receipt.read_text())["rename"] == {"inv/team/": "mirror/"}
    out = export(cli, source_registry, tmp_path / "delta.tar", "-a", image.reference, "--delta-from", receipt)
    assert out["artifacts"] == [] and out["delta"]["artifactsLeftOut"] == [image.reference]


# Regression: a bad --delta-from file exited 1, a failure, where bad --selection and --retry-failed
# files exit 2, usage; and it was read only after the source registry had been reached.
@pytest.mark.parametrize(
    ("body", "said"),
    [
        (b"{not json", "not JSON"),
        (b'{"mediaType": "application/vnd.oci.image.index.v1+json"}', "not an airlock receipt"),
        (b'{"mediaType": "application/vnd.airlock.receipt.v1+json", "schemaVersion": 1}', "is invalid at"),
    ],
)
def test_delta_from_a_file_that_is_not_a_receipt_fails_with_one_line_and_writes_nothing(
    tmp_path: Path, cli: Callable[..., Run], source_registry: RegistryServer, body: bytes, said: str
) -> None:
    image = push_oci_image(source_registry.url, "rcpt/bad", "1", seed=314, layer_size=1024)
    receipt = tmp_path / "receipt.json"
    receipt.write_bytes(body)
    target = tmp_path / "delta.tar"
    run = cli("export", "--source-registry", source_registry.url, "-a", image.reference, "--target", target,
              "--delta-from", receipt)  # fmt: skip
    message = run.only_error(2)
    assert message.startswith("--delta-from: receipt ") and said in message and str(receipt) in message
    assert not target.exists()
    # Read before any network work: a registry that does not answer is not what is reported.
    offline = cli("export", "--source-registry", "http://127.0.0.1:1", "--repository", "rcpt/bad", "--target", target,
                  "--delta-from", receipt)  # fmt: skip
    assert offline.only_error(2) == message


# -------------------------------------------------------------------------------------------- deltas


def _second_release(source: RegistryServer, repo: str, seed: int) -> tuple[PushedArtifact, PushedArtifact]:
    """``repo:1.0``, an image, and ``repo:1.1``, an index whose amd64 child is that same image."""
    first = push_oci_image(source.url, repo, "1.0", seed=seed, layers=3, layer_size=4096)
    second = push_oci_index(source.url, repo, "1.1", seed=seed, layers=3, layer_size=4096)
    assert first.digest in second.children
    return first, second


def _first_sync(
    cli: Callable[..., Run], tmp_path: Path, source: RegistryServer, target: RegistryServer, repo: str, seed: int,
    *rename: str,
) -> tuple[PushedArtifact, PushedArtifact, Path]:  # fmt: skip
    """Both releases pushed; 1.0 exported whole and imported into ``target`` with ``--receipt-out``."""
    first, second = _second_release(source, repo, seed)
    full1 = tmp_path / "full1.tar"
    export(cli, source, full1, "-a", first.reference)
    receipt = tmp_path / "receipt.json"
    cli("import", "--source", full1, "--target-registry", target.url, *rename, "--receipt-out", receipt).json()
    return first, second, receipt


def test_delta_export_leaves_out_what_the_receipt_has_and_reports_sizes(
    tmp_path: Path, cli: Callable[..., Run], source_registry: RegistryServer, fresh: RegistryServer
) -> None:
    first, second, receipt = _first_sync(cli, tmp_path, source_registry, fresh, "delta/app", 321)

    delta = tmp_path / "delta.tar"
    # Regression: a dry run said "delta": null, so what a delta leaves out could not be previewed.
    preview = cli("export", "--source-registry", source_registry.url, "-a", first.reference, second.reference,
                  "--target", delta, "--delta-from", receipt, "--dry-run").json()  # fmt: skip
    assert not delta.exists()
    run = cli("export", "--source-registry", source_registry.url, "-a", first.reference, second.reference,
              "--target", delta, "--delta-from", receipt)  # fmt: skip
    out = run.json()
    assert preview["delta"] == out["delta"] and preview["artifacts"] == out["artifacts"], (preview, out)
    full = tmp_path / "full.tar"
    export(cli, source_registry, full, "-a", first.reference, second.reference)

    # 1.0's tag already points at it: left out. 1.1 travels, without the blobs 1.0 brought.
    assert out["artifacts"] == [second.reference]
    report = out["delta"]
    assert report["artifactsLeftOut"] == [first.reference]
    assert report["blobsLeftOut"] == len(first.blobs)
    assert report["bytesLeftOut"] == sum(size for _, size in first.blobs)
    assert report["size"] == out["size"] == delta.stat().st_size
    assert report["fullSize"] == full.stat().st_size > report["size"]
    assert "delta: " in run.stderr and "instead of" in run.stderr
    held = members(delta)
    assert not {d.removeprefix("sha256:") for d, _ in first.blobs} & held
    assert second.digest.removeprefix("sha256:") in held and first.digest.removeprefix("sha256:") in held

    shown = cli("inspect", delta).json()
    assert shown["requires"] == ["delta"]
    assert shown["delta"]["blobsLeftOut"] == len(first.blobs)
    assert shown["delta"]["artifactsLeftOut"] == [first.reference]
    assert shown["delta"]["fullSize"] == full.stat().st_size
    cli("inspect", delta, "--verify").json()

    imported = cli("import", "--source", delta, "--target-registry", fresh.url).json()
    assert imported["importedArtifacts"] == [second.reference]
    assert imported["blobs"]["skipped"] >= len(first.blobs)
    assert content.get_manifest(fresh.url, "delta/app", "1.1")[2] == second.digest
    assert content.get_manifest(fresh.url, "delta/app", "1.0")[2] == first.digest
    for digest, _size in second.blobs:
        assert content.blob_exists(fresh.url, "delta/app", digest)


def test_delta_import_names_missing_blobs_and_tags_nothing(
    tmp_path: Path, cli: Callable[..., Run], source_registry: RegistryServer, target_registry: RegistryServer,
    fresh: RegistryServer,
) -> None:  # fmt: skip
    first, second, receipt = _first_sync(cli, tmp_path, source_registry, target_registry, "delta/gone", 331)
    delta = tmp_path / "delta.tar"
    export(cli, source_registry, delta, "-a", second.reference, "--delta-from", receipt)

    # Into a registry that never got 1.0 (as after a garbage collection): it must refuse, tag nothing.
    message = cli("import", "--source", delta, "--target-registry", fresh.url).only_error(1)
    assert f"{len(first.blobs)} blob(s) it left out are not in the target registry" in message
    assert sorted(d for d, _ in first.blobs)[0] in message
    assert "export again with a fresh receipt" in message and "nothing was tagged" in message
    assert "or without --delta-from" in message  # a fresh receipt cannot help when a repository lost blobs
    assert content.list_tags(fresh.url, "delta/gone") == []
    assert not content.manifest_exists(fresh.url, "delta/gone", second.digest)
    for digest, _size in second.blobs:
        assert not content.blob_exists(fresh.url, "delta/gone", digest)


# Regression: the import took the catalog's word for the artifacts it left out, so a tag deleted or
# moved in the target since the receipt was reported in unchangedArtifacts, exit 0, and stayed lost.
@pytest.mark.parametrize("change", ["deleted", "moved"])
def test_delta_import_refuses_an_unchanged_artifact_the_target_no_longer_holds(
    change: str, tmp_path: Path, cli: Callable[..., Run], source_registry: RegistryServer, fresh: RegistryServer
) -> None:
    repo = f"delta/{change}"
    first, second, receipt = _first_sync(cli, tmp_path, source_registry, fresh, repo, 341 + len(change))
    delta = tmp_path / "delta.tar"
    out = export(cli, source_registry, delta, "-a", first.reference, second.reference, "--delta-from", receipt)
    assert out["delta"]["artifactsLeftOut"] == [first.reference]

    if change == "deleted":  # distribution deletes a manifest, and the tags on it, by digest
        resp = urllib3.request("DELETE", f"{fresh.url}/v2/{repo}/manifests/{first.digest}")
        assert resp.status == 202, resp.status
        expected = f"{first.reference} (not there)"
    else:
        other = push_oci_image(fresh.url, repo, "1.0", seed=349, layer_size=1024)
        expected = f"{first.reference} (now {other.digest})"
    message = cli("import", "--source", delta, "--target-registry", fresh.url).only_error(1)
    assert f"1 artifact(s) it left out as unchanged are no longer so in the target registry ({expected})" in message
    assert "export again with a fresh receipt" in message and "nothing was tagged" in message
    assert not content.manifest_exists(fresh.url, repo, "1.1")
    assert not content.manifest_exists(fresh.url, repo, second.digest)


def test_delta_against_a_renamed_imports_receipt_leaves_out_and_mounts_from_the_target_names(
    tmp_path: Path, cli: Callable[..., Run], source_registry: RegistryServer, fresh: RegistryServer
) -> None:
    rename = ("--rename", "delta/team/=mirror/team/")
    first, second, receipt = _first_sync(cli, tmp_path, source_registry, fresh, "delta/team/app", 341, *rename)
    doc = json.loads(receipt.read_text())
    assert list(doc["repositories"]) == ["mirror/team/app"] and doc["rename"] == {"delta/team/": "mirror/team/"}

    # 1.1 goes to another repository this time: its shared blobs are mounted from mirror/team/app.
    other = push_oci_index(source_registry.url, "delta/team/other", "1.1", seed=341, layers=3, layer_size=4096)
    assert other.digest == second.digest
    delta = tmp_path / "delta.tar"
    out = export(cli, source_registry, delta, "-a", first.reference, other.reference, "--delta-from", receipt)
    assert out["delta"]["artifactsLeftOut"] == [first.reference]  # matched under the receipt's rename
    assert out["delta"]["blobsLeftOut"] == len(first.blobs)

    imported = cli("import", "--source", delta, "--target-registry", fresh.url, *rename).json()
    assert imported["importedArtifacts"] == ["mirror/team/other:1.1"]
    assert imported["blobs"]["mounted"] == len(first.blobs)
    assert content.get_manifest(fresh.url, "mirror/team/other", "1.1")[2] == other.digest
    for digest, _size in other.blobs:
        assert content.blob_exists(fresh.url, "mirror/team/other", digest)


# Regression: the rename collision check saw only the artifacts a delta ships. One left out as
# unchanged at m/app:1 and a shipped one renamed onto m/app:1 too: with OverwriteTags the shipped
# one replaced the tag, exit 0, and the result still listed the left-out one as unchanged there.
def test_rename_of_a_shipped_artifact_onto_a_tag_a_delta_left_out_is_refused_before_anything_is_uploaded(
    tmp_path: Path, cli: Callable[..., Run], source_registry: RegistryServer, fresh: RegistryServer
) -> None:
    team = push_oci_image(source_registry.url, "dmerge/team/app", "1", seed=361, layer_size=1024)
    other = push_oci_image(source_registry.url, "dmerge/other/app", "1", seed=362, layer_size=1024)
    full = tmp_path / "full.tar"
    export(cli, source_registry, full, "-a", team.reference)
    receipt = tmp_path / "receipt.json"
    cli("import", "--source", full, "--target-registry", fresh.url, "--rename", "dmerge/team/=m/",
        "--receipt-out", receipt).json()  # fmt: skip
    delta = tmp_path / "delta.tar"
    out = export(cli, source_registry, delta, "-a", team.reference, other.reference, "--delta-from", receipt)
    assert out["delta"]["artifactsLeftOut"] == [team.reference]

    rules = ("--rename", "dmerge/team/=m/", "--rename", "dmerge/other/=m/", "--options", "OverwriteTags")
    message = cli("import", "--source", delta, "--target-registry", fresh.url, *rules).only_error(2)
    assert f"{team.reference} ({team.digest}) and {other.reference} ({other.digest}) on one tag, m/app:1" in message
    assert "nothing was imported" in message
    assert content.get_manifest(fresh.url, "m/app", "1")[2] == team.digest
    for digest, _size in other.blobs:
        assert not content.blob_exists(fresh.url, "m/app", digest)


# ------------------------------------------------------------------------------ ImportPipeline rename


def _renaming_pipeline(cli: Callable[..., Run], registry: RegistryServer, container: Path, *trigger: str) -> None:
    cli("acr", "create", "-g", "syncrg", "-n", "renreg", "--login-server", registry.url).json()
    made = cli("acr", "import-pipeline", "create", "-g", "syncrg", "-r", "renreg", "-n", "renimport",
               "-c", container.as_uri(), "--rename", "pipe/=mirror/pipe/", *trigger).json()  # fmt: skip
    assert made["properties"]["rename"] == {"pipe/": "mirror/pipe/"}
    shown = cli("acr", "import-pipeline", "show", "-g", "syncrg", "-r", "renreg", "-n", "renimport").json()
    assert shown["properties"]["rename"] == {"pipe/": "mirror/pipe/"}  # kept by the stored model


def test_import_pipeline_rename_extension_is_honoured_by_a_run(
    tmp_path: Path, cli: Callable[..., Run], source_registry: RegistryServer, fresh: RegistryServer
) -> None:
    image = push_oci_image(source_registry.url, "pipe/app", "1", seed=351, layer_size=1024)
    container = tmp_path / "container"
    container.mkdir()
    export(cli, source_registry, container / "batch.tar", "-a", image.reference)
    _renaming_pipeline(cli, fresh, container, "-e", "False")
    run = cli("acr", "pipeline-run", "create", "-g", "syncrg", "-r", "renreg", "-p", "renimport", "-n", "renrun",
              "-t", "import", "-b", "batch.tar").json()  # fmt: skip
    assert run["properties"]["response"]["importedArtifacts"] == ["mirror/pipe/app:1"]
    assert content.get_manifest(fresh.url, "mirror/pipe/app", "1")[2] == image.digest
    assert content.list_tags(fresh.url, "pipe/app") == []


def test_import_pipeline_rename_extension_is_honoured_by_the_source_trigger(
    tmp_path: Path, source_registry: RegistryServer, cli: Callable[..., Run], fresh: RegistryServer
) -> None:
    image = push_oci_image(source_registry.url, "pipe/triggered", "1", seed=352, layer_size=1024)
    container = tmp_path / "container"
    container.mkdir()
    server = AirlockServer(tmp_path / "served", trigger_interval=0.5).start()
    try:
        token = (server.home / "api-token").read_text().strip()
        remote = Console(home=tmp_path, env={"AIRLOCK_ENDPOINT": server.url, "AIRLOCK_TOKEN": token})
        _renaming_pipeline(remote, fresh, container, "-e", "True")
        export(cli, source_registry, container / "batch.tar", "-a", image.reference)
        wait_until(lambda: content.list_tags(fresh.url, "mirror/pipe/triggered") == ["1"], timeout=60,
                   what="the trigger's import into mirror/pipe/triggered")  # fmt: skip
    finally:
        server.stop()
    assert content.get_manifest(fresh.url, "mirror/pipe/triggered", "1")[2] == image.digest
    assert content.list_tags(fresh.url, "pipe/triggered") == []


def test_a_delta_with_nothing_new_holds_no_artifact_and_imports_as_a_no_op(
    tmp_path: Path, cli: Callable[..., Run], source_registry: RegistryServer, fresh: RegistryServer
) -> None:
    image = push_oci_image(source_registry.url, "delta/same", "1", seed=361, layer_size=1024)
    full = tmp_path / "full.tar"
    export(cli, source_registry, full, "-a", image.reference)
    cli("import", "--source", full, "--target-registry", fresh.url).json()
    receipt = tmp_path / "receipt.json"
    cli("inventory", "--registry", fresh.url, "--receipt-out", receipt).json()
    delta = tmp_path / "delta.tar"
    out = export(cli, source_registry, delta, "-a", image.reference, "--delta-from", receipt)
    assert out["artifacts"] == [] and out["delta"]["artifactsLeftOut"] == [image.reference]
    assert out["delta"]["fullSize"] == full.stat().st_size
    again = tmp_path / "receipt-again.json"
    imported = cli("import", "--source", delta, "--target-registry", fresh.url, "--receipt-out", again).json()
    assert imported["importedArtifacts"] == [] and imported["failedArtifacts"] == {}
    assert imported["unchangedArtifacts"] == [image.reference]
    assert content.get_manifest(fresh.url, "delta/same", "1")[2] == image.digest
    # The receipt to carry back still says what the target holds, though nothing was new.
    assert receipt_without_time(again) == receipt_without_time(receipt)


def test_delta_from_a_receipt_naming_an_invalid_repository_is_refused(
    tmp_path: Path, cli: Callable[..., Run], source_registry: RegistryServer
) -> None:
    image = push_oci_image(source_registry.url, "rcpt/evil", "1", seed=372, layer_size=1024)
    receipt = tmp_path / "receipt.json"
    receipt.write_text(json.dumps({
        "schemaVersion": 1, "mediaType": "application/vnd.airlock.receipt.v1+json", "registry": "http://x",
        "createdAt": "2026-01-01T00:00:00Z", "creator": "someone", "blobs": [],
        "repositories": {"../../evil": {}},
    }))  # fmt: skip
    target = tmp_path / "delta.tar"
    run = cli("export", "--source-registry", source_registry.url, "-a", image.reference, "--target", target,
              "--delta-from", receipt)  # fmt: skip
    assert "invalid repository name" in run.only_error(2)
    assert not target.exists()
    # A rename recorded in the receipt that no repository name can follow is said to be the receipt's.
    doc = json.loads(receipt.read_text()) | {"repositories": {}, "rename": {"rcpt/": "UPPER/"}}
    receipt.write_text(json.dumps(doc))
    run = cli("export", "--source-registry", source_registry.url, "-a", image.reference, "--target", target,
              "--delta-from", receipt)  # fmt: skip
    assert run.only_error(2).startswith(f"receipt {receipt} rename: rcpt/=UPPER/ renames into an invalid repository")
    assert not target.exists()
