"""The names the archive CLI tests use for :mod:`airlock.testing.console` (one runner for every CLI test)."""

from __future__ import annotations

from pathlib import Path

from airlock.testing.console import Console
from airlock.testing.console import Result as Run

__all__ = ["Run", "error_message", "run_airlock"]


def run_airlock(*args: str | Path, home: Path, timeout: float = 120.0) -> Run:
    """Run ``airlock ARGS`` hermetically with ``home`` as HOME (see :class:`Console`)."""
    return Console(home=home, env={"COLUMNS": "300"})(*args, timeout=timeout)


def error_message(run: Run, code: int | tuple[int, ...] = 1, *, stdout_empty: bool = True) -> str:
    """The failure contract (:meth:`Result.only_error`); returns the message after ``error:``."""
    return run.only_error(code, stdout_empty=stdout_empty)
