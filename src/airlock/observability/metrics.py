"""Prometheus metrics of one process: one :class:`~prometheus_client.CollectorRegistry`, and the small
functions the control plane, the executors and the API call to feed it.

Every label has a bounded set of values, so no caller can grow the series without limit: pipeline
kinds and run states are mapped onto fixed sets (anything else becomes ``other``), HTTP routes are
the route *templates* of the app (``/subscriptions/{subscriptionId}/...``, never a request's path),
methods are the HTTP ones (else ``other``). No label carries a resource name, an id, a blob name, a
principal or a credential. What is exported:

- ``airlock_pipeline_runs_total{kind,state}`` — runs that ended, by pipeline kind and final state;
- ``airlock_pipeline_run_duration_seconds{kind,state}`` — histogram, start to end of a run;
- ``airlock_transfer_bytes_total{kind}`` and ``airlock_transfer_blobs_total{kind}`` — what runs moved;
- ``airlock_run_queue_depth`` and ``airlock_run_queue_oldest_age_seconds`` — gauges read at scrape
  time from the probe the control plane registers (:func:`set_queue_probe`), absent without one;
- ``airlock_trigger_lag_seconds`` — histogram, an imported blob's last change to its run's start;
- ``airlock_http_requests_total{method,route,status}`` — API requests answered;
- the ``process_*`` metrics (CPU, memory, open files) of prometheus-client's process collector.

:func:`render` is what ``GET /metrics`` answers; :func:`serve` exposes the same registry on a port
of its own (a worker process, which serves no API).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, NamedTuple
from wsgiref.simple_server import WSGIServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import start_http_server
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from airlock.errors import UsageError

log = logging.getLogger(__name__)

Kind = Literal["export", "import"]
State = Literal["Succeeded", "Failed", "Canceled"]
KINDS = frozenset({"export", "import"})
STATES = frozenset({"Succeeded", "Failed", "Canceled"})
METHODS = frozenset({"GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS"})
OTHER = "other"
UNMATCHED_ROUTE = "unmatched"  # the route label of a request no route of the app matched

REGISTRY = CollectorRegistry(auto_describe=True)
"""This process's registry: everything below is registered here, nothing in prometheus-client's global one."""
ProcessCollector(registry=REGISTRY)

# Runs last from seconds (a small export) to hours (a large import through a slow link).
_RUN_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, float("inf"))
# The trigger polls every AIRLOCK_TRIGGER_INTERVAL seconds (10 by default; ACR takes up to 15 minutes).
_LAG_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 900, 3600, float("inf"))

_runs = Counter(
    "airlock_pipeline_runs", "Pipeline runs that ended, by pipeline kind and final state.", ("kind", "state"),
    registry=REGISTRY,
)  # fmt: skip
_run_seconds = Histogram(
    "airlock_pipeline_run_duration_seconds", "Pipeline run duration, start to end.", ("kind", "state"),
    buckets=_RUN_BUCKETS, registry=REGISTRY,
)  # fmt: skip
_bytes = Counter(
    "airlock_transfer_bytes", "Bytes pipeline runs moved (read from a registry or an archive).", ("kind",),
    registry=REGISTRY,
)  # fmt: skip
_blobs = Counter(
    "airlock_transfer_blobs", "Blobs pipeline runs moved (ones already in the target are not counted).", ("kind",),
    registry=REGISTRY,
)  # fmt: skip
_trigger_lag = Histogram(
    "airlock_trigger_lag_seconds", "Source trigger lag: a blob's last modification to the start of its import run.",
    buckets=_LAG_BUCKETS, registry=REGISTRY,
)  # fmt: skip
_http = Counter(
    "airlock_http_requests", "API requests answered, by method, route template and status.",
    ("method", "route", "status"), registry=REGISTRY,
)  # fmt: skip


def _kind(kind: str) -> str:
    return kind if kind in KINDS else OTHER


def run_finished(kind: Kind, state: State, seconds: float) -> None:
    """Count a run that ended in ``state`` after ``seconds`` (negative durations count as 0)."""
    labels = (_kind(kind), state if state in STATES else OTHER)
    _runs.labels(*labels).inc()
    _run_seconds.labels(*labels).observe(max(0.0, seconds))


def bytes_moved(n: int, kind: Kind) -> None:
    """Count ``n`` bytes a run of ``kind`` moved (call it as they move, so rates stay live)."""
    if n > 0:
        _bytes.labels(_kind(kind)).inc(n)


def blobs_moved(n: int, kind: Kind) -> None:
    """Count ``n`` blobs a run of ``kind`` wrote (export: into the archive; import: uploaded or mounted)."""
    if n > 0:
        _blobs.labels(_kind(kind)).inc(n)


def blob_moved(kind: Kind) -> None:
    """Count one blob (see :func:`blobs_moved`)."""
    blobs_moved(1, kind)


def trigger_lag(seconds: float) -> None:
    """Record the lag between a blob landing and its triggered run starting."""
    _trigger_lag.observe(max(0.0, seconds))


def seconds_since(timestamp: str | datetime, now: datetime | None = None) -> float:
    """Seconds from ``timestamp`` (a datetime, or ISO 8601 as runs record it: ``...Z``) to now; a
    naive time is UTC. Raises ValueError for a string that is not ISO 8601."""
    when = datetime.fromisoformat(timestamp.replace("Z", "+00:00")) if isinstance(timestamp, str) else timestamp
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return ((now or datetime.now(UTC)) - when).total_seconds()


def http_request(method: str, route: str, status: int) -> None:
    """Count one answered API request; ``route`` is the matched route's template (or
    :data:`UNMATCHED_ROUTE`), never the request's path."""
    _http.labels(method if method in METHODS else OTHER, route, str(status)).inc()


