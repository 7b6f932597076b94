"""The airlock server killed mid-run, concurrent transfers, and the API under load — a real `airlock serve`."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from airlock.oci.reference import ArtifactReference, RegistryURL
from airlock.registry.client import RegistryClient
from airlock.storage.location import open_blob, parse_blob_uri
from airlock.testing import content
from airlock.testing.airlock_server import AirlockServer
from airlock.testing.content import PushedArtifact
from airlock.testing.images import push_oci_image
from airlock.testing.polling import wait_until
from airlock.testing.registry_server import RegistryServer
from airlock.transfer.export import export_artifacts
from airlock.transfer.importer import import_archive

EXE = str(Path(sys.executable).parent / "airlock")
API = "?api-version=2025-06-01-preview"


SUB = "00000000-0000-0000-0000-000000000000"
REG = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/"


@pytest.fixture(scope="module")
def images(source_registry: RegistryServer) -> list[PushedArtifact]:
    return [
        push_oci_image(source_registry.url, f"load/app{i}", "1", layers=2, layer_size=256 * 1024, seed=40 + i)
        for i in range(5)
    ]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[AirlockServer]:
    (tmp_path / "home").mkdir()
    s = AirlockServer(tmp_path / "home").start()
    yield s
    s.stop()


def _setup(
    s: AirlockServer, source: RegistryServer, target: RegistryServer, inbox: Path
) -> tuple[dict[str, Any], dict[str, Any]]:
    s.put(REG + "sourcereg", {"properties": {"loginServer": source.url}})
    s.put(REG + "targetreg", {"properties": {"loginServer": target.url}})
    export = s.put(
        REG + "sourcereg/exportPipelines/export1",
        {"properties": {"target": {"uri": inbox.as_uri()}, "options": ["OverwriteBlobs"]}},
    )
    imp = s.put(REG + "targetreg/importPipelines/import1", {"properties": {"source": {"uri": inbox.as_uri()}}})
    return export, imp


def test_server_killed_mid_run_fails_the_run_and_the_trigger_retries_the_import(
    tmp_path: Path, server: AirlockServer, images: list[PushedArtifact]
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    with (
        RegistryServer.start(tmp_path / "src", name="src") as source,
        RegistryServer.start(tmp_path / "dst", name="dst") as target,
    ):
        big = push_oci_image(source.url, "big/app", "1", layers=1, layer_size=8 * 1024 * 1024, seed=49)
        export, _ = _setup(server, source, target, inbox)
        # An export run that hangs mid-transfer (its registry is frozen) when the server is killed.
        assert source.pid is not None
        os.kill(source.pid, signal.SIGSTOP)
        server.put(
            REG + "sourcereg/pipelineRuns/exportrun1",
            {
                "properties": {
                    "request": {
                        "pipelineResourceId": export["id"],
                        "artifacts": [big.reference],
                        "target": {"name": "big.tar"},
                    }
                }
            },
        )
        wait_until(
            lambda: (
                server.get(REG + "sourcereg/pipelineRuns/exportrun1")["properties"]["response"].get("status")
                == "Running"
            ),
            what="the export run running, its registry frozen",
        )
        server.kill()
        os.kill(source.pid, signal.SIGCONT)
        restarted = AirlockServer(server.home).start()
        try:
            run = restarted.get(REG + "sourcereg/pipelineRuns/exportrun1")
            assert run["properties"]["provisioningState"] == "Failed"
            assert "interrupted" in run["properties"]["response"]["pipelineRunErrorMessage"]
            # No half-written blob: at most the hidden staged part an export --resume would continue.
            assert [n for n in os.listdir(inbox) if not n.startswith(".")] == []

            # A triggered import killed mid-run is retried once after the restart: imported once, not skipped.
            path = tmp_path / "seed.tar"
            export_artifacts(
                client=RegistryClient(RegistryURL.parse(source.url), use_auth_files=False),
                artifacts=[ArtifactReference.parse(big.reference)],
                target=open_blob(parse_blob_uri(path.as_uri())),
            )
            assert target.pid is not None
            os.kill(target.pid, signal.SIGSTOP)
            (inbox / "batch.tar").write_bytes(path.read_bytes())
            deadline = time.monotonic() + 30
            while not restarted.get(REG + "targetreg/pipelineRuns")["value"]:
                assert time.monotonic() < deadline
                time.sleep(0.2)
            restarted.kill()
            os.kill(target.pid, signal.SIGCONT)
            third = AirlockServer(server.home).start()
            try:
                deadline = time.monotonic() + 60
                while True:
                    runs = third.get(REG + "targetreg/pipelineRuns")["value"]
                    states = sorted(r["properties"]["provisioningState"] for r in runs)
                    if "Succeeded" in states:
                        break
                    assert time.monotonic() < deadline, states
                    time.sleep(0.3)
                assert states == ["Succeeded"]  # the interrupted run was re-created, under the same name
                assert content.get_manifest(target.url, "big/app", "1")[2] == big.digest
                # Nothing imported twice: a blob landed later is taken by a later poll, and by then
                # batch.tar still has one run (no sleep: the later run shows that polls went on).
                small = push_oci_image(source.url, "small/app", "1", layers=1, layer_size=1024, seed=50)
                export_artifacts(
                    client=RegistryClient(RegistryURL.parse(source.url), use_auth_files=False),
                    artifacts=[ArtifactReference.parse(small.reference)],
                    target=open_blob(parse_blob_uri((inbox / "later.tar").as_uri())),
                )

                def both() -> list[dict[str, Any]] | None:
                    runs: list[dict[str, Any]] = third.get(REG + "targetreg/pipelineRuns")["value"]
                    return runs if len(runs) > 1 else None

                runs = wait_until(both, timeout=60, what="the later blob's triggered run")
                assert sorted(r["properties"]["request"]["source"]["name"] for r in runs) == ["batch.tar", "later.tar"]
            finally:
                third.stop()
        finally:
            if restarted.proc and restarted.proc.poll() is None:
                restarted.stop()


def test_two_imports_of_one_archive_into_one_registry_at_once(
    tmp_path: Path, source_registry: RegistryServer, images: list[PushedArtifact]
) -> None:
    path = tmp_path / "two.tar"
    export_artifacts(
        client=RegistryClient(RegistryURL.parse(source_registry.url), use_auth_files=False),
        artifacts=[ArtifactReference.parse(a.reference) for a in images],
        target=open_blob(parse_blob_uri(path.as_uri())),
    )
    with RegistryServer.start(tmp_path / "dst", name="dst") as target:

        def run() -> list[str]:
            client = RegistryClient(RegistryURL.parse(target.url), use_auth_files=False)
            return import_archive(source=open_blob(parse_blob_uri(path.as_uri())), client=client).imported

        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(lambda _: run(), range(2)))
        assert results[0] and sorted(results[0]) == sorted(results[1])
        for a in images:
            assert content.get_manifest(target.url, a.repository, "1")[2] == a.digest


def test_api_under_50_concurrent_calls_while_5_runs_execute(
    tmp_path: Path,
    server: AirlockServer,
    source_registry: RegistryServer,
    target_registry: RegistryServer,
    images: list[PushedArtifact],
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    export, _ = _setup(server, source_registry, target_registry, inbox)
    # Five runs of one pipeline at once, each its own blob.
    for i, a in enumerate(images):
        server.put(
            REG + f"sourcereg/pipelineRuns/loadrun{i}",
            {
                "properties": {
                    "request": {
                        "pipelineResourceId": export["id"],
                        "artifacts": [a.reference],
                        "target": {"name": f"b{i}.tar"},
                    }
                }
            },
        )
    errors: list[str] = []
    lock = threading.Lock()

    def call(i: int) -> None:
        try:
            if i % 3 == 0:
                r = server.http.get(REG + "sourcereg/pipelineRuns" + API)
            elif i % 3 == 1:
                r = server.http.put(
                    REG + f"sourcereg/exportPipelines/extra{i:03d}" + API,
                    json={"properties": {"target": {"uri": inbox.as_uri()}}},
                )
            else:
                r = server.http.get(REG + f"sourcereg/pipelineRuns/loadrun{i % 5}" + API)
            if r.status_code >= 400:
                with lock:
                    errors.append(f"{r.status_code} {r.text[:200]}")
        except httpx.HTTPError as exc:
            with lock:
                errors.append(repr(exc))

    started = time.monotonic()
    with ThreadPoolExecutor(50) as pool:
        list(pool.map(call, range(50)))
    assert errors == []
    assert time.monotonic() - started < 60
    for i in range(5):
        run = server.wait_run(REG + f"sourcereg/pipelineRuns/loadrun{i}")
        assert run["properties"]["provisioningState"] == "Succeeded", run["properties"]["response"]
    assert sorted(os.listdir(inbox)) == [f"b{i}.tar" for i in range(5)]
    listed = server.get(REG + "sourcereg/exportPipelines")
    assert len(listed["value"]) == 1 + len(range(1, 50, 3))  # nothing lost
