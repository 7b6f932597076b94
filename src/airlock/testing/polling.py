"""Waiting for a condition in tests: poll it, with a deadline, instead of sleeping and then asserting."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(check: Callable[[], T], *, timeout: float = 30.0, interval: float = 0.1, what: str = "") -> T:
    """The first truthy value ``check()`` returns, polled every ``interval`` seconds.

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
