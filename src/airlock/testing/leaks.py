"""A check that an error carries no secret, for tests that provoke errors with credentials in play."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["unleaked"]


def unleaked(exc: BaseException, secrets: Iterable[str]) -> str:
    """``str(exc)``, after checking that neither it nor ``repr(exc)`` holds any of ``secrets``.

    Raises AssertionError naming the exception type and the secret's first 6 characters (never the
    whole secret), with the offending text.
    """
    text = f"{exc}\n{exc!r}"
    for secret in secrets:
        assert secret not in text, f"secret {secret[:6]}… leaked into {type(exc).__name__}: {text}"
    return str(exc)
