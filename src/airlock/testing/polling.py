"""Waiting for a condition in tests: poll it, with a deadline, instead of sleeping and then asserting."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal, TypeVar

T = TypeVar("T")


def wait_until(
    check: Callable[[], T | Literal[False] | None], *, timeout: float = 30.0, interval: float = 0.1, what: str = ""
) -> T:
    """The first truthy value ``check()`` returns, polled every ``interval`` seconds (so never the None or
    False that ``check`` may return meanwhile: its type says so).

    Raises:
        AssertionError: ``timeout`` seconds passed first (naming ``what``).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout:g} s: {what or check}")
        time.sleep(interval)
