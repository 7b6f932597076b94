"""Scale-out on a real PostgreSQL (issue 11): API replicas (`airlock serve --no-worker`) and
`airlock worker` processes sharing one database and its job queue.

- 100 concurrent runs, PUT through 2 replicas and executed by 4 workers, all Succeeded, each
  executed exactly once, every archive verified against its catalogDigest;
- a worker killed with SIGKILL mid-run: another worker resumes the run within the documented
  bound and it succeeds;
- the processes of a deployment refuse a database that is not migrated, and a vault key that is
  not the deployment's, in one line each.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from airlock.pipelines.queue import conninfo
from airlock.storage.location import open_blob, parse_blob_uri
from airlock.testing.console import Console
from airlock.testing.deployment import API, Deployment, export_run, export_setup, registry_path
from airlock.testing.images import push_oci_image
from airlock.testing.polling import wait_until
from airlock.testing.postgres import PostgresServer
from airlock.testing.processes import free_port, refusing_port
from airlock.testing.registry_server import RegistryServer
from airlock.transfer.inspection import inspect_archive

RG = "scalerg"
REG = registry_path(RG, "scalereg")


@pytest.fixture
def deployment(postgres: PostgresServer, tmp_path: Path) -> Iterator[Deployment]:
    made = Deployment(tmp_path, postgres.new_database(f"scale_{uuid.uuid4().hex[:10]}"))
    yield made
    made.stop()


def _jobs_by_run(database_url: str) -> dict[str, list[str]]:
    with psycopg.connect(conninfo(database_url)) as conn:
        rows = conn.execute("SELECT args->>'run_id', status FROM procrastinate_jobs ORDER BY id").fetchall()
    jobs: dict[str, list[str]] = {}
    for run_id, status in rows:
        jobs.setdefault(run_id, []).append(status)
    return jobs


def test_100_runs_through_2_replicas_and_4_workers_all_succeed_exactly_once(
    deployment: Deployment, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with RegistryServer.start(tmp_path / "reg", name="scale-source") as registry:
        images = [
            push_oci_image(registry.url, "scale/app", f"v{i}", layers=1, layer_size=2048, seed=300 + i)
            for i in range(5)
        ]
        first = deployment.replica()
        token = (first.home / "api-token").read_text().strip()
        second = deployment.replica(token)
        for _ in range(4):
            deployment.worker(concurrency=2)
        pipeline_id = export_setup(first, REG, registry.url, out)
        replicas = [first, second]

        def put(i: int) -> int:
            server = replicas[i % 2]
            image = images[i % len(images)]
            path = REG + f"/pipelineRuns/scalerun{i:03d}" + API
            return server.http.put(path, json=export_run(pipeline_id, image.reference, f"run{i:03d}.tar")).status_code

        with ThreadPoolExecutor(16) as pool:
            assert sorted(set(pool.map(put, range(100)))) == [201]

        def states() -> dict[str, str]:
            runs = second.http.get(REG + "/pipelineRuns" + API).json()
            return {run["name"]: run["properties"]["provisioningState"] for run in runs["value"]}

        wait_until(
            lambda: len(states()) == 100 and all(s in ("Succeeded", "Failed", "Canceled") for s in states().values()),
            timeout=300,
            interval=1.0,
            what="100 runs to finish",
        )
        final = states()
        assert sorted(set(final.values())) == ["Succeeded"], {k: v for k, v in final.items() if v != "Succeeded"}
        # Exactly once: one job per run, succeeded, none retried or failed.
        jobs = _jobs_by_run(deployment.env["AIRLOCK_DATABASE_URL"])
        assert len(jobs) == 100 and all(statuses == ["succeeded"] for statuses in jobs.values()), jobs
        # Every archive verifies against the catalogDigest its run reports, and holds its image.
        for i in range(100):
            run = first.get(REG + f"/pipelineRuns/scalerun{i:03d}")
            archive = inspect_archive(open_blob(parse_blob_uri((out / f"run{i:03d}.tar").as_uri())), verify=True)
            assert archive["verified"] and archive["catalogDigest"] == run["properties"]["response"]["catalogDigest"]
            assert [a["digest"] for a in archive["artifacts"]] == [images[i % len(images)].digest]


def test_a_worker_killed_mid_run_has_its_run_resumed_by_another_worker(deployment: Deployment, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with RegistryServer.start(tmp_path / "reg", name="kill-source") as registry:
        image = push_oci_image(registry.url, "kill/app", "1", layers=2, layer_size=512 * 1024, seed=77)
        api = deployment.replica()
        pipeline_id = export_setup(api, REG, registry.url, out)
        doomed = deployment.worker(concurrency=1)
        assert registry.pid is not None
        os.kill(registry.pid, signal.SIGSTOP)  # the run hangs mid-way in the doomed worker
        try:
            api.put(REG + "/pipelineRuns/killrun1", export_run(pipeline_id, image.reference, "kill.tar"))
            url = deployment.env["AIRLOCK_DATABASE_URL"]
            wait_until(
                lambda: _jobs_by_run(url).get(_run_id("killrun1")) == ["doing"], timeout=60, what="the run to start"
            )
            doomed.send_signal(signal.SIGKILL)
            doomed.wait(10)
            deployment.worker(concurrency=1)  # the survivor
        finally:
            os.kill(registry.pid, signal.SIGCONT)

        def state() -> str:
            found: str = api.get(REG + "/pipelineRuns/killrun1")["properties"]["provisioningState"]
            return found

        wait_until(
            lambda: state() in ("Succeeded", "Failed"), timeout=deployment.stalled_after * 3 + 60, what="the run to end"
        )
        run = api.get(REG + "/pipelineRuns/killrun1")
        assert run["properties"]["provisioningState"] == "Succeeded", run["properties"]["response"]
        archive = inspect_archive(open_blob(parse_blob_uri((out / "kill.tar").as_uri())), verify=True)
        assert archive["catalogDigest"] == run["properties"]["response"]["catalogDigest"]
        assert _jobs_by_run(url)[_run_id("killrun1")][-1] == "succeeded"


def _run_id(name: str) -> str:
    return (REG + f"/pipelineRuns/{name}").lower()


def test_processes_refuse_an_unmigrated_database_and_a_foreign_vault_key(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    url = postgres.new_database(f"refuse_{uuid.uuid4().hex[:10]}")
    env = {"AIRLOCK_DATABASE_URL": url, "AIRLOCK_VAULT_KEY_FILE": str(tmp_path / "vault.key")}
    for name in "abc":
        (tmp_path / name).mkdir()
    cli = Console(home=tmp_path / "a", env=env)
    message = cli("worker").only_error(1)
    assert "run `airlock db upgrade`" in message and "schema revision none" in message, message
    assert "airlock db upgrade" in cli("serve", "--no-worker", "--port", "0").only_error(1)
    cli.ok("db", "upgrade")
    cli.ok("keyvault", "create", "-g", RG, "-n", "scalekv")  # the first process records its key
    other = Console(home=tmp_path / "b", env={**env, "AIRLOCK_VAULT_KEY_FILE": str(tmp_path / "other.key")})
    message = other("keyvault", "list", "-g", RG).only_error(1)
    assert "is not this deployment's" in message and "AIRLOCK_VAULT_KEY_FILE" in message, message
    with refusing_port() as port:
        gone = f"postgresql+psycopg://airlock:hunter2@127.0.0.1:{port}/airlock"  # nothing listens there
        unreachable = Console(home=tmp_path / "c", env={**env, "AIRLOCK_DATABASE_URL": gone})
        for command in (("worker",), ("serve", "--no-worker", "--port", "0")):
            message = unreachable(*command).only_error(1)
            assert message.startswith("cannot reach the database postgresql+psycopg://airlock:***@127.0.0.1:"), message
            assert "hunter2" not in message
    sqlite = Console(home=tmp_path / "c")
    assert "takes its runs from a job queue on PostgreSQL" in sqlite("worker").only_error(2)
    assert "without a worker nothing would execute runs" in sqlite("serve", "--no-worker").only_error(2)


def _metric(url: str, name: str) -> float | None:
    try:
        text = httpx.get(url, timeout=5).text
    except httpx.HTTPError:
        return None
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return float(sample.value)
    return None


def test_queue_depth_shows_on_the_replicas_and_the_workers_metrics(deployment: Deployment, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with RegistryServer.start(tmp_path / "reg", name="metrics-source") as registry:
        image = push_oci_image(registry.url, "metrics/app", "1", layers=1, layer_size=2048, seed=63)
        api = deployment.replica()
        pipeline_id = export_setup(api, REG, registry.url, out)
        for i in range(2):  # no worker yet: both wait in the queue
            api.put(REG + f"/pipelineRuns/queuedrun{i}", export_run(pipeline_id, image.reference, f"q{i}.tar"))
        assert _metric(api.url + "/metrics", "airlock_run_queue_depth") == 2
        oldest = _metric(api.url + "/metrics", "airlock_run_queue_oldest_age_seconds")
        assert oldest is not None and oldest >= 0
        port = free_port()
        deployment.worker(1, "--metrics-port", str(port))
        scraped = f"http://127.0.0.1:{port}/metrics"
        wait_until(lambda: _metric(scraped, "airlock_run_queue_depth") == 0, timeout=60, what="the queue to drain")

        def states() -> list[str]:
            return sorted(r["properties"]["provisioningState"] for r in api.get(REG + "/pipelineRuns")["value"])

        wait_until(lambda: states() == ["Succeeded", "Succeeded"], timeout=60, what="both runs to succeed")
        assert _metric(scraped, "airlock_run_queue_depth") == 0
