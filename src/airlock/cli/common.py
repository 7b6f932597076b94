"""Pieces shared by the command groups: options, hints on stderr, small readers of ARM documents. The
options every command has (``-o``, ``--query``, ``-g``) are the kernel's (:mod:`airlock.cli.kernel`)."""

from __future__ import annotations

import logging
import sys
from typing import Annotated, Any

import typer

from airlock.cli.table import Row as Row  # re-exported: the command groups' column functions return it

RegistryOpt = Annotated[str, typer.Option("--registry", "-r", help="Name of registry.")]
# RegistryURL.parse's rule, for the help of every option that takes a registry URL.
REGISTRY_SCHEME_RULE = (
    "Without a scheme, localhost, 127.0.0.0/8 and [::1] mean http:// (as Docker treats them), any other host https://."
)

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
