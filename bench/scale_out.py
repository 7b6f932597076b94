"""Scale-out throughput: runs per minute of small export and import runs with 1, 2 and 4
``airlock worker`` processes behind one ``airlock serve --no-worker`` replica, and the source
trigger's lag under load, all on a private PostgreSQL.

``.venv/bin/python -m bench.scale_out [--runs 60]``; a few minutes. Prints a Markdown table (the
README's "Scale-out" section quotes it) and writes it to ``bench/results/scale_out.md``.

Each configuration gets a fresh database. A run exports one small image (one 4 KiB layer) to a
``file:`` container, or imports one such archive; so the figures are the control plane's and the
queue's cost per run, not a transfer's. The workers are started, and registered with the queue,
before the runs are PUT (their start-up, seconds of imports each, would otherwise be counted):
runs per minute is from the first run's start to the last one's finish. Beside it, the CPU each part spent per run (from
``/proc/<pid>/stat``: the workers, the API replica, every PostgreSQL process), which says where
the time goes when more workers do not help. The trigger lag is the time from a blob's last
modification (``response.trigger.sourceTrigger.timestamp``) to its run's ``startTime``, for
``--blobs`` archives dropped at once into a watched container as the import runs start to drain
(the trigger's scans and its runs compete with them), with ``AIRLOCK_TRIGGER_INTERVAL=1``.
``--profile DIR`` records one worker of the largest configuration with py-spy for 5 s of the
export drain (raw collapsed stacks; py-spy is not a dependency: ``.venv/bin/pip install py-spy``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

from airlock.pipelines.queue import conninfo
from airlock.testing.airlock_server import AirlockServer
from airlock.testing.images import push_oci_image
from airlock.testing.postgres import PostgresServer
from airlock.testing.registry_server import RegistryServer

SUB = "00000000-0000-0000-0000-000000000000"
REG = f"/subscriptions/{SUB}/resourceGroups/benchrg/providers/Microsoft.ContainerRegistry/registries/"
API = "?api-version=2025-03-01-preview"
AIRLOCK = str(Path(sys.executable).with_name("airlock"))
RESULTS = Path(__file__).with_name("results")


def _when(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


class Deployment:
    def __init__(self, root: Path, url: str, workers: int) -> None:
        self.root = root
        self.env = {
            **os.environ,
            "AIRLOCK_DATABASE_URL": url,
            "AIRLOCK_VAULT_KEY_FILE": str(root / "vault.key"),
            "AIRLOCK_TRIGGER_INTERVAL": "1",
        }
        subprocess.run([AIRLOCK, "db", "upgrade", "-o", "none"], env=self.env, check=True, cwd=root)
        (root / "api").mkdir()
        self.api = AirlockServer(root / "api" / ".airlock", env=self.env, args=["--no-worker"]).start()
        self.count = workers
        self.workers: list[subprocess.Popen[bytes]] = []
        self._started = 0

    def start_workers(self) -> None:
        for _ in range(self.count):
            home = self.root / f"worker{self._started}"
            home.mkdir()
            with (self.root / f"worker{self._started}.log").open("ab") as log:
                self.workers.append(
                    subprocess.Popen(
                        [AIRLOCK, "worker", "--concurrency", "1"],
                        env={**self.env, "AIRLOCK_HOME": str(home)},
                        stdout=log,
                        stderr=log,
                    )
                )
            self._started += 1

    def stop_workers(self) -> None:
        for proc in self.workers:
            proc.terminate()
        for proc in self.workers:
            proc.wait(60)
        self.workers = []

    def stop(self) -> None:
        self.stop_workers()
        self.api.stop()

    def runs(
        self,
        registry: str,
        names: list[str],
        body: Any,
        *,
        on_start: Callable[[], None] | None = None,
        keep: bool = False,
        timeout: float = 900,
    ) -> tuple[list[Any], dict[str, float]]:
        """With the workers started and registered, PUT the runs from 8 threads (then call
        ``on_start``) and wait until all ended; their documents and the CPU seconds per run of each
        part meanwhile. ``keep``: leave the workers running."""

        def put(name: str) -> None:
            r = self.api.http.put(REG + f"{registry}/pipelineRuns/{name}" + API, json=body(name))
            assert r.status_code == 201, r.text

        if not self.workers:
            self.start_workers()
        self.wait_registered()
        before = _cpu(self)
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(put, names))
        if on_start is not None:
            on_start()
        docs = self.wait(registry, names, timeout)
        after = _cpu(self)
        if not keep:
            self.stop_workers()
        return docs, {part: (after.get(part, 0.0) - before.get(part, 0.0)) / len(names) for part in after}

    def wait_registered(self, timeout: float = 120) -> None:
        """Until every worker has started and registered with the queue (its start-up, seconds of
        imports, must not count against the runs)."""
        deadline = time.monotonic() + timeout
        url = conninfo(self.env["AIRLOCK_DATABASE_URL"])
        while True:
            with psycopg.connect(url, autocommit=True) as conn:
                row = conn.execute("SELECT count(*) FROM procrastinate_workers").fetchone()
            if row is not None and row[0] >= len(self.workers):
                return
            assert time.monotonic() < deadline, "the workers did not register in time"
            time.sleep(0.2)

    def listed(self, registry: str) -> list[dict[str, Any]]:
        """Every run of ``registry``, following ``nextLink`` (pages of 100)."""
        items: list[dict[str, Any]] = []
        url: str | None = REG + f"{registry}/pipelineRuns" + API
        while url:
            page = self.api.http.get(url).json()
            items += page["value"]
            url = page.get("nextLink")
        return items

    def wait(self, registry: str, names: list[str], timeout: float = 900) -> list[dict[str, Any]]:
        wanted = set(names)
        deadline = time.monotonic() + timeout
        while True:  # one list call a second: the poll must not be what loads the replica
            listed = self.listed(registry)
            docs = [d for d in listed if d["name"] in wanted]
            states = [d["properties"]["provisioningState"] for d in docs]
            if len(docs) == len(wanted) and all(s in ("Succeeded", "Failed", "Canceled") for s in states):
                failed = [d["properties"] for d in docs if d["properties"]["provisioningState"] != "Succeeded"]
                assert not failed, failed[:3]
                return docs
            assert time.monotonic() < deadline, f"{states.count('Succeeded')} of {len(names)} runs ended in time"
            time.sleep(1.0)


def _ticks(pid: int) -> float:
    """CPU seconds (user + system) of process ``pid`` so far; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu(deployment: Deployment) -> dict[str, float]:
    """CPU seconds so far of the workers, the API replica and every PostgreSQL process."""
    postgres = 0.0
    for stat in Path("/proc").glob("[0-9]*/comm"):
        try:
            if stat.read_text().strip().startswith("postgres"):
                postgres += _ticks(int(stat.parent.name))
        except OSError:
            continue
    api = deployment.api.proc.pid if deployment.api.proc else 0
    return {
        "workers": sum(_ticks(w.pid) for w in deployment.workers),
        "api": _ticks(api),
        "postgres": postgres,
    }


