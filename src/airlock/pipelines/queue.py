"""The job-queue adapter of the :class:`~airlock.pipelines.executor.RunExecutor` port, on procrastinate:
runs execute on any number of worker processes that share one PostgreSQL database.

A run's job carries its id only (task :data:`TASK`, queue :data:`QUEUE`). Its ``queueing_lock`` is
the run id, so a run is queued at most once (a second submit while it waits is a no-op), and so is
its ``lock``, so no two workers execute the same run at once (a submit while it runs queues one
more execution, which starts after the first ends). :func:`defer_in` queues the job in the caller's
SQLAlchemy transaction: the job exists exactly when the transaction that records the run commits.

Stalled jobs: each worker beats every ``heartbeat`` seconds in ``procrastinate_workers``; a job in
``doing`` whose worker has not beaten for ``stalled_after`` seconds (the process was killed, its
machine lost) is put back in the queue by :meth:`QueueRunExecutor.recover_stalled`, which every
in-process worker calls every ``recover_every`` seconds; the worker that takes it next finds it at
once or at its next poll. So a killed worker's run starts again within
``stalled_after + recover_every + poll`` seconds of its last beat (:class:`QueueTiming`: 37 s by default).

procrastinate's schema comes with airlock's migrations (revision 0003, :mod:`airlock.db.job_queue`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import psycopg
import psycopg_pool
from procrastinate import App, PsycopgConnector, SyncPsycopgConnector, exceptions, jobs, sql, utils
from sqlalchemy import Connection
from sqlalchemy.engine import make_url

from airlock.errors import UsageError
from airlock.pipelines.executor import RunHandler

log = logging.getLogger(__name__)

TASK = "airlock.execute_run"
QUEUE = "airlock.runs"
CONNECT_TIMEOUT = 5  # seconds a look into the queue (wait, pending, the metrics' stats) waits for PostgreSQL
_LOCK_PREFIX = "airlock.run:"  # locks are global to the database: the prefix keeps other tasks' apart
_ENDED = {s.value for s in (jobs.Status.SUCCEEDED, jobs.Status.FAILED, jobs.Status.CANCELLED, jobs.Status.ABORTED)}


class RunJobFailed(RuntimeError):
    """A run's job ended ``failed``: its handler raised (a bug; the worker's log has the traceback)."""


@dataclass(frozen=True)
class QueueTiming:
    """The queue's clocks, in seconds. A killed worker's run starts again within
    ``stalled_after + recover_every + poll`` of its last heartbeat.

    Raises:
        UsageError: ``stalled_after`` is under three heartbeats (a live worker's job could be
            taken for stalled and run twice at once), or a value is not positive.
    """

    heartbeat: float = 5.0  # a worker's beat (procrastinate's update_heartbeat_interval)
    stalled_after: float = 30.0  # beats missed for this long mean the worker is gone
    recover_every: float = 5.0  # how often each in-process worker looks for stalled jobs
    poll: float = 2.0  # a worker's fallback poll when no NOTIFY arrived (a retried job sends none)
    connect_timeout: float = 10.0  # a call's wait for a connection; past it a worker starts itself again

    def __post_init__(self) -> None:
        if min(self.heartbeat, self.stalled_after, self.recover_every, self.poll, self.connect_timeout) <= 0:
            raise UsageError("job queue timing: every interval must be positive")
        if self.stalled_after < 3 * self.heartbeat:
            raise UsageError(
                f"job queue timing: stalled_after ({self.stalled_after:g} s) must be at least three heartbeats "
                f"({3 * self.heartbeat:g} s), or a live worker's run could be started twice"
            )

    @property
    def recovery_bound(self) -> float:
        """Seconds from a killed worker's last heartbeat until its run is taken again, at most."""
        return self.stalled_after + self.recover_every + self.poll


def conninfo(database_url: str) -> str:
    """The libpq URL of a SQLAlchemy PostgreSQL URL (``postgresql+psycopg://…`` or ``postgresql://…``).

    Raises:
        UsageError: the URL is not PostgreSQL's (the password is never in the message).
    """
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        raise UsageError(f"the job queue needs a PostgreSQL database; {url.render_as_string()} is not one")
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def _lock(run_id: str) -> str:
    return _LOCK_PREFIX + run_id


