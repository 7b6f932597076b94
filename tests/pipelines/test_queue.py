"""What the procrastinate adapter promises beyond the port (tests/pipelines/test_executor.py holds
the conformance suite): a run queued at most once and never executed twice at once, jobs queued in
the caller's transaction, and a killed worker's run taken again within the documented bound."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine, create_engine, text

from airlock.errors import UsageError
from airlock.pipelines.queue import QUEUE, TASK, QueueRunExecutor, QueueTiming, conninfo, defer_in
from airlock.testing.polling import wait_until

DEADLINE = 30.0
# Fast clocks for tests: a killed worker's run is taken again within 0.3 + 1.5 + 0.3 + 0.3 s.
FAST = QueueTiming(heartbeat=0.3, stalled_after=1.5, recover_every=0.3, poll=0.3)


@pytest.fixture
def database(queue_database: Callable[[], str]) -> str:
    return queue_database()


@pytest.fixture
def executors() -> Iterator[Callable[..., QueueRunExecutor]]:
    """``QueueRunExecutor(...)``, each closed (waiting) after the test."""
    made: list[QueueRunExecutor] = []

    def make(*args: object, **kwargs: object) -> QueueRunExecutor:
        made.append(QueueRunExecutor(*args, **kwargs))  # type: ignore[arg-type]
        return made[-1]

    yield make
    for executor in made:
        executor.close(wait=True)


@pytest.fixture
def engine(database: str) -> Iterator[Engine]:
    made = create_engine(database)
    yield made
    made.dispose()


def _jobs(database: str) -> list[tuple[str, str, int]]:
    """(run id, status, attempts) of every run job, oldest first."""
    with psycopg.connect(conninfo(database)) as conn:
        rows = conn.execute(
            "SELECT args->>'run_id', status::text, attempts FROM procrastinate_jobs "
            "WHERE task_name = %s AND queue_name = %s ORDER BY id",
            (TASK, QUEUE),
        ).fetchall()
    return [(str(r[0]), str(r[1]), int(r[2])) for r in rows]


def test_a_run_is_queued_at_most_once_and_never_executes_twice_at_once(
    database: str, executors: Callable[..., QueueRunExecutor]
) -> None:
    client = executors(database, lambda run_id: None)  # no worker: submits only
    client.submit("run-1")
    client.submit("run-1")  # already waiting: a no-op
    assert _jobs(database) == [("run-1", "todo", 0)]

    executed: Counter[str] = Counter()
    release = threading.Event()

    def handler(run_id: str) -> None:
        executed[run_id] += 1
        if run_id == "run-1" and executed[run_id] == 1:
            assert release.wait(DEADLINE)

    worker = executors(database, handler, worker=True, concurrency=2)
    wait_until(lambda: worker.is_running("run-1"), timeout=DEADLINE, what="run-1 starts")
    client.submit("run-1")  # while it runs: one more execution, queued behind the lock
    client.submit("run-2")  # newer than run-1's second job: the worker looks at that one first
    client.wait("run-2", timeout=DEADLINE)
    # A free slot took run-2 but left run-1's second job waiting: its first execution holds the lock.
    assert executed == {"run-1": 1, "run-2": 1}
    assert [status for run, status, _ in _jobs(database) if run == "run-1"] == ["doing", "todo"]
    release.set()
    client.wait("run-1", timeout=DEADLINE)
    assert executed == {"run-1": 2, "run-2": 1}


def test_a_job_deferred_in_a_rolled_back_transaction_is_gone_and_a_committed_one_executes(
    database: str, engine: Engine, executors: Callable[..., QueueRunExecutor]
) -> None:
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE runs (id text PRIMARY KEY)"))
    with engine.connect() as conn:
        conn.execute(text("INSERT INTO runs VALUES ('run-rolled-back')"))
        assert defer_in(conn, "run-rolled-back") is not None
        conn.rollback()
    assert _jobs(database) == []

    with engine.begin() as conn:
        conn.execute(text("INSERT INTO runs VALUES ('run-committed')"))
        assert defer_in(conn, "run-committed") is not None
        # Queued twice in one transaction: the second is a no-op and the transaction goes on.
        assert defer_in(conn, "run-committed") is None
        conn.execute(text("INSERT INTO runs VALUES ('after-the-no-op')"))
    with engine.connect() as conn:
        assert sorted(conn.execute(text("SELECT id FROM runs")).scalars()) == ["after-the-no-op", "run-committed"]

    executed: list[str] = []
    worker = executors(database, executed.append, worker=True)
    worker.wait("run-committed", timeout=DEADLINE)
    assert executed == ["run-committed"]


def test_defer_in_refuses_a_database_that_is_not_postgresql(tmp_path: Path) -> None:
    sqlite = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with sqlite.connect() as conn, pytest.raises(UsageError, match="PostgreSQL through psycopg"):
            defer_in(conn, "run-x")
    finally:
        sqlite.dispose()
    with pytest.raises(UsageError, match="needs a PostgreSQL database"):
        QueueRunExecutor(f"sqlite:///{tmp_path / 'x.db'}", lambda run_id: None)


def test_timing_refuses_a_stall_limit_a_live_worker_could_reach() -> None:
    with pytest.raises(UsageError, match="at least three heartbeats"):
        QueueTiming(heartbeat=5, stalled_after=10)
    assert QueueTiming().recovery_bound == 37.0  # the default bound ARCHITECTURE.md documents


# A worker process as `airlock worker` will be: the adapter with an in-process worker, whose
# handler marks that it started and then runs for as long as it is let.
_WORKER = """
import sys, threading
from pathlib import Path
from airlock.pipelines.queue import QueueRunExecutor, QueueTiming

