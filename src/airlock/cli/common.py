"""Pieces shared by the control-plane command groups: options, output with az-style table columns,
hints on stderr."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.console import Console

from airlock.cli.output import FORMATS, render
from airlock.cli.table import Row as Row  # re-exported: the command groups' column functions return it
from airlock.cli.table import print_table

OutputOpt = Annotated[
    str, typer.Option("--output", "-o", help=f"Output format: {', '.join(FORMATS)}.", show_default=True)
]
QueryOpt = Annotated[
    str | None, typer.Option("--query", help='JMESPath query applied to the output, e.g. "[].name" (as in az).')
]
GroupOpt = Annotated[
    str | None,
    typer.Option(
        "--resource-group",
        "-g",
        help="Resource group. Defaults to the one set with `airlock configure --defaults group=<name>`.",
        show_default=False,
    ),
]
RegistryOpt = Annotated[str, typer.Option("--registry", "-r", help="Name of registry.")]
# RegistryURL.parse's rule, for the help of every option that takes a registry URL.
REGISTRY_SCHEME_RULE = (
    "Without a scheme, localhost, 127.0.0.0/8 and [::1] mean http:// (as Docker treats them), any other host https://."
)

Columns = Callable[[Any], Row]


def emit(obj: Any, fmt: str, query: str | None, columns: Columns | None = None) -> None:
    """Print ``obj`` as ``-o`` asks. With ``-o table`` and no ``--query``, ``columns`` picks and names
    the columns as az's table transformers do (with a query, az shows the query's result as is, in
    the same table style)."""
    if fmt == "table" and columns is not None and not query:
        items = obj if isinstance(obj, list) else [obj]
        print_table([columns(item) for item in items if isinstance(item, dict)])
        return
    render(obj, fmt=fmt, query=query, console=Console())


_only_errors = False


def set_only_errors(value: bool) -> None:
    """``--only-show-errors``: hints and warnings are dropped, errors still print."""
    global _only_errors
    _only_errors = value


def hint(message: str) -> None:
    """A note for the user on stderr (stdout stays machine-readable); dropped by --only-show-errors."""
    if not _only_errors:
        print(message, file=sys.stderr)  # noqa: T201


def accepted_for_az(flag: str, why: str) -> None:
    """A flag ``az`` takes that means nothing here: accepted so scripts run unchanged; -v says so."""
    if logging.getLogger().isEnabledFor(logging.INFO):  # -v, as az shows such warnings
        hint(f"warning: {flag} is accepted for az compatibility: {why}")


def dig(obj: Any, *keys: str) -> Any:
    """``obj[k1][k2]...``, None as soon as a level is missing."""
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def text(value: Any) -> str:
    return "" if value is None else str(value)


def group_of(resource_id: str) -> str:
    """The resource group named in an ARM id ('' when there is none)."""
    parts = resource_id.split("/")
    lowered = [p.lower() for p in parts]
    if "resourcegroups" in lowered:
        i = lowered.index("resourcegroups")
        if i + 1 < len(parts):
            return parts[i + 1]
    return ""
