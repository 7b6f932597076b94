"""``airlock worker``: a process that executes pipeline runs from the job queue (PostgreSQL)."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Annotated

import typer

from airlock.cli.common import hint
from airlock.errors import UsageError
from airlock.observability import logs

log = logging.getLogger("airlock.worker")


def worker(
    concurrency: Annotated[
        int,
        typer.Option(
            "--concurrency", min=1, max=64, envvar="AIRLOCK_CONCURRENCY", help="Pipeline runs executed at once."
        ),
    ] = 2,
    metrics_port: Annotated[
        int | None,
        typer.Option("--metrics-port", min=1, max=65535, help="Serve Prometheus metrics on this port (GET /metrics)."),
    ] = None,
    metrics_host: Annotated[
        str, typer.Option("--metrics-host", help="Address the metrics port listens on (loopback by default).")
    ] = "127.0.0.1",
) -> None:
    """Execute pipeline runs taken from the job queue, and watch import pipelines' containers (the
    source trigger), until stopped; on SIGTERM or Ctrl-C the runs it executes finish first.

    Needs AIRLOCK_DATABASE_URL on PostgreSQL, migrated with `airlock db upgrade`, and the same
    embedded-vault key as every other process (AIRLOCK_VAULT_KEY_FILE). Any number of workers and
    `airlock serve --no-worker` replicas share one database. On SQLite, `airlock serve` already
    runs its own worker.

    Example:

        export AIRLOCK_DATABASE_URL=postgresql+psycopg://airlock@db/airlock
        airlock db upgrade
        airlock worker --concurrency 4 --metrics-port 9464
    """
    from airlock.observability import metrics
    from airlock.pipelines.trigger import SourceTrigger, trigger_interval
    from airlock.wiring import Adapters, database_engine, open_control_plane

    engine = database_engine()
    if engine.dialect.name != "postgresql":
        engine.dispose()
        raise UsageError(
            "airlock worker takes its runs from a job queue on PostgreSQL: set AIRLOCK_DATABASE_URL="
            "postgresql+psycopg://… (on SQLite, `airlock serve` already runs its own worker)"
        )
    engine.dispose()
    interval = trigger_interval()
    plane = open_control_plane(adapters=Adapters(workers=concurrency, worker=True))
    exposed = metrics.serve(metrics_port, metrics_host) if metrics_port is not None else None
    recovered = plane.runs.recover()
    if recovered:
        log.warning("marked %d interrupted run(s) as failed", len(recovered))
    trigger = SourceTrigger(plane, interval=interval)
    trigger.start()
    stop = threading.Event()

    def stopping(signum: int, _frame: FrameType | None) -> None:
        log.info("worker: %s received; finishing the runs under way", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, stopping)
    signal.signal(signal.SIGINT, stopping)
    note = log.info if logs.log_format() == "json" else hint
    note(f"airlock worker: executing up to {concurrency} run(s) at once from the job queue")
    if exposed is not None:
        note(f"metrics on http://{metrics_host}:{metrics_port}/metrics")
    try:
        stop.wait()
    finally:
        trigger.stop()
        plane.close(wait=True)
        if exposed is not None:
            exposed.close()
