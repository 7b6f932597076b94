"""Scale-out under faults, on a real PostgreSQL (issue 11): the source trigger imports each blob
version exactly once with 2 replicas and 4 workers watching one container; a PostgreSQL restart
mid-run leaves no run Running; a replica killed mid-request leaves the client a consistent state
on the other replica."""

from __future__ import annotations

import os
import shutil
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from airlock.pipelines.queue import conninfo
from airlock.testing.deployment import API, Deployment, export_run, export_setup, registry_path
from airlock.testing.images import push_oci_image
from airlock.testing.polling import wait_until
from airlock.testing.postgres import PostgresServer
from airlock.testing.registry_server import RegistryServer

ENDED = ("Succeeded", "Failed", "Canceled")
REG = registry_path("faultrg", "faultreg")


@pytest.fixture
def deployment(postgres: PostgresServer, tmp_path: Path) -> Iterator[Deployment]:
    made = Deployment(tmp_path, postgres.new_database(f"fault_{uuid.uuid4().hex[:10]}"))
    yield made
    made.stop()


def _runs(server: Any) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = server.get(REG + "/pipelineRuns")["value"]
    return runs


def test_the_trigger_imports_each_blob_once_with_2_replicas_and_4_workers_watching(
    deployment: Deployment, tmp_path: Path
) -> None:
    out, inbox = tmp_path / "out", tmp_path / "inbox"
    out.mkdir()
    inbox.mkdir()
    with RegistryServer.start(tmp_path / "reg", name="trigger-source") as registry:
        images = [
            push_oci_image(registry.url, "trig/app", f"v{i}", layers=1, layer_size=2048, seed=500 + i) for i in range(3)
        ]
        first = deployment.replica(worker=True)  # `airlock serve` on PostgreSQL: API, worker and trigger
        second = deployment.replica((first.home / "api-token").read_text().strip(), worker=True)
        for _ in range(4):
            deployment.worker(concurrency=1)
        pipeline_id = export_setup(first, REG, registry.url, out)
        for i, image in enumerate(images):
            first.http.put(
                REG + f"/pipelineRuns/makeblob{i}" + API, json=export_run(pipeline_id, image.reference, f"b{i}.tar")
            )
        wait_until(
            lambda: len([r for r in _runs(first) if r["properties"]["provisioningState"] == "Succeeded"]) == 3,
            timeout=120,
            what="the archives",
        )
        first.put(
            REG + "/importPipelines/watchinbox",
            {"properties": {"source": {"uri": inbox.as_uri()}, "options": ["OverwriteTags"]}},
        )
        for i in range(3):
            for copy in range(3):  # nine blobs, from three archives
                shutil.copy(out / f"b{i}.tar", inbox / f"landed{i}{copy}.tar")

        def triggered() -> list[dict[str, Any]]:
            return [r for r in _runs(second) if "_" in r["name"]]

        wait_until(
            lambda: len(triggered()) >= 9 and all(r["properties"]["provisioningState"] in ENDED for r in triggered()),
            timeout=180,
            interval=0.5,
            what="nine triggered imports",
        )
        runs = triggered()
        assert sorted(r["properties"]["request"]["source"]["name"] for r in runs) == sorted(
            p.name for p in inbox.iterdir()
        )
        assert all(r["properties"]["provisioningState"] == "Succeeded" for r in runs), [r["properties"] for r in runs]
        with psycopg.connect(conninfo(deployment.env["AIRLOCK_DATABASE_URL"])) as conn:
            claims = conn.execute("SELECT blob, count(*) FROM trigger_imports GROUP BY blob").fetchall()
        assert sorted(claims) == sorted((p.name, 1) for p in inbox.iterdir())


def test_a_postgresql_restart_mid_run_leaves_every_run_ended_and_the_api_answering(tmp_path: Path) -> None:
    with PostgresServer.start() as private:  # of its own: this test restarts it
        deployment = Deployment(tmp_path, private.new_database("restart"))
        try:
            out = tmp_path / "out"
            out.mkdir()
            with RegistryServer.start(tmp_path / "reg", name="restart-source") as registry:
                image = push_oci_image(registry.url, "restart/app", "1", layers=2, layer_size=256 * 1024, seed=61)
                api = deployment.replica()
                pipeline_id = export_setup(api, REG, registry.url, out)
                deployment.worker(concurrency=2)
                assert registry.pid is not None
                os.kill(registry.pid, signal.SIGSTOP)  # the runs hang mid-way while PostgreSQL restarts
                try:
                    for i in range(3):
                        api.put(
                            REG + f"/pipelineRuns/restartrun{i}", export_run(pipeline_id, image.reference, f"r{i}.tar")
                        )
                    url = deployment.env["AIRLOCK_DATABASE_URL"]
                    wait_until(lambda: _doing(url) >= 1, timeout=60, what="a run to start")
                    private.restart()
                finally:
                    os.kill(registry.pid, signal.SIGCONT)

                def ended() -> bool:
                    try:
                        return (
                            all(r["properties"]["provisioningState"] in ENDED for r in _runs(api))
                            and len(_runs(api)) == 3
                        )
                    except (AssertionError, httpx.HTTPError):
                        return False  # the replica's first queries after the restart may fail: it reconnects

                wait_until(ended, timeout=180, interval=1.0, what="every run to end after the restart")
                for run in _runs(api):
                    state = run["properties"]["provisioningState"]
                    message = run["properties"]["response"].get("pipelineRunErrorMessage")
                    assert state == "Succeeded" or (state == "Failed" and message), run["properties"]
                assert api.http.get("/healthz").status_code == 200
        finally:
            deployment.stop()


