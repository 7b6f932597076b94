"""Rendering results like az: ``-o json|jsonc|tsv|table|none`` and ``--query <JMESPath>``."""

from __future__ import annotations

import json
import re
from typing import Any

import jmespath
from jmespath.exceptions import (
    EmptyExpressionError,
    IncompleteExpressionError,
    JMESPathError,
    LexerError,
    ParseError,
)
from rich.console import Console

from airlock.cli.table import generic_rows, print_table
from airlock.errors import UsageError

FORMATS = ("json", "jsonc", "tsv", "table", "none")


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
            raise UsageError(f"invalid --query {query!r}: {_parse_problem(exc)}") from None


def _parse_problem(exc: JMESPathError) -> str:
    """What jmespath's parser found wrong, and where: ``unexpected 'bar' at column 4``.

    Columns count characters before the problem (0 is the first), as jmespath's own messages do."""
    if isinstance(exc, EmptyExpressionError):
        return "the expression is empty"
    if isinstance(exc, LexerError):
        return f"{_lower(exc.message)} at column {exc.lexer_position}"
    if isinstance(exc, IncompleteExpressionError):
        return f"incomplete expression: expected more at column {exc.lex_position}"
    if isinstance(exc, ParseError):
        found = "the end" if exc.token_type == "EOF" else repr(exc.token_value)
        expecting = _EXPECTING.fullmatch(exc.msg)
        if expecting:
            names = [_token(t.strip(" '\"")) for t in expecting.group(1).split(",")]
            wanted = ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else names[0]
            return f"expected {wanted} at column {exc.lex_position}, found {found}"
        if exc.msg.startswith("Unexpected token"):
            return f"unexpected {found} at column {exc.lex_position}"
        return f"{_lower(exc.msg)} at column {exc.lex_position} ({found})"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


_EXPECTING = re.compile(r"Expecting: \[?(.*?)\]?, got: .*")
_TOKENS = {
    "quoted_identifier": "a quoted name",
    "unquoted_identifier": "a name",
    "lbracket": "'['",
    "rbracket": "']'",
    "lbrace": "'{'",
    "rbrace": "'}'",
    "lparen": "'('",
    "rparen": "')'",
    "colon": "':'",
    "comma": "','",
    "dot": "'.'",
    "star": "'*'",
    "number": "a number",
}


def _token(name: str) -> str:
    return _TOKENS.get(name, name)


def _lower(message: str) -> str:
    return message[:1].lower() + message[1:]


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
    # az's tsv (knack's): a list is a line per element, anything else one line.
    return [_row(item) for item in obj] if isinstance(obj, list) else [_row(obj)]


def _row(item: Any) -> list[Any]:
    # An object's scalars in order (its nested values omitted); a list's elements, a nested value
    # as an empty cell so the columns stay aligned (``--query "[].[name, tags]"``); a scalar alone.
    if isinstance(item, dict):
        return [v for v in item.values() if not isinstance(v, dict | list)]
    if isinstance(item, list):
        return [None if isinstance(v, dict | list) else v for v in item]
    return [item]


def _tsv_cell(value: Any) -> str:
    return "" if value is None else str(value)