url, marker = sys.argv[1], Path(sys.argv[2])
fast = QueueTiming(heartbeat=0.3, stalled_after=1.5, recover_every=0.3, poll=0.3)

forever = threading.Event()  # never set: the run, and the process, last until it is killed

def handler(run_id):
    marker.write_text(run_id)
    forever.wait()

QueueRunExecutor(url, handler, worker=True, timing=fast)
forever.wait()
"""


def test_a_run_whose_worker_was_killed_runs_again_within_the_bound_and_a_live_ones_is_left_alone(
    database: str, tmp_path: Path, executors: Callable[..., QueueRunExecutor]
) -> None:
    client = executors(database, lambda run_id: None, timing=FAST)
    client.submit("run-k")
    marker = tmp_path / "started"
    child = subprocess.Popen([sys.executable, "-c", _WORKER, database, str(marker)], stderr=subprocess.DEVNULL)
    try:
        wait_until(marker.exists, timeout=DEADLINE, what="the worker process starts run-k")
        # Alive and beating: however long the run takes, it is not stalled.
        started = time.monotonic()

        def live_for_two_stall_periods() -> bool:
            assert client.recover_stalled() == []  # every look: not taken for stalled
            return time.monotonic() - started >= FAST.stalled_after * 2

        wait_until(live_for_two_stall_periods, timeout=DEADLINE, what="two stall periods of a live worker")
        assert _jobs(database) == [("run-k", "doing", 0)]
        os.kill(child.pid, signal.SIGKILL)
        child.wait(DEADLINE)
        killed = time.monotonic()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(DEADLINE)

    executed = threading.Event()
    recovering = executors(database, lambda run_id: executed.set(), worker=True, timing=FAST)
    assert executed.wait(DEADLINE)
    elapsed = time.monotonic() - killed
    # The bound counts from the last heartbeat, which came before the kill; 2 s of slack for a busy machine.
    assert elapsed < FAST.recovery_bound + 2.0, f"taken again after {elapsed:.1f} s"
    recovering.wait("run-k", timeout=DEADLINE)
    assert _jobs(database) == [("run-k", "succeeded", 2)]  # started twice: once killed, once finished


def _admin(database: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(conninfo(database).rsplit("/", 1)[0] + "/postgres", autocommit=True)


def _drop_connections(admin: psycopg.Connection[tuple[object, ...]], name: str) -> int:
    row = admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s", (name,))
    found = row.fetchone()
    assert found is not None  # an aggregate without GROUP BY: always one row
    (count,) = found
    assert isinstance(count, int), count  # count() is a bigint
    return count


def test_the_worker_reconnects_when_the_database_drops_its_connections(
    database: str, executors: Callable[..., QueueRunExecutor]
) -> None:
    executed: list[str] = []
    worker = executors(database, executed.append, worker=True, timing=FAST)
    worker.submit("before")
    worker.wait("before", timeout=DEADLINE)
    with _admin(database) as admin:
        assert _drop_connections(admin, database.rsplit("/", 1)[-1]) > 0
    # The pools replace the connections they lost, and the listener reconnects by itself.
    wait_until(lambda: _submitted(worker, "after"), timeout=DEADLINE, what="a submit goes through again")
    worker.wait("after", timeout=DEADLINE)
    assert executed == ["before", "after"]


def test_a_worker_stopped_by_a_database_outage_starts_again_when_the_database_is_back(
    database: str, executors: Callable[..., QueueRunExecutor], caplog: pytest.LogCaptureFixture
) -> None:
    executed: list[str] = []
    timing = QueueTiming(heartbeat=0.3, stalled_after=1.5, recover_every=0.3, poll=0.3, connect_timeout=0.5)
    worker = executors(database, executed.append, worker=True, timing=timing)
    worker.submit("before")
    worker.wait("before", timeout=DEADLINE)  # its worker is up
    name = database.rsplit("/", 1)[-1]
    with _admin(database) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'.encode())
        try:
            _drop_connections(admin, name)
            # Its heartbeat finds no connection: procrastinate's worker stops, and the adapter retries.
            wait_until(
                lambda: "starting it again" in caplog.text, timeout=DEADLINE, what="the worker notices the outage"
            )
        finally:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'.encode())
    wait_until(lambda: _submitted(worker, "after-outage"), timeout=DEADLINE, what="a submit goes through again")
    worker.wait("after-outage", timeout=DEADLINE)
    assert executed == ["before", "after-outage"]


def _submitted(executor: QueueRunExecutor, run_id: str) -> bool:
    try:
        executor.submit(run_id)
    except Exception:
        return False
    return True