def _doing(url: str) -> int:
    with psycopg.connect(conninfo(url)) as conn:
        row = conn.execute("SELECT count(*) FROM procrastinate_jobs WHERE status = 'doing'").fetchone()
    return int(row[0]) if row else 0


def test_a_replica_killed_mid_request_leaves_a_consistent_state_and_a_new_tag_reruns_once(
    deployment: Deployment, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with RegistryServer.start(tmp_path / "reg", name="replica-source") as registry:
        image = push_oci_image(registry.url, "replica/app", "1", layers=1, layer_size=4096, seed=62)
        doomed = deployment.replica()
        survivor = deployment.replica((doomed.home / "api-token").read_text().strip())
        deployment.worker(concurrency=1)
        pipeline_id = export_setup(survivor, REG, registry.url, out)
        body = export_run(pipeline_id, image.reference, "replica.tar")
        assert doomed.proc is not None
        doomed.proc.send_signal(signal.SIGSTOP)  # the request reaches a replica that never answers
        with pytest.raises(httpx.TimeoutException):
            doomed.http.put(REG + "/pipelineRuns/replicarun1" + API, json=body, timeout=2)
        doomed.kill()
        retried = survivor.http.put(REG + "/pipelineRuns/replicarun1" + API, json=body)  # the client's retry
        assert retried.status_code in (200, 201), retried.text
        wait_until(
            lambda: survivor.get(REG + "/pipelineRuns/replicarun1")["properties"]["provisioningState"] in ENDED,
            timeout=120,
            what="the run to end",
        )
        run = survivor.get(REG + "/pipelineRuns/replicarun1")
        assert run["properties"]["provisioningState"] == "Succeeded"
        assert [r["name"] for r in _runs(survivor)] == ["replicarun1"]
        again = survivor.http.put(REG + "/pipelineRuns/replicarun1" + API, json=body)  # once more: a no-op
        assert again.status_code == 200 and again.json()["properties"]["response"] == run["properties"]["response"]
        # A new forceUpdateTag runs it once more, and once only.
        rerun = {"properties": {**body["properties"], "forceUpdateTag": "second"}}
        assert survivor.http.put(REG + "/pipelineRuns/replicarun1" + API, json=rerun).status_code == 201
        assert survivor.http.put(REG + "/pipelineRuns/replicarun1" + API, json=rerun).status_code in (200, 409)

        def jobs() -> list[str]:
            with psycopg.connect(conninfo(deployment.env["AIRLOCK_DATABASE_URL"])) as conn:
                rows = conn.execute("SELECT status FROM procrastinate_jobs ORDER BY id").fetchall()
            return [str(r[0]) for r in rows]

        wait_until(lambda: jobs() == ["succeeded", "succeeded"], timeout=120, what="exactly one more execution")
        assert survivor.get(REG + "/pipelineRuns/replicarun1")["properties"]["forceUpdateTag"] == "second"


def test_cancel_through_a_replica_stops_the_run_in_a_worker_and_frees_its_slot(
    deployment: Deployment, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with RegistryServer.start(tmp_path / "reg", name="cancel-source") as registry:
        image = push_oci_image(registry.url, "qcancel/app", "1", layers=2, layer_size=256 * 1024, seed=64)
        api = deployment.replica()
        pipeline_id = export_setup(api, REG, registry.url, out)
        deployment.worker(concurrency=1)  # one slot: the next run needs the canceled one's
        assert registry.pid is not None
        os.kill(registry.pid, signal.SIGSTOP)  # the run starts in the worker, then hangs
        try:
            api.put(REG + "/pipelineRuns/qcancelrun1", export_run(pipeline_id, image.reference, "c.tar"))
            wait_until(lambda: _doing(deployment.env["AIRLOCK_DATABASE_URL"]) == 1, timeout=60, what="the run to start")
            asked = api.http.post(REG + "/pipelineRuns/qcancelrun1/cancel" + API)
            assert asked.status_code == 200 and asked.json()["properties"]["response"]["cancelRequested"] is True
        finally:
            os.kill(registry.pid, signal.SIGCONT)

        def state(name: str) -> str:
            found: str = api.get(REG + f"/pipelineRuns/{name}")["properties"]["provisioningState"]
            return found

        wait_until(lambda: state("qcancelrun1") == "Canceled", timeout=60, what="the run to stop")
        assert list(out.iterdir()) == []  # no blob, not even a partial one
        api.put(REG + "/pipelineRuns/qcancelrun2", export_run(pipeline_id, image.reference, "d.tar"))
        wait_until(lambda: state("qcancelrun2") == "Succeeded", timeout=60, what="the next run")
        assert [p.name for p in out.iterdir()] == ["d.tar"]
