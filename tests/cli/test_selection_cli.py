"""`airlock export`'s selection (issue 12): repositories and globs narrowed by --tags, --semver, --keep;
--selection FILE; --dry-run; --platform with --platform-index keep|rewrite and what the import of each
does on distribution (the registry the tests run), through the real console script."""

from __future__ import annotations

import json
import re
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airlock.testing import content
from airlock.testing.console import Run, error_message
from airlock.testing.content import PushedArtifact
from airlock.testing.images import push_oci_image, push_oci_index
from airlock.testing.referrers import push_oci_artifact, push_referrer
from airlock.testing.registry_server import RegistryServer

APP_TAGS = ["1.3.0", "1.4.0", "1.4.2", "1.10.0", "2.0.0", "2.0.0-rc.1", "latest"]
WEB_TAGS = ["0.9", "1.5", "1.6"]
# Not semver: --keep orders them by their config's created time (tue is the newest of these).
NIGHTLY = {"mon": "2026-11-23T02:00:00Z", "tue": "2026-11-24T02:00:00.5Z", "wed": "2026-11-18T02:00:00Z"}
PLATFORMS = (("linux", "amd64"), ("linux", "arm64"), ("linux", "s390x"))


def _tiny(url: str, repo: str, tag: str, seed: int, **kw: str) -> PushedArtifact:
    return push_oci_image(url, repo, tag, layers=1, layer_size=512, seed=seed, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def source(source_registry: RegistryServer) -> RegistryServer:
    url = source_registry.url
    for i, tag in enumerate(APP_TAGS):
        _tiny(url, "team/app", tag, seed=i)
    for i, tag in enumerate(WEB_TAGS):
        _tiny(url, "team/web", tag, seed=20 + i)
    _tiny(url, "team/sub/deep", "1.4.0", seed=30)
    _tiny(url, "other/app", "1.4.2", seed=31)
    for i, (tag, created) in enumerate(NIGHTLY.items()):
        _tiny(url, "team/nightly", tag, seed=40 + i, created=created)
    # An index is dated by its first image's config.
    push_oci_index(url, "team/nightly", "thu", layers=1, layer_size=512, seed=44, created="2026-11-25T02:00:00Z")
    return source_registry


@pytest.fixture(scope="module")
def multi(source_registry: RegistryServer) -> PushedArtifact:
    return push_oci_index(
        source_registry.url, "team/multi", "3.0", platforms=PLATFORMS, layers=1, layer_size=512, seed=7
    )


def catalog_of(archive: Path) -> dict[str, Any]:
    with tarfile.open(archive) as tf:
        first = tf.next()
        assert first is not None and first.name == "airlock-catalog.json"
        f = tf.extractfile(first)
        assert f is not None
        catalog: dict[str, Any] = json.loads(f.read())
        return catalog


def export(cli: Callable[..., Run], registry: RegistryServer, target: Path, *args: str) -> dict[str, Any]:
    out: dict[str, Any] = cli("export", "--source-registry", registry.url, "--target", target.as_uri(), *args).json()
    return out


def test_export_repository_glob_with_semver_and_keep_selects_newest(
    tmp_path: Path, cli: Callable[..., Run], source: RegistryServer
) -> None:
    out = export(cli, source, tmp_path / "b.tar", "--repository", "team/*", "--semver", ">=1.4 <2", "--keep", "2")
    # team/* is one path component: not team/sub/deep, not other/app; 2.0.0-rc.1 and latest are left out;
    # team/nightly's tags are not semver, so none is in the range.
    assert out["artifacts"] == ["team/app:1.10.0", "team/app:1.4.2", "team/web:1.6", "team/web:1.5"]
    assert [a["reference"] for a in catalog_of(tmp_path / "b.tar")["artifacts"]] == out["artifacts"]
    assert out["failedArtifacts"] == {}


def test_export_keep_orders_tags_that_are_not_semver_by_their_config_created_time(
    tmp_path: Path, cli: Callable[..., Run], source: RegistryServer
) -> None:
    out = export(cli, source, tmp_path / "n.tar", "--repository", "team/nightly", "--keep", "3", "--dry-run")
    assert out["artifacts"] == ["team/nightly:thu", "team/nightly:tue", "team/nightly:mon"]


def test_export_repository_tags_regex_matches_in_full_and_combines_with_artifacts(
    tmp_path: Path, cli: Callable[..., Run], source: RegistryServer
) -> None:
    out = export(
        cli, source, tmp_path / "r.tar",
        "--repository", "team/app", "--repository", "team/sub/deep", "--tags", r"1\.4\.\d+",
        "-a", "other/app:1.4.2", "team/app:latest",
    )  # fmt: skip
    assert out["artifacts"] == [
        "other/app:1.4.2", "team/app:latest", "team/app:1.4.0", "team/app:1.4.2", "team/sub/deep:1.4.0",
    ]  # fmt: skip


def test_export_dry_run_resolves_and_writes_nothing(
    tmp_path: Path, cli: Callable[..., Run], source: RegistryServer, multi: PushedArtifact
) -> None:
    target = tmp_path / "never.tar"
    out = export(
        cli, source, target, "--repository", "team/web", "--keep", "1", "-a", "team/multi:3.0",
        "--platform", "linux/arm64", "--dry-run",
    )  # fmt: skip
    assert out["dryRun"] is True
    assert out["catalogDigest"] is None and out["size"] == 0
    assert out["artifacts"] == ["team/multi:3.0", "team/web:1.6"]
    details = {a["reference"]: a for a in out["artifactDetails"]}
    assert details["team/multi:3.0"]["digest"] == multi.digest
    assert details["team/multi:3.0"]["platforms"] == ["linux/arm64"]
    assert len(details["team/multi:3.0"]["omittedManifests"]) == 2
    assert "platforms" not in details["team/web:1.6"]  # an image manifest travels as it is, unmarked
    assert all(a["contentSize"] > 0 for a in out["artifactDetails"])
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_export_selection_file_in_yaml_or_json_selects_what_the_flags_do(
    tmp_path: Path, cli: Callable[..., Run], source: RegistryServer
) -> None:
    yaml_file = tmp_path / "selection.yaml"
    yaml_file.write_text(
        "# what crosses the gap every night\n"
        "repositories:\n"
        "  - name: team/*\n"
        "    semver: '>=1.4 <2'\n"
        "    keep: 2\n"
        "artifacts:\n"
        "  - other/app:1.4.2\n"
    )
    json_file = tmp_path / "selection.json"
    json_file.write_text(
        json.dumps(
            {"repositories": [{"name": "team/*", "semver": ">=1.4 <2", "keep": 2}], "artifacts": ["other/app:1.4.2"]}
        )
    )
    expected = ["other/app:1.4.2", "team/app:1.10.0", "team/app:1.4.2", "team/web:1.6", "team/web:1.5"]
    for path in (yaml_file, json_file):
        out = export(cli, source, tmp_path / f"{path.suffix}.tar", "--selection", str(path), "--dry-run")
        assert out["artifacts"] == expected, path
    # The flags add to the file (artifacts first, then repositories, as always).
    out = export(
        cli, source, tmp_path / "both.tar", "--selection", str(yaml_file), "-a", "team/app:latest", "--dry-run"
    )
    assert out["artifacts"] == [expected[0], "team/app:latest", *expected[1:]]


def test_export_selection_mistakes_are_one_line_errors_naming_the_rule(
    tmp_path: Path, cli: Callable[..., Run], source: RegistryServer
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("repositories:\n  - name: team/app\n    keep: 0\n")
    base = ("export", "--source-registry", source.url, "--target", str(tmp_path / "x.tar"))
    message = error_message(cli(*base, "--selection", str(bad)), 2)
    assert message == f"selection file {bad}: repositories.0.keep: Input should be greater than or equal to 1"
    assert "not valid YAML" in error_message(cli(*base, "--selection", str(_write(tmp_path, "y.yaml", "a: [1"))), 2)
    assert "--tags, --semver and --keep narrow --repository" in error_message(cli(*base, "--keep", "1", "-a", "x:1"), 2)
    assert "export needs --artifacts, --repository or --selection" in error_message(cli(*base), 2)
    assert "invalid semver range '~1.4'" in error_message(cli(*base, "--repository", "team/app", "--semver", "~1.4"), 2)
    assert "invalid platform 'arm64'" in error_message(cli(*base, "-a", "team/app:latest", "--platform", "arm64"), 2)
    assert re.fullmatch(
        r"repository glob nope/\* matches none of the registry's \d+ repositories",
        error_message(cli(*base, "--repository", "nope/*")),
    )
    assert error_message(cli(*base, "--repository", "team/app", "--tags", "9.*")) == (
        "the selection names no artifact: its repositories have no tag that passes its filters"
    )
    assert not (tmp_path / "x.tar").exists()


def _write(directory: Path, name: str, text: str) -> Path:
    (directory / name).write_text(text)
    return directory / name


def test_platform_filter_keep_carries_the_index_unchanged_with_only_the_chosen_manifests(
    tmp_path: Path, cli: Callable[..., Run], source: RegistryServer, multi: PushedArtifact
) -> None:
    out = export(cli, source, tmp_path / "k.tar", "-a", "team/multi:3.0", "--platform", "linux/arm64")
    catalog = catalog_of(tmp_path / "k.tar")
    (entry,) = catalog["artifacts"]
    assert entry["digest"] == multi.digest  # the tag's identity is unchanged
    arm64, others = multi.children[1], {multi.children[0], multi.children[2]}
    assert set(entry["omittedManifests"]) == others
    assert catalog["requires"] == ["platforms"]  # an older reader refuses rather than mis-import
    assert [m["digest"] for m in catalog["manifests"]] == [arm64, multi.digest]
    assert out["artifactDetails"][0]["omittedManifests"] == entry["omittedManifests"]
    # The disconnected side sees it too, from the catalog alone.
    shown = cli("inspect", str(tmp_path / "k.tar")).json()
    assert shown["requires"] == ["platforms"]
    assert shown["artifacts"][0]["platforms"] == ["linux/arm64"]
    assert shown["artifacts"][0]["omittedManifests"] == entry["omittedManifests"]


def test_platform_filter_keep_import_into_distribution_stops_naming_the_missing_manifests(
    tmp_path: Path, cli: Callable[..., Run], source: RegistryServer, target_registry: RegistryServer,
    multi: PushedArtifact,
) -> None:  # fmt: skip
    archive = tmp_path / "k.tar"
    export(cli, source, archive, "-a", "team/multi:3.0", "--platform", "linux/arm64")
    # distribution checks that every manifest an index names is in the repository, so it refuses this
    # index (MANIFEST_BLOB_UNKNOWN); the import stops with one line and tags nothing.
    message = error_message(cli("import", "--source", str(archive), "--target-registry", target_registry.url))
    missing = sorted({multi.children[0], multi.children[2]})
    assert message.startswith(
        f"artifact team/multi:3.0: the target registry refuses index {multi.digest} without the manifests the "
        f"platform filter (linux/arm64) left out, which team/multi lacks: {missing[0]}, {missing[1]}; "
        "export again with --platform-index rewrite"
    ), message
    assert content.list_tags(target_registry.url, "team/multi") == []
    # Once the target has the other platforms (an earlier full import, here pushed by digest), the
    # same archive imports, and the tag names the index the source has.
    for platform in (PLATFORMS[0], PLATFORMS[2]):
        push_oci_image(target_registry.url, "team/multi", None, layers=1, layer_size=512, seed=7, platform=platform)
    out = cli("import", "--source", str(archive), "--target-registry", target_registry.url).json()
    assert out["importedArtifacts"] == ["team/multi:3.0"]
    assert content.get_manifest(target_registry.url, "team/multi", "3.0")[2] == multi.digest


def test_platform_filter_rewrite_reports_new_index_digest(
    tmp_path: Path, cli: Callable[..., Run], source: RegistryServer, workdir: Path, multi: PushedArtifact
) -> None:
    archive = tmp_path / "w.tar"
    out = export(
        cli, source, archive, "-a", "team/multi:3.0", "--platform", "linux/arm64", "--platform", "linux/s390x",
        "--platform-index", "rewrite",
    )  # fmt: skip
    (detail,) = out["artifactDetails"]
    assert detail["sourceDigest"] == multi.digest
    assert detail["digest"] != multi.digest
    assert "omittedManifests" not in detail
    assert catalog_of(archive)["requires"] == []  # self-contained: any reader, any registry
    with RegistryServer.start(workdir / "rewrite-target", name="rewrite-target") as fresh:
        cli("import", "--source", str(archive), "--target-registry", fresh.url).json()
        raw, _, digest = content.get_manifest(fresh.url, "team/multi", "3.0")
        assert digest == detail["digest"]
        entries = json.loads(raw)["manifests"]
        assert [e["digest"] for e in entries] == [multi.children[1], multi.children[2]]
        assert [e["platform"]["architecture"] for e in entries] == ["arm64", "s390x"]
        for child in entries:
            assert content.manifest_exists(fresh.url, "team/multi", child["digest"])


def test_platform_filter_rewrite_of_an_index_with_referrers_is_refused_not_left_without_them(
    tmp_path: Path, cli: Callable[..., Run], source_registry: RegistryServer
) -> None:
    """Regression: the rewritten index's referrers were looked up by its new digest, which has none,
    so the index's signature and its sha256-<hex> tag were dropped with exit 0 and nothing said."""
    signed = push_oci_index(
        source_registry.url, "team/signedmulti", "1", platforms=PLATFORMS, layers=1, layer_size=512, seed=171
    )
    push_referrer(source_registry.url, "team/signedmulti", signed, seed=172)
    base = ["-a", "team/signedmulti:1", "--platform", "linux/arm64", "--include-referrers"]
    run = cli("export", "--source-registry", source_registry.url, "--target", tmp_path / "r.tar", *base,
              "--platform-index", "rewrite")  # fmt: skip
    message = error_message(run, 2)
    assert f"the source's index {signed.digest} has referrers" in message and "--platform-index keep" in message
    assert not (tmp_path / "r.tar").exists()
    kept = export(cli, source_registry, tmp_path / "k.tar", *base)  # keep: the index and what refers to it
    assert f"team/signedmulti:sha256-{signed.digest.split(':')[1]}" in kept["artifacts"], kept["artifacts"]
    alone = export(cli, source_registry, tmp_path / "a.tar", *base[:-1], "--platform-index", "rewrite")
    assert alone["artifacts"] == ["team/signedmulti:1"]
    # cosign's key-based signature of the index, under its sha256-<hex>.sig tag: the same.
    cosigned = push_oci_index(
        source_registry.url, "team/cosignedmulti", "1", platforms=PLATFORMS, layers=1, layer_size=512, seed=173
    )
    push_oci_artifact(source_registry.url, "team/cosignedmulti", f"sha256-{cosigned.digest.split(':')[1]}.sig",
                      artifact_type="application/vnd.dev.cosign.simplesigning.v1+json", seed=174)  # fmt: skip
    run = cli("export", "--source-registry", source_registry.url, "--target", tmp_path / "c.tar", "-a",
              "team/cosignedmulti:1", *base[2:], "--platform-index", "rewrite")  # fmt: skip
    assert f"the source's index {cosigned.digest} has referrers" in error_message(run, 2)


@pytest.mark.parametrize("text", ["", "# nothing yet\n", "repositories: []\n"])
def test_a_selection_file_that_selects_nothing_says_so_naming_it(
    tmp_path: Path, cli: Callable[..., Run], source_registry: RegistryServer, text: str
) -> None:
    """Regression: it was told to give --selection FILE, which it had given."""
    path = tmp_path / "selection.yaml"
    path.write_text(text)
    run = cli("export", "--source-registry", source_registry.url, "--selection", path, "--target", tmp_path / "x.tar")
    assert error_message(run, 2) == f"selection file {path} selects nothing: it lists no repositories and no artifacts"


def test_platform_filter_naming_no_platform_of_the_index_fails_listing_what_it_has(
    tmp_path: Path, cli: Callable[..., Run], source: RegistryServer, multi: PushedArtifact
) -> None:
    run = cli(
        "export", "--source-registry", source.url, "--target", str(tmp_path / "p.tar"), "-a", "team/multi:3.0",
        "--platform", "windows/amd64",
    )  # fmt: skip
    assert error_message(run) == (
        f"artifact team/multi:3.0: index {multi.digest} has no manifest for windows/amd64 "
        "(it has linux/amd64, linux/arm64, linux/s390x)"
    )
    assert not (tmp_path / "p.tar").exists()