def _deferrer(app: App, run_id: str, connection: Any = None) -> jobs.JobDeferrer:
    return app.configure_task(TASK, queue=QUEUE, lock=_lock(run_id), queueing_lock=_lock(run_id), connection=connection)


@functools.cache
def _unbound_app() -> App:
    """An App for deferring on connections the caller holds: it never opens a pool of its own."""
    return App(connector=SyncPsycopgConnector())


def defer_in(connection: Connection, run_id: str) -> int | None:
    """Queue ``run_id``'s job in ``connection``'s current transaction (begun if none is): it is
    visible to workers when that transaction commits, and gone if it rolls back.

    Returns the job's id, or None when the run is already queued (its waiting job will execute it;
    the caller's transaction is untouched, thanks to a savepoint).

    Raises:
        UsageError: ``connection`` is not PostgreSQL through psycopg 3.
    """
    if (connection.dialect.name, connection.dialect.driver) != ("postgresql", "psycopg"):
        raise UsageError(
            f"the job queue needs PostgreSQL through psycopg (postgresql+psycopg://…), not "
            f"{connection.dialect.name}+{connection.dialect.driver}"
        )
    driver = connection.connection.driver_connection
    try:
        with connection.begin_nested():  # a refused insert must not abort the caller's transaction
            return _deferrer(_unbound_app(), run_id, driver).defer(run_id=run_id)
    except exceptions.AlreadyEnqueued:
        return None


