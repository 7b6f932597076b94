"""The metrics module: what each function counts, bounded labels, the queue probe read at scrape
time, the text format as Prometheus parses it, and the registry served on a port of its own."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from airlock.errors import UsageError
from airlock.observability import metrics
from airlock.observability.metrics import QueueStats


def value(name: str, **labels: str) -> float:
    return metrics.sample(name, labels) or 0.0


def families() -> dict[str, object]:
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain; version=")  # the text format (1.0.0 in prometheus-client 0.26)
    return {f.name: f for f in text_string_to_metric_families(body.decode())}


@pytest.fixture
def no_probe() -> Iterator[None]:
    yield
    metrics.set_queue_probe(None)


def test_runs_are_counted_by_kind_and_final_state_with_their_duration() -> None:
    before = value("airlock_pipeline_runs_total", kind="export", state="Succeeded")
    count = value("airlock_pipeline_run_duration_seconds_count", kind="export", state="Succeeded")
    total = value("airlock_pipeline_run_duration_seconds_sum", kind="export", state="Succeeded")
    metrics.run_finished("export", "Succeeded", 12.5)
    assert value("airlock_pipeline_runs_total", kind="export", state="Succeeded") == before + 1
    assert value("airlock_pipeline_run_duration_seconds_count", kind="export", state="Succeeded") == count + 1
    assert value("airlock_pipeline_run_duration_seconds_sum", kind="export", state="Succeeded") == total + 12.5
    assert value("airlock_pipeline_run_duration_seconds_bucket", kind="export", state="Succeeded", le="15.0") >= 1


def test_labels_outside_their_fixed_sets_become_other() -> None:
    before = value("airlock_pipeline_runs_total", kind="other", state="other")
    metrics.run_finished("myexportpipeline", "Exploded", 1)  # type: ignore[arg-type]
    assert value("airlock_pipeline_runs_total", kind="other", state="other") == before + 1
    assert metrics.sample("airlock_pipeline_runs_total", {"kind": "myexportpipeline", "state": "Exploded"}) is None
    get = value("airlock_http_requests_total", method="other", route="/x", status="200")
    metrics.http_request("BREW", "/x", 200)
    assert value("airlock_http_requests_total", method="other", route="/x", status="200") == get + 1


def test_bytes_and_blobs_moved_are_counted_by_kind() -> None:
    b = value("airlock_transfer_bytes_total", kind="import")
    n = value("airlock_transfer_blobs_total", kind="import")
    metrics.bytes_moved(1000, "import")
    metrics.bytes_moved(0, "import")
    metrics.blobs_moved(3, "import")
    metrics.blob_moved("import")
    assert value("airlock_transfer_bytes_total", kind="import") == b + 1000
    assert value("airlock_transfer_blobs_total", kind="import") == n + 4


def test_trigger_lag_is_a_histogram_from_the_blobs_timestamp() -> None:
    count = value("airlock_trigger_lag_seconds_count")
    landed = (datetime.now(UTC) - timedelta(seconds=7)).isoformat().replace("+00:00", "Z")
    lag = metrics.seconds_since(landed)
    assert 7 <= lag < 60
    metrics.trigger_lag(lag)
    metrics.trigger_lag(-3)  # a clock a little ahead of the storage's: counted as no lag
    assert value("airlock_trigger_lag_seconds_count") == count + 2
    assert value("airlock_trigger_lag_seconds_bucket", le="10.0") >= 2
    assert metrics.seconds_since(datetime(2026, 1, 1), now=datetime(2026, 1, 1, 0, 1, tzinfo=UTC)) == 60
    with pytest.raises(ValueError):
        metrics.seconds_since("yesterday")


def test_queue_gauges_are_read_from_the_probe_at_scrape_time(no_probe: None) -> None:
    assert "airlock_run_queue_depth" not in families()  # no probe: no gauge, rather than a false 0
    state = {"depth": 3, "age": 42.0}
    metrics.set_queue_probe(lambda: QueueStats(state["depth"], state["age"]))  # type: ignore[arg-type]
    assert value("airlock_run_queue_depth") == 3
    assert value("airlock_run_queue_oldest_age_seconds") == 42
    state.update(depth=0, age=0.0)
    assert value("airlock_run_queue_depth") == 0
    assert {"airlock_run_queue_depth", "airlock_run_queue_oldest_age_seconds"} <= set(families())


def test_a_failing_queue_probe_leaves_its_gauges_out_and_the_scrape_answers(
    no_probe: None, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> QueueStats:
        raise ConnectionError("database is away")

    metrics.set_queue_probe(broken)
    for _ in range(3):
        found = families()
        assert "airlock_run_queue_depth" not in found and "airlock_pipeline_runs" in found
    warnings = [r for r in caplog.records if "queue probe raised ConnectionError" in r.getMessage()]
    assert len(warnings) == 1  # once until it works again, not once per scrape


def test_the_text_format_parses_with_every_family_and_process_figures() -> None:
    metrics.http_request("GET", "/healthz", 200)
    found = families()
    for name in (
        "airlock_pipeline_runs",
        "airlock_pipeline_run_duration_seconds",
        "airlock_transfer_bytes",
        "airlock_transfer_blobs",
        "airlock_trigger_lag_seconds",
        "airlock_http_requests",
        "process_resident_memory_bytes",
    ):
        assert name in found, sorted(found)


def test_serve_metrics_on_a_port_of_its_own_binds_loopback_by_default() -> None:
    server = metrics.serve(0)
    try:
        assert server.host == "127.0.0.1" and server.port > 0
        r = httpx.get(f"http://127.0.0.1:{server.port}/metrics", timeout=10)
        assert r.status_code == 200
        names = {f.name for f in text_string_to_metric_families(r.text)}
        assert "airlock_pipeline_runs" in names
        with pytest.raises(UsageError, match=f"cannot serve metrics on 127.0.0.1:{server.port}"):
            metrics.serve(server.port)  # taken
    finally:
        server.close()
    with pytest.raises(httpx.ConnectError):  # closed: nothing listens there any more
        httpx.get(f"http://127.0.0.1:{server.port}/metrics", timeout=10)
