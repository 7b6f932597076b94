"""The dashboard's parts without a browser: the fix an error message names, the throughput buckets,
and the Audit page's paging and export (over a SQLite file)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from airlock.api.ui.audit_view import AuditFilters, audit, resource_label, short_digest
from airlock.api.ui.charts import bar_chart, buckets
from airlock.api.ui.views import remedy
from airlock.errors import UsageError
from airlock.pipelines.audit_chain import jsonl_line
from airlock.pipelines.services.audit import AuditService, artifact
from airlock.pipelines.services.runs import INTERRUPTED_MESSAGE
from airlock.pipelines.store import make_engine


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
    rows: list[dict[str, Any]] = [
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


def test_audit_view_pages_newest_first_a_hundred_at_a_time_and_exports_the_period(tmp_path: Path) -> None:
    service = AuditService.on(make_engine(f"sqlite:///{tmp_path / 'airlock.db'}"))
    digest = "sha256:" + "ab" * 32
    for n in range(150):
        service.record("export.run" if n % 2 else "tokens.create", principal="token:owner",
                       artifacts=[artifact("app:1", digest)], catalog_digest=digest)  # fmt: skip
    first = audit(service, AuditFilters(), None)
    assert [r["seq"] for r in first["rows"]] == list(range(150, 50, -1)) and first["older"] == "before=51"
    assert first["chain"]["verified"] is True and first["chain"]["entries"] == 150 and first["newer"] is None
    second = audit(service, AuditFilters(), 51)
    assert [r["seq"] for r in second["rows"]] == list(range(50, 0, -1)) and second["older"] is None
    assert second["newer"] == ""  # back to the newest page
    runs = audit(service, AuditFilters(action="export.run"), None)
    assert {r["action"] for r in runs["rows"]} == {"export.run"} and runs["older"] is None and len(runs["rows"]) == 75
    row = runs["rows"][0]
    assert row["artifacts"] == [{"reference": "app:1", "digest": "sha256:abababababab", "full": digest}]
    assert row["catalog"] == "sha256:abababababab" and row["time"].endswith(" UTC") and len(row["time"]) == 23
    # The export: every matching entry, in chain order, each line as `airlock audit export` writes it.
    assert list(service.lines()) == [jsonl_line(e.to_json()) for e in service.every()]
    assert len(list(service.lines(action="tokens.create"))) == 75 and not list(service.lines(since="2999-01-01"))
    with pytest.raises(UsageError, match=r"^until 'yesterday' is not an ISO 8601 time"):
        service.lines(until="yesterday")  # refused before the download starts, not in the middle of it
    assert AuditFilters("2026-12-01", "", "secret*").filename() == "airlock-audit-2026-12-01-now-secret.jsonl"
    assert AuditFilters("2026-12-01T18:00Z").query(before="9") == "since=2026-12-01T18%3A00Z&before=9"


def test_audit_view_shortens_arm_ids_and_digests_but_keeps_other_resources() -> None:
    arm_id = (
        "/subscriptions/0000/resourceGroups/rg1/providers/Microsoft.ContainerRegistry/registries/reg/pipelineRuns/r1"
    )
    assert resource_label(arm_id) == "rg1 · registries/reg/pipelineRuns/r1"
    assert resource_label("https://kv.vault.azure.net/secrets/sas") == "https://kv.vault.azure.net/secrets/sas"
    assert short_digest(None) == "" and short_digest("sha256:" + "0" * 64) == "sha256:000000000000"
