"""The dashboard's pure parts: the fix an error message names, and the throughput buckets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airlock.api.ui.charts import bar_chart, buckets
from airlock.api.ui.views import remedy
from airlock.pipelines.services.runs import INTERRUPTED_MESSAGE


def test_remedy_is_the_command_a_vault_denial_names_and_the_rerun_an_interruption_names() -> None:
    denied = (
        "key vault kv1: principal 1234 lacks the 'get' permission on secret 'sas' (grant it with: airlock "
        "keyvault set-policy -n kv1 --object-id 1234 --secret-permissions get)"
    )
    assert remedy(denied) == "airlock keyvault set-policy -n kv1 --object-id 1234 --secret-permissions get"
    assert remedy(INTERRUPTED_MESSAGE) == "Run it again with a new forceUpdateTag"
    assert remedy("GET http://127.0.0.1:9/v2/: cannot reach the registry") is None
    assert remedy(None) is None


def test_throughput_buckets_count_runs_by_finish_time_and_rate_by_their_seconds() -> None:
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    rows = [
        {"finished": now - timedelta(minutes=2), "bytes_done": 4_000_000, "seconds": 2.0},
        {"finished": now - timedelta(minutes=3), "bytes_done": 2_000_000, "seconds": 2.0},
        {"finished": now - timedelta(minutes=30), "bytes_done": 1_000_000, "seconds": 1.0},
        {"finished": now - timedelta(hours=2), "bytes_done": 9_000_000, "seconds": 1.0},  # outside the window
        {"finished": None, "bytes_done": 5, "seconds": 1.0},  # still running
    ]
    found, width = buckets(rows, "1h", now)
    assert width == timedelta(minutes=5) and len(found) == 12
    assert [b.runs for b in found].count(0) == 10 and sum(b.runs for b in found) == 3
    assert found[-1].runs == 2 and found[-1].mb_per_s == 1.5 and found[-1].per_hour(width) == 24
    chart = str(bar_chart("MB/s, all pipelines", "MB/s", [b.start.strftime("%H:%M") for b in found],
                          [b.mb_per_s for b in found], "rate"))  # fmt: skip
    assert chart.count("<rect") == 12 and '<title id="rate-title">MB/s, all pipelines</title>' in chart
