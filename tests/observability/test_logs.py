"""Log formats: JSON lines with the bound context, text as before; both redacted."""

from __future__ import annotations

import json
import logging
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from contextvars import copy_context
from typing import Any

import pytest

from airlock.errors import UsageError
from airlock.observability import logs
from airlock.observability.redaction import redact

SIG = "PlantedSig%2Bx0Ab12cd34ef56"
TOKEN = "alt_" + "Q" * 43


def record(message: str, *args: object, exc: bool = False, **extra: Any) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise RuntimeError(f"GET https://a.blob.core.windows.net/c/b?sv=2024&sig={SIG}")
        except RuntimeError:
            exc_info = sys.exc_info()
    rec = logging.LogRecord("airlock.test", logging.WARNING, __file__, 1, message, args, exc_info)
    rec.__dict__.update(extra)
    return rec


def as_json(rec: logging.LogRecord) -> dict[str, str]:
    line = logs.JsonFormatter().format(rec)
    assert "\n" not in line
    parsed: dict[str, str] = json.loads(line)
    return parsed


def test_a_json_line_has_time_level_logger_message_and_the_bound_fields() -> None:
    with logs.bind(correlation_id="corr-1", principal="owner"), logs.bind(run_id="/sub/x/run1", pipeline="p1"):
        line = as_json(record("run %s started\nsecond line", "run1"))
    assert line["level"] == "WARNING" and line["logger"] == "airlock.test"
    assert line["message"] == "run run1 started\nsecond line"
    assert line["time"].endswith("Z") and "T" in line["time"]
    assert {k: line[k] for k in logs.FIELDS} == {
        "run_id": "/sub/x/run1",
        "pipeline": "p1",
        "correlation_id": "corr-1",
        "principal": "owner",
    }
    assert "run_id" not in as_json(record("outside"))  # the block ended: nothing bound any more


def test_annotate_adds_to_the_block_also_from_a_thread_pools_copy_of_the_context() -> None:
    with logs.bind(correlation_id="c2"):
        ctx = copy_context()  # what anyio's thread pool does for a sync FastAPI dependency
        with ThreadPoolExecutor(1) as pool:
            pool.submit(ctx.run, logs.annotate, principal="ci").result()
        assert logs.current() == {"correlation_id": "c2", "principal": "ci"}
    logs.annotate(principal="nobody")  # outside any block: nothing, and nothing leaks into the next one
    with logs.bind(run_id="r"):
        assert logs.current() == {"run_id": "r"}


def test_a_plain_thread_does_not_inherit_the_fields() -> None:
    seen: list[dict[str, str]] = []
    with logs.bind(run_id="r"):
        t = threading.Thread(target=lambda: seen.append(logs.current()))
        t.start()
        t.join()
    assert seen == [{}]


def test_unknown_fields_are_a_programming_error() -> None:
    with pytest.raises(TypeError, match="unknown log field"), logs.bind(run="x"):
        pass


def test_json_lines_redact_sas_bearer_passwords_and_api_tokens_in_message_args_and_exceptions() -> None:
    line = as_json(
        record(
            "GET %s with %s; body %s; token %s",
            f"https://a.blob.core.windows.net/c?sv=1&sig={SIG}",
            f"Authorization: Bearer {TOKEN}",
            {"password": "Hunter2-planted", "user": "robot"},
            TOKEN,
            exc=True,
            run_id=f"x?sig={SIG}",
        )
    )
    text = json.dumps(line)
    for secret in (SIG, TOKEN, "Hunter2-planted"):
        assert secret not in text, secret
    assert "sig=REDACTED" in line["message"] and "'user': 'robot'" in line["message"]
    assert "RuntimeError" in line["exception"] and "sig=REDACTED" in line["exception"]
    assert line["run_id"] == "x?sig=REDACTED"


def test_text_lines_are_as_before_and_redacted() -> None:
    line = logs.TextFormatter().format(record("read %s", f"?sv=1&sig={SIG}"))
    assert line == "WARNING airlock.test: read ?sv=1&sig=REDACTED"


def test_the_format_comes_from_airlock_log_format(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(logs.FORMAT_ENV, raising=False)
    assert isinstance(logs.formatter(), logs.TextFormatter)
    monkeypatch.setenv(logs.FORMAT_ENV, "JSON")
    assert isinstance(logs.formatter(), logs.JsonFormatter)
    monkeypatch.setenv(logs.FORMAT_ENV, "xml")
    with pytest.raises(UsageError, match="AIRLOCK_LOG_FORMAT 'xml': expected one of text, json"):
        logs.formatter()


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("https://x/c?sv=1&sig=abc%2Fdef&se=2030", "https://x/c?sv=1&sig=REDACTED&se=2030"),
        ("https://x/c%3Fsv%3D1%26sig%3Dabc%252F", "https://x/c%3Fsv%3D1%26sig%3DREDACTED"),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.x", "Authorization: Bearer REDACTED"),
        ('{"password": "p@ss word"}', '{"password": "REDACTED"}'),
        ("AccountKey=abc==;EndpointSuffix=core", "AccountKey=REDACTED;EndpointSuffix=core"),
        (f"token {TOKEN} revoked", "token alt_REDACTED revoked"),
        ("registry r1: 3 blobs, 10 MiB", "registry r1: 3 blobs, 10 MiB"),
    ],
)
def test_redaction(text: str, shown: str) -> None:
    assert redact(text) == shown