def _rate(docs: list[dict[str, Any]]) -> float:
    """Runs per minute, from the first run's start to the last one's finish."""
    first = min(_when(d["properties"]["response"]["startTime"]) for d in docs)
    last = max(_when(d["properties"]["response"]["finishTime"]) for d in docs)
    return len(docs) / max(last - first, 1e-6) * 60


def measure(server: PostgresServer, registry: RegistryServer, images: list[Any], workers: int, args: Any) -> str:
    root = Path(tempfile.mkdtemp(prefix=f"bench-scale-{workers}-"))
    try:
        deployment = Deployment(root, server.new_database(f"bench_scale_{workers}_{os.getpid()}"), workers)
        try:
            out, inbox = root / "out", root / "inbox"
            out.mkdir()
            inbox.mkdir()
            api = deployment.api
            api.put(REG + "srcreg", {"properties": {"loginServer": registry.url}})
            api.put(REG + "dstreg", {"properties": {"loginServer": registry.url}})
            export = api.put(
                REG + "srcreg/exportPipelines/benchexport", {"properties": {"target": {"uri": out.as_uri()}}}
            )
            imports = api.put(
                REG + "dstreg/importPipelines/benchimport",
                {
                    "properties": {
                        "source": {"uri": out.as_uri()},
                        "options": ["OverwriteTags"],
                        "trigger": {"sourceTrigger": {"status": "Disabled"}},
                    }
                },
            )
            names = [f"exportrun{i:04d}" for i in range(args.runs)]

            def export_body(name: str) -> dict[str, Any]:
                artifact = images[int(name[-4:]) % len(images)].reference
                return {
                    "properties": {
                        "request": {
                            "pipelineResourceId": export["id"],
                            "artifacts": [artifact],
                            "target": {"name": f"{name}.tar"},
                        }
                    }
                }

            profiling: list[subprocess.Popen[bytes]] = []

            def profile() -> None:  # py-spy on one worker for 5 s of the export drain
                if args.profile and workers == max(args.workers):
                    out_file = Path(args.profile) / f"worker-{workers}.txt"
                    out_file.parent.mkdir(parents=True, exist_ok=True)
                    spy = [str(Path(sys.executable).with_name("py-spy")), "record", "--pid"]
                    spy += [str(deployment.workers[0].pid), "--duration", "5", "--format", "raw"]
                    spy += ["--nonblocking", "--threads", "-o", str(out_file)]
                    profiling.append(subprocess.Popen(spy, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

            exported, export_cpu = deployment.runs("srcreg", names, export_body, on_start=profile, keep=True)
            for spy in profiling:
                spy.wait(60)

            def import_body(name: str) -> dict[str, Any]:
                blob = f"exportrun{name[-4:]}.tar"
                return {"properties": {"request": {"pipelineResourceId": imports["id"], "source": {"name": blob}}}}

            # Trigger lag under load: --blobs archives land in a watched inbox as the import runs drain.
            watched = api.put(
                REG + "dstreg/importPipelines/benchwatch",
                {"properties": {"source": {"uri": inbox.as_uri()}, "options": ["OverwriteTags"]}},
            )

            def land() -> None:
                for i in range(args.blobs):
                    shutil.copy(out / f"exportrun{i % args.runs:04d}.tar", inbox / f"landed{i:03d}.tar")

            imported, import_cpu = deployment.runs(
                "dstreg", [f"importrun{i:04d}" for i in range(args.runs)], import_body, on_start=land, keep=True
            )
            deadline = time.monotonic() + 600
            while True:
                runs = deployment.listed("dstreg")
                mine = [r for r in runs if r["properties"]["request"].get("pipelineResourceId") == watched["id"]]
                if len(mine) == args.blobs and all(r["properties"]["provisioningState"] == "Succeeded" for r in mine):
                    break
                assert time.monotonic() < deadline, f"{len(mine)} of {args.blobs} triggered runs in time"
                time.sleep(0.5)
            lags = sorted(
                _when(r["properties"]["response"]["startTime"])
                - _when(r["properties"]["response"]["trigger"]["sourceTrigger"]["timestamp"])
                for r in mine
            )
            cpu = "; ".join(
                f"{kind} " + " / ".join(f"{1000 * spent[part]:.0f}" for part in ("workers", "api", "postgres"))
                for kind, spent in (("export", export_cpu), ("import", import_cpu))
            )
            return (
                f"| {workers} | {_rate(exported):.0f} | {_rate(imported):.0f} | "
                f"{statistics.median(lags):.1f} / {lags[-1]:.1f} | {cpu} |"
            )
        finally:
            deployment.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=60, help="export runs, then as many import runs (default 60)")
    parser.add_argument("--blobs", type=int, default=20, help="archives dropped for the trigger-lag figure")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--profile", metavar="DIR", help="py-spy one worker of the largest configuration into DIR")
    args = parser.parse_args()
    rows = [
        f"{args.runs} export and {args.runs} import runs of one small image; {os.cpu_count()} cores; "
        "one `serve --no-worker`, N `airlock worker --concurrency 1`, PostgreSQL on the same machine",
        "",
        "| workers | export runs/min | import runs/min | trigger lag p50 / max (s) "
        "| CPU ms per run: workers / API / PostgreSQL |",
        "|---|---|---|---|---|",
    ]
    work = Path(tempfile.mkdtemp(prefix="bench-scale-reg-"))
    try:
        with PostgresServer.start() as server, RegistryServer.start(work, name="bench-scale") as registry:
            images = [
                push_oci_image(registry.url, "bench/app", f"v{i}", layers=1, layer_size=4096, seed=900 + i)
                for i in range(4)
            ]
            for workers in args.workers:
                rows.append(measure(server, registry, images, workers, args))
                sys.stdout.write(rows[-1] + "\n")
                sys.stdout.flush()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    table = "\n".join(rows) + "\n"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "scale_out.md").write_text(table)
    sys.stdout.write(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
