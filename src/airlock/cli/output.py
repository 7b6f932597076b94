"""Rendering results like az: ``-o json|jsonc|tsv|table|none`` and ``--query <JMESPath>``."""

from __future__ import annotations

import json
import re
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError
from rich.console import Console

from airlock.cli.table import generic_rows, print_table
from airlock.errors import UsageError

FORMATS = ("json", "jsonc", "tsv", "table", "none")

_SECRETS = [
    (re.compile(r"(?i)\bsig=[^&\s\"']+"), "sig=REDACTED"),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 REDACTED"),
    (re.compile(r"(?i)(accountkey|password|secret|token)=([^;&\s\"']+)"), r"\1=REDACTED"),
]


def redact(text: str) -> str:
    """Remove anything that looks like a credential (SAS signature, auth header, key=value secret)."""
    for pattern, repl in _SECRETS:
        text = pattern.sub(repl, text)
    return text


def check_output(fmt: str, query: str | None) -> None:
    """Validate ``-o`` and ``--query`` up front, so a typo fails before any transfer starts.

    Raises:
        UsageError: unknown format or invalid JMESPath.
    """
    if fmt not in FORMATS:
        raise UsageError(f"unknown output format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if query:
        try:
            jmespath.compile(query)
        except JMESPathError as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise UsageError(f"invalid --query {query!r}: {first}") from None


def render(obj: Any, *, fmt: str, query: str | None, console: Console) -> None:
    """Print ``obj`` to ``console`` in ``fmt`` after applying ``query``.

    Raises:
        UsageError: unknown format or invalid JMESPath.
    """
    check_output(fmt, query)
    if query:
        try:
            obj = jmespath.search(query, obj)
        except JMESPathError as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise UsageError(f"--query {query!r} failed: {first}") from None
    if fmt == "none":
        return
    if fmt == "jsonc":
        console.print_json(json.dumps(obj, default=str))
        return
    if fmt == "json":
        print(json.dumps(obj, indent=2, default=str))  # noqa: T201
        return
    if fmt == "tsv":
        for row in _rows(obj):
            print("\t".join(_tsv_cell(v) for v in row))  # noqa: T201
        return
    if fmt == "table":
        print_table(generic_rows(obj))
        return
    raise UsageError(f"unknown output format {fmt!r}; choose one of {', '.join(FORMATS)}")


def _rows(obj: Any) -> list[list[Any]]:
    # az's tsv: scalars of each object in order, one line per list element; nested values omitted.
    if isinstance(obj, list):
        return (
            [r for item in obj for r in _rows(item)]
            if any(isinstance(i, dict | list) for i in obj)
            else [[i] for i in obj]
        )
    if isinstance(obj, dict):
        return [[v for v in obj.values() if not isinstance(v, dict | list)]]
    return [[obj]]


def _tsv_cell(value: Any) -> str:
    return "" if value is None else str(value)
