"""Hostile transfer blobs and API bodies, through the real CLI and API: clear errors, nothing written.

Each crafted archive is imported with `airlock import`; the command must exit non-zero with one
`error:` line and no traceback, the target registry must have no tag, and nothing may appear on
disk outside the work folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from airlock.api.app import create_app
from airlock.archive.format import BLOB_PREFIX, CATALOG_NAME, INDEX_NAME, LAYOUT_BYTES, LAYOUT_NAME
from airlock.oci.digest import Digest
from airlock.oci.reference import ArtifactReference, RegistryURL
from airlock.registry.client import RegistryClient
from airlock.storage.location import open_blob, parse_blob_uri
from airlock.testing import content
from airlock.testing.images import push_oci_image
from airlock.testing.registry_server import RegistryServer
from airlock.testing.tars import members, pack
from airlock.transfer.export import export_artifacts
from airlock.wiring import open_control_plane

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

EXE = str(Path(sys.executable).parent / "airlock")


@pytest.fixture(scope="module")
def good(source_registry: RegistryServer, workdir: Path) -> Path:
    img = push_oci_image(source_registry.url, "hostile/app", "1", seed=81)
    path = workdir / "good.tar"
    export_artifacts(
        client=RegistryClient(RegistryURL.parse(source_registry.url), use_auth_files=False),
        artifacts=[ArtifactReference.parse(img.reference)],
        target=open_blob(parse_blob_uri(path.as_uri())),
    )
    return path


def edit_json(name: str, change: Callable[[Any], Any]) -> Callable[[list[tuple[tarfile.TarInfo, bytes]]], bytes]:
    def apply(items: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
        return pack([(i, json.dumps(change(json.loads(d))).encode() if i.name == name else d) for i, d in items])

    return apply


def _first_layer(items: list[tuple[tarfile.TarInfo, bytes]]) -> str:
    cat = json.loads(next(d for i, d in items if i.name == CATALOG_NAME))
    return str(max(cat["blobs"], key=lambda b: b["size"])["digest"])


def _link(name: str, target: str, kind: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, b""


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def _catalog_repo(cat: Any) -> Any:
    cat["artifacts"][0]["repository"] = "../../etc"
    return cat


def _manifest_without_blob(items: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    layer = _first_layer(items)
    out = [(i, d) for i, d in items if i.name != BLOB_PREFIX + layer.split(":")[1]]
    return edit_json(CATALOG_NAME, lambda c: {**c, "blobs": [b for b in c["blobs"] if b["digest"] != layer]})(out)


def _flip(items: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    layer = _first_layer(items)
    return pack([(i, bytes([d[0] ^ 1]) + d[1:] if i.name.endswith(layer.split(":")[1]) else d) for i, d in items])


def _delta_naming(reference: str) -> Callable[[Any], Any]:
    """The catalog as a delta that left out ``reference`` as unchanged (a tag the target must hold)."""

    def change(cat: Any) -> Any:
        receipt = {"registry": "http://x", "createdAt": "2026-01-01T00:00:00Z", "digest": "sha256:" + "c" * 64}
        left_out = [{"reference": reference, "digest": "sha256:" + "d" * 64}]
        delta = {"receipt": receipt, "blobs": [], "artifacts": left_out, "fullSize": 0}
        return {**cat, "requires": ["delta"], "delta": delta}

    return change


CASES: dict[str, Callable[[list[tuple[tarfile.TarInfo, bytes]]], bytes]] = {
    "dotdot-member": lambda items: pack([*items[:3], _file("../../evil", b"x"), *items[3:]]),
    "absolute-member": lambda items: pack([*items[:3], _file("/tmp/airlock-evil", b"x"), *items[3:]]),
    "symlink-member": lambda items: pack(
        [*items[:3], _link(BLOB_PREFIX + "a" * 64, "/etc/passwd", tarfile.SYMTYPE), *items[3:]]
    ),
    "hardlink-member": lambda items: pack(
        [*items[:3], _link(BLOB_PREFIX + "b" * 64, CATALOG_NAME, tarfile.LNKTYPE), *items[3:]]
    ),
    "duplicate-member": lambda items: pack([*items, items[-1]]),
    "digest-mismatch": _flip,
    "truncated": lambda items: pack(items)[: len(pack(items)) // 2],
    "oversized-json": lambda items: pack([(items[0][0], b'{"a":"' + b"x" * (33 * 1024 * 1024) + b'"}'), *items[1:]]),
    "manifest-names-missing-blob": _manifest_without_blob,
    "invalid-repository-name": edit_json(CATALOG_NAME, _catalog_repo),
    "index-disagrees": edit_json(INDEX_NAME, lambda ix: {**ix, "manifests": []}),
    "wrong-layout": lambda items: pack(
        [(i, b'{"imageLayoutVersion":"9"}' if i.name == LAYOUT_NAME else d) for i, d in items]
    ),
    "not-a-tar": lambda items: b"this is not an archive at all" * 100,
    # A delta's left-out artifact goes into a HEAD's URL: a tag that is not one must not get there.
    "delta-unchanged-bad-tag": edit_json(CATALOG_NAME, _delta_naming("hostile/app:../../v2/x")),
    "delta-unchanged-gone": edit_json(CATALOG_NAME, _delta_naming("hostile/app:gone")),
    "delta-unchanged-tagless": edit_json(CATALOG_NAME, _delta_naming("hostile/app")),  # not as :latest
}


@pytest.fixture(scope="module")
def target(workdir: Path) -> Iterator[RegistryServer]:
    with RegistryServer.start(workdir / "hostile-target", name="hostile-target") as server:
        yield server


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_archives_are_refused_cleanly(case: str, good: Path, target: RegistryServer, tmp_path: Path) -> None:
    assert LAYOUT_BYTES  # the archive format under test
    bad = tmp_path / f"{case}.tar"
    bad.write_bytes(CASES[case](members(good)))
    before = set(os.listdir("/tmp"))
    done = subprocess.run(
        [EXE, "import", "--source", bad.as_uri(), "--target-registry", target.url],
        capture_output=True,
        text=True,
        env={**os.environ, "AIRLOCK_NO_PROGRESS": "1"},
        timeout=120,
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode != 0, done.stdout
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert content.list_tags(target.url, "hostile/app") == []
    assert not (tmp_path.parent / "evil").exists() and "airlock-evil" not in set(os.listdir("/tmp")) - before
    assert not Path("/etc/airlock-evil").exists()


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    home = tmp_path_factory.mktemp("home")
    app = create_app(lambda: open_control_plane(home), token="t", trigger_interval=None)
    with TestClient(app) as client:
        client.put(
            REG + "?api-version=2025-06-01-preview",
            headers={"Authorization": "Bearer t"},
            json={"properties": {"loginServer": "https://r.example"}},
        )
        yield client


SUB = "00000000-0000-0000-0000-000000000000"
REG = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/hostilereg"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (
            "/exportPipelines/huge1",
            {"properties": {"target": {"uri": "file:///x"}, "options": ["OverwriteBlobs"] * 10_000}},
        ),
        (
            "/pipelineRuns/huge2",
            {"properties": {"request": {"pipelineResourceId": "x", "artifacts": ["a:1"] * 100_000}}},
        ),
        ("/exportPipelines/huge3", {"properties": {"target": {"uri": "file:///x" + "y" * 3_000_000}}}),
        ("/exportPipelines/types4", {"properties": {"target": {"uri": ["file:///x"]}}}),
        ("/exportPipelines/types5", {"identity": "SystemAssigned", "properties": {"target": {"uri": "file:///x"}}}),
        ("/exportPipelines/types6", [1, 2, 3]),
        ("/exportPipelines/nested7", {"properties": {"target": {"uri": "file:///x", "extra": {"deep": [[[[1]]]]}}}}),
    ],
    ids=[
        "huge-options",
        "huge-artifacts",
        "huge-body",
        "list-for-string",
        "string-for-object",
        "array-body",
        "unknown-nested-field",
    ],
)
def test_hostile_api_bodies_get_4xx_envelopes(api: TestClient, path: str, body: Any) -> None:
    r = api.put(REG + path + "?api-version=2025-06-01-preview", headers={"Authorization": "Bearer t"}, json=body)
    assert 400 <= r.status_code < 500, r.text[:300]
    error = r.json()["error"]
    assert error["code"] and "\n" not in error["message"] and len(error["message"]) < 2000


def test_invalid_json_and_digest_strings(api: TestClient) -> None:
    r = api.put(
        REG + "/exportPipelines/badjson?api-version=2025-06-01-preview",
        headers={"Authorization": "Bearer t"},
        content=b"{not json",
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "InvalidRequestContent"
    assert Digest.parse("sha256:" + "0" * 64)