class QueueStats(NamedTuple):
    depth: int  # jobs waiting for a worker (not those executing)
    oldest_age_seconds: float  # how long the oldest of them has waited; 0 when none waits


QueueProbe = Callable[[], QueueStats]


class _QueueCollector(Collector):
    """The queue gauges, read from the probe at each scrape: the queue lives in the executor (or the
    database), so there is nothing to keep up to date between scrapes."""

    def __init__(self) -> None:
        self.probe: QueueProbe | None = None
        self._failing = False

    def describe(self) -> Iterable[Metric]:
        return []  # the gauges exist only while a probe is set; nothing to check at registration

    def collect(self) -> Iterable[Metric]:
        probe = self.probe
        if probe is None:
            return []
        try:
            stats = probe()
        except Exception as exc:  # a scrape must answer even while the database is away
            if not self._failing:
                log.warning("queue metrics unavailable: the queue probe raised %s: %s", type(exc).__name__, exc)
            self._failing = True
            return []
        self._failing = False
        depth = GaugeMetricFamily("airlock_run_queue_depth", "Pipeline runs waiting for a worker.")
        depth.add_metric([], stats.depth)
        age = GaugeMetricFamily(
            "airlock_run_queue_oldest_age_seconds", "How long the oldest waiting pipeline run has waited."
        )
        age.add_metric([], max(0.0, stats.oldest_age_seconds))
        return [depth, age]


_queue = _QueueCollector()
REGISTRY.register(_queue)


def set_queue_probe(probe: QueueProbe | None) -> None:
    """Have each scrape call ``probe`` for the run queue's gauges (None removes them). The probe
    should be quick (one query); an exception it raises leaves the gauges out of that scrape and
    is logged once until the probe works again."""
    _queue.probe = probe


def render() -> tuple[bytes, str]:
    """This process's metrics in the Prometheus text format, and their content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def sample(name: str, labels: dict[str, str] | None = None) -> float | None:
    """The current value of one sample (``airlock_pipeline_runs_total``, with its labels), or None."""
    return REGISTRY.get_sample_value(name, labels or {})


@dataclass
class MetricsServer:
    """The registry served on a port of its own (:func:`serve`); ``close`` stops it."""

    host: str
    port: int
    _server: WSGIServer
    _thread: threading.Thread

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


def serve(port: int, host: str = "127.0.0.1") -> MetricsServer:
    """Serve this process's metrics over plain HTTP on ``host:port`` (port 0: a free one), on a
    daemon thread, for processes without the API (``airlock worker --metrics-port``). Loopback by
    default: metrics are not secret, but whoever exposes them beyond the host decides to.

    Raises:
        UsageError: the address cannot be bound (the port is in use, or the address not this host's).
    """
    try:
        server, thread = start_http_server(port, addr=host, registry=REGISTRY)
    except OSError as exc:
        raise UsageError(f"cannot serve metrics on {host}:{port}: {exc.strerror or type(exc).__name__}") from None
    bound = server.server_address
    return MetricsServer(host=str(bound[0]), port=int(bound[1]), _server=server, _thread=thread)
