"""Log lines as text (the default) or, with ``AIRLOCK_LOG_FORMAT=json``, one JSON object per line;
both redacted (:func:`airlock.observability.redaction.redact`).

A JSON line has ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, ``exception`` when
there is one, and whichever of :data:`FIELDS` are known where the line was logged: a request's
``correlation_id`` (its ``x-ms-correlation-request-id``) and ``principal`` (the caller's token name),
a run's ``run_id``, ``pipeline`` and ``principal`` (the pipeline's identity). Code states them with
:func:`bind` (a context manager, on context variables: a block, its callees and the threads of an
``asyncio``/``anyio`` thread pool see them; a plain new thread does not, so bind where the work
runs) and, for what is learnt inside the block, :func:`annotate`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

from airlock.errors import UsageError
from airlock.observability.redaction import redact

FORMAT_ENV = "AIRLOCK_LOG_FORMAT"
FORMATS = ("text", "json")
FIELDS = ("run_id", "pipeline", "correlation_id", "principal")
TEXT_FORMAT = "%(levelname)s %(name)s: %(message)s"

_context: ContextVar[dict[str, str] | None] = ContextVar("airlock_log_context", default=None)


def _checked(fields: dict[str, str | None]) -> dict[str, str]:
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise TypeError(f"unknown log field(s) {', '.join(sorted(unknown))}; known: {', '.join(FIELDS)}")
    return {k: str(v) for k, v in fields.items() if v is not None}


@contextmanager
def bind(**fields: str | None) -> Iterator[None]:
    """Within the block, every line logged in this context carries ``fields`` (None values are left
    out), besides those of the blocks around it. Raises TypeError for a name not in :data:`FIELDS`."""
    token = _context.set({**(_context.get() or {}), **_checked(fields)})
    try:
        yield
    finally:
        _context.reset(token)


def annotate(**fields: str | None) -> None:
    """Add ``fields`` to the innermost :func:`bind` block, for the rest of it: also to lines its
    caller logs after this call returns, and from a thread pool's copy of the context (a request's
    principal is known only once a dependency has read its token). Outside any block, nothing.
    Raises TypeError for a name not in :data:`FIELDS`."""
    current = _context.get()
    if current is not None:
        current.update(_checked(fields))


def current() -> dict[str, str]:
    """The fields bound here (a copy)."""
    return dict(_context.get() or {})


class TextFormatter(logging.Formatter):
    """``LEVEL logger: message``, redacted (what airlock has always written)."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines inside are escaped), every string redacted."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, str] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        bound = _context.get() or {}
        for name in FIELDS:
            value = bound.get(name, getattr(record, name, None))  # also logging's extra={"run_id": ...}
            if value is not None:
                out[name] = str(value)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps({k: redact(v) for k, v in out.items()})


def log_format() -> str:
    """``AIRLOCK_LOG_FORMAT``: ``text`` (also when unset) or ``json``. Raises UsageError otherwise."""
    raw = os.environ.get(FORMAT_ENV, "").strip()
    value = raw.lower() or "text"
    if value not in FORMATS:
        raise UsageError(f"{FORMAT_ENV} {raw[:40]!r}: expected one of {', '.join(FORMATS)}")
    return value


def formatter(fmt: str | None = None) -> logging.Formatter:
    """The formatter for ``fmt`` (default: :func:`log_format`). Raises UsageError for an unknown one."""
    chosen = fmt or log_format()
    if chosen not in FORMATS:
        raise UsageError(f"{FORMAT_ENV} {chosen[:40]!r}: expected one of {', '.join(FORMATS)}")
    return JsonFormatter() if chosen == "json" else TextFormatter()