class QueueRunExecutor:
    """Runs executed by procrastinate workers, in this process (``worker=True``) or in others.

    ``submit`` queues a job (any process may, worker or not); the in-process worker, if any, runs
    ``concurrency`` runs at once on threads named ``run_*``, next to its event loop on a thread of
    its own. ``is_running``/``running`` report the runs this process's worker executes; ``wait``
    follows a run's jobs in the database, wherever they run.

    Raises:
        UsageError: ``database_url`` is not PostgreSQL's, or ``timing`` is inconsistent.
        procrastinate.exceptions.ConnectorException: the database cannot be reached.
    """

    def __init__(
        self,
        database_url: str,
        handler: RunHandler,
        *,
        worker: bool = False,
        concurrency: int = 1,
        timing: QueueTiming | None = None,
    ) -> None:
        self._conninfo = conninfo(database_url)
        self._handler = handler
        self._concurrency = max(1, concurrency)
        self.timing = timing or QueueTiming()
        self._app = App(connector=SyncPsycopgConnector(**self._pool(max_size=4))).open()
        self._running: set[str] = set()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        if worker:
            self._thread = threading.Thread(target=self._serve, name="run-queue-worker", daemon=True)
            self._thread.start()
            self._started.wait()

    durable = True  # jobs wait in the database, for any worker

    def _pool(self, *, max_size: int) -> dict[str, Any]:
        """psycopg_pool's arguments: a wait for a connection ends after ``connect_timeout``."""
        return {"conninfo": self._conninfo, "min_size": 1, "max_size": max_size, "timeout": self.timing.connect_timeout}

    # ------------------------------------------------------------------------------ the port

    def submit(self, run_id: str) -> None:
        """Queue ``run_id``'s job (a no-op when one already waits). Raises ConnectorException."""
        with contextlib.suppress(exceptions.AlreadyEnqueued):
            _deferrer(self._app, run_id).defer(run_id=run_id)

    def enqueue(self, run_id: str) -> Callable[[Any], None]:
        """:func:`defer_in` for the transaction that records the run."""

        def defer(connection: Any) -> None:
            defer_in(connection, run_id)

        return defer

    def pending(self) -> set[str]:
        """The run ids with a job waiting or running, in any process: one query. Raises psycopg.Error."""
        with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT) as conn:
            rows = conn.execute(
                "SELECT DISTINCT args->>'run_id' FROM procrastinate_jobs "
                "WHERE queue_name = %s AND task_name = %s AND status IN ('todo', 'doing')",
                (QUEUE, TASK),
            ).fetchall()
        return {str(row[0]) for row in rows}

    def queue_stats(self) -> tuple[int, float | None]:
        """(runs waiting, seconds the oldest has waited), for the queue-depth metrics. Raises psycopg.Error."""
        with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT) as conn:
            row = conn.execute(
                "SELECT count(*), EXTRACT(EPOCH FROM now() - min(e.at)) FROM procrastinate_jobs j "
                "JOIN procrastinate_events e ON e.job_id = j.id AND e.type = 'deferred' "
                "WHERE j.queue_name = %s AND j.status = 'todo'",
                (QUEUE,),
            ).fetchone()
        assert row is not None
        return int(row[0]), None if row[1] is None else float(row[1])

    def is_running(self, run_id: str) -> bool:
        with self._lock:
            return run_id in self._running

    def running(self) -> list[str]:
        with self._lock:
            return sorted(self._running)

    def wait(self, run_id: str, timeout: float | None = None) -> None:
        """Block until no job of ``run_id`` waits or runs, in any process (at once when it has none).

        Raises:
            TimeoutError: ``timeout`` seconds passed first.
            RunJobFailed: its latest job ended ``failed`` (the handler raised).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.01
        # A connection of its own: works after close() too, and holds no pool slot while it waits.
        with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT) as conn:
            while True:
                statuses = self._statuses(conn, run_id)
                if not statuses or all(status in _ENDED for _, status in statuses):
                    break
                if deadline is not None and time.monotonic() + pause > deadline:
                    raise TimeoutError(f"pipeline run {run_id} did not finish within {timeout:g} s")
                time.sleep(pause)
                pause = min(pause * 2, 0.2)
        job_id, status = statuses[-1] if statuses else (None, None)
        if status == jobs.Status.FAILED.value:
            raise RunJobFailed(f"pipeline run {run_id}: its job {job_id} failed (the worker's log names the error)")

    def _statuses(self, conn: psycopg.Connection[Any], run_id: str) -> list[tuple[int, str]]:
        rows = self._app.connector.execute_query_all_with_connection(
            conn,
            query=sql.queries["list_jobs"],
            id=None,
            queue_name=QUEUE,
            task_name=TASK,
            status=None,
            lock=_lock(run_id),
            queueing_lock=None,
            worker_id=None,
        )
        return [(row["id"], row["status"]) for row in rows]  # by id: the last is the latest

    def close(self, *, wait: bool = True) -> None:
        """Stop the in-process worker: with ``wait``, after the runs it executes end; otherwise at
        once (a run already executing finishes on its thread). Jobs not started stay queued, for
        any worker. Idempotent."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop ended between the check and the call
                loop.call_soon_threadsafe(stop.set)
        if wait and self._thread is not None:
            self._thread.join()
        if wait and not self._closed:
            self._closed = True
            self._app.close()

    # ------------------------------------------------------------------------------ stalled jobs

    def recover_stalled(self) -> list[int]:
        """Put back in the queue the run jobs whose worker stopped beating ``stalled_after`` seconds
        ago; returns their ids. Safe in any number of processes at once (a job is retried once).

        A stalled job whose run was queued again meanwhile ends ``failed`` instead: the waiting job
        executes the run. Raises ConnectorException (the database cannot be reached).
        """
        connector = self._app.connector
        rows = connector.execute_query_all(
            query=sql.queries["select_stalled_jobs_by_heartbeat"],
            queue=QUEUE,
            task_name=TASK,
            seconds_since_heartbeat=self.timing.stalled_after,
        )
        retried = []
        for row in rows:
            run_id = row["args"].get("run_id")
            try:
                self._app.job_manager.retry_job_by_id(row["id"], retry_at=utils.utcnow())
            except exceptions.UniqueViolation:  # the run waits in the queue already
                with contextlib.suppress(exceptions.ConnectorException):
                    connector.execute_query(
                        query=sql.queries["finish_job"], job_id=row["id"], status="failed", delete_job=False
                    )
                log.warning("pipeline run %s: its stalled job %s ended; the run is queued again", run_id, row["id"])
                continue
            except exceptions.ConnectorException:  # another process retried it first
                continue
            log.warning(
                "pipeline run %s: job %s was stalled (its worker stopped beating); queued again", run_id, row["id"]
            )
            retried.append(int(row["id"]))
        return retried

    # ------------------------------------------------------------------------------ the worker

    def _execute(self, run_id: str) -> None:
        """The task: the handler, with the run reported running here meanwhile."""
        with self._lock:
            self._running.add(run_id)
        try:
            self._handler(run_id)
        except Exception as exc:
            log.error("pipeline run %s: its execution raised %s: %s", run_id, type(exc).__name__, exc)
            raise  # the job ends failed, so wait() says so
        finally:
            with self._lock:
                self._running.discard(run_id)

    def _serve(self) -> None:
        asyncio.run(self._serve_async())

    async def _serve_async(self) -> None:
        loop = asyncio.get_running_loop()
        # Sync tasks run on the loop's default executor: one thread per run slot, one for upkeep.
        loop.set_default_executor(ThreadPoolExecutor(self._concurrency + 1, thread_name_prefix="run"))
        self._stop = stop = asyncio.Event()
        self._loop = loop
        self._started.set()
        while not stop.is_set():
            try:
                await self._work(stop)
            except Exception as exc:
                log.warning("job queue worker stopped (%s); starting it again", _reason(exc))
            if not stop.is_set():  # the worker ended by itself (database lost): back off, start again
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=1.0)

    async def _work(self, stop: asyncio.Event) -> None:
        """One procrastinate worker until ``stop`` is set or it ends by itself (it does when its
        heartbeat cannot reach the database); on stop, graceful: no new job, running ones finish."""
        timing = self.timing
        # Connections: the heartbeat's, the fetches and finishes of the running jobs (the listener
        # has one of its own). A pool of ours, opened with our timeout (procrastinate's open waits
        # 30 s), new at each start so that its reconnection backoff starts afresh too.
        pool = psycopg_pool.AsyncConnectionPool(
            **self._pool(max_size=self._concurrency + 2),
            open=False,
            check=psycopg_pool.AsyncConnectionPool.check_connection,
        )
        app = App(connector=PsycopgConnector())
        app.task(name=TASK, queue=QUEUE)(self._execute)
        try:
            await pool.open(wait=True, timeout=timing.connect_timeout)
            await app.open_async(pool)
            worker = asyncio.create_task(
                app.run_worker_async(
                    queues=[QUEUE],
                    name="airlock",
                    concurrency=self._concurrency,
                    install_signal_handlers=False,
                    fetch_job_polling_interval=timing.poll,
                    update_heartbeat_interval=timing.heartbeat,
                    stalled_worker_timeout=timing.stalled_after,
                )
            )
            upkeep = asyncio.create_task(self._upkeep())
            stopping = asyncio.create_task(stop.wait())
            try:
                await asyncio.wait({worker, stopping}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                upkeep.cancel()
                stopping.cancel()
                worker.cancel()  # procrastinate's graceful stop
                with contextlib.suppress(asyncio.CancelledError):
                    await upkeep
                with contextlib.suppress(asyncio.CancelledError):
                    await worker  # raises what stopped the worker by itself
        finally:
            await pool.close()

    async def _upkeep(self) -> None:
        while True:
            await asyncio.sleep(self.timing.recover_every)
            try:
                await asyncio.to_thread(self.recover_stalled)
            except exceptions.ConnectorException as exc:
                log.warning("could not look for stalled run jobs (%s); trying again", _reason(exc))


def _reason(exc: BaseException) -> str:
    """One line for a log: procrastinate's ConnectorException says nothing itself; its cause does."""
    cause = exc.__cause__ if not str(exc) and exc.__cause__ is not None else exc
    first = (str(cause).strip().splitlines() or [""])[0]
    return f"{type(cause).__name__}: {first}" if first else type(cause).__name__
