"""The job queue's own cost (procrastinate on a private PostgreSQL): defer latency, defer→start latency
and jobs per second, with no-op runs, so the numbers are the queue's and not a transfer's.

``.venv/bin/python -m bench.queue_latency [--jobs 200]``; about a minute. Prints a Markdown table
(ARCHITECTURE.md, "Job queue: procrastinate", quotes it). Scenarios, each on a fresh database:

- one at a time: submit a run, wait until it finished, again (the defer→start path of an idle
  worker: PostgreSQL's NOTIFY wakes it);
- burst: ``--jobs`` submits back to back from one thread while the workers drain the queue.

Workers: one process with 1 slot, one process with 4 slots, and 4 worker processes with 1 slot
each (as ``airlock worker`` will run). defer→start is read from procrastinate's own events
(``deferred`` and ``started``, both stamped by the database's clock).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from sqlalchemy import create_engine

from airlock.db import migrate
from airlock.pipelines.queue import QueueRunExecutor, conninfo
from airlock.testing.postgres import PostgresServer

_WORKER = """
import sys, time
from airlock.pipelines.queue import QueueRunExecutor
QueueRunExecutor(sys.argv[1], lambda run_id: None, worker=True, concurrency=int(sys.argv[2]))
time.sleep(3600)
"""


def _database(server: PostgresServer, name: str) -> str:
    url = server.new_database(name)
    engine = create_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    return url


@contextmanager
def _workers(url: str, processes: int, slots: int) -> Iterator[None]:
    """``processes`` worker processes of ``slots`` slots each, registered before this yields."""
    children = [subprocess.Popen([sys.executable, "-c", _WORKER, url, str(slots)]) for _ in range(processes)]
    try:
        deadline = time.monotonic() + 60
        with psycopg.connect(conninfo(url), autocommit=True) as conn:
            while conn.execute("SELECT count(*) FROM procrastinate_workers").fetchone() != (processes,):
                if time.monotonic() > deadline:
                    raise RuntimeError("the worker processes did not register within 60 s")
                time.sleep(0.05)
        yield
    finally:
        for child in children:
            child.send_signal(signal.SIGTERM)
        for child in children:
            child.wait(30)


def _start_latencies(url: str) -> list[float]:
    """Seconds from each job's ``deferred`` event to its ``started`` event."""
    with psycopg.connect(conninfo(url)) as conn:
        rows = conn.execute(
            "SELECT extract(epoch FROM s.at - d.at) FROM procrastinate_events d "
            "JOIN procrastinate_events s ON s.job_id = d.job_id AND s.type = 'started' "
            "WHERE d.type = 'deferred'"
        ).fetchall()
    return [float(r[0]) for r in rows]


def _ms(values: list[float], q: float) -> str:
    ordered = sorted(values)
    return f"{1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]:.1f}"


def _scenario(server: PostgresServer, label: str, processes: int, slots: int, jobs: int, n: int) -> list[str]:
    rows = []
    for mode in ("one at a time", "burst"):
        url = _database(server, f"bench_{n}_{mode.split()[0]}")
        client = QueueRunExecutor(url, lambda run_id: None)
        defers: list[float] = []
        try:
            with _workers(url, processes, slots):
                started = time.monotonic()
                for i in range(jobs):
                    t = time.monotonic()
                    client.submit(f"run-{i}")
                    defers.append(time.monotonic() - t)
                    if mode == "one at a time":
                        client.wait(f"run-{i}", timeout=60)
                for i in range(jobs):
                    client.wait(f"run-{i}", timeout=120)
                elapsed = time.monotonic() - started
        finally:
            client.close()
        starts = _start_latencies(url)
        assert len(starts) == jobs, f"{len(starts)} of {jobs} jobs started"
        rows.append(
            f"| {label} | {mode} | {_ms(defers, 0.5)} / {_ms(defers, 0.95)} | "
            f"{_ms(starts, 0.5)} / {_ms(starts, 0.95)} / {1000 * max(starts):.1f} | {jobs / elapsed:.0f} |"
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    args = parser.parse_args()
    with PostgresServer.start() as server:
        table = [
            f"{args.jobs} no-op runs, {os.cpu_count()} cores, PostgreSQL {_pg_version(server.url)} "
            "(private cluster, fsync off)",
            "",
            "| workers | submits | defer ms p50 / p95 | defer→start ms p50 / p95 / max | runs/s |",
            "|---|---|---|---|---|",
        ]
        for n, (label, processes, slots) in enumerate(
            [("1 process x 1 slot", 1, 1), ("1 process x 4 slots", 1, 4), ("4 processes x 1 slot", 4, 1)]
        ):
            table += _scenario(server, label, processes, slots, args.jobs, n)
    sys.stdout.write("\n".join(table) + "\n")
    return 0


def _pg_version(url: str) -> str:
    with psycopg.connect(conninfo(url)) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]).split()[0] if row else "?"


if __name__ == "__main__":
    sys.exit(main())
