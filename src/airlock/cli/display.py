"""How the CLI writes sizes, rates, durations and digests for people: IEC units (KiB, MiB, GiB, MiB/s)
everywhere, digests shortened as docker shortens image ids."""

from __future__ import annotations

import math

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def _scale(n: float) -> int:
    """The index in _UNITS that shows ``n`` bytes with 1 to 4 digits before the point."""
    i = 0
    while i < len(_UNITS) - 1 and abs(n) >= 1024 ** (i + 1):
        i += 1
    return i


def _number(n: float, i: int) -> str:
    return f"{n:.0f}" if i == 0 else f"{n / 1024**i:.1f}"


def size(n: int) -> str:
    """``12.3 MiB``; bytes as a whole number (``512 B``)."""
    i = _scale(n)
    return f"{_number(n, i)} {_UNITS[i]}"


def size_pair(done: int, total: int) -> str:
    """``12.3/45.6 MiB``: both in the unit of ``total``, so the two can be compared at a glance."""
    i = _scale(max(total, done))
    return f"{_number(done, i)}/{_number(total, i)} {_UNITS[i]}"


def rate(bytes_per_second: float | None) -> str:
    """``3.2 MiB/s`` (``- B/s`` while unknown)."""
    if bytes_per_second is None or not math.isfinite(bytes_per_second):
        return "- B/s"
    return f"{size(round(bytes_per_second))}/s"


def clock(seconds: float | None) -> str:
    """``0:01:05``; ``-:--:--`` while unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "-:--:--"
    whole = math.ceil(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def short_digest(digest: str, hex_chars: int = 12) -> str:
    """``sha256:0123456789ab…``; anything that is not ``algorithm:hex`` is returned as it is."""
    algorithm, sep, hexpart = digest.partition(":")
    if not sep or len(hexpart) <= hex_chars:
        return digest
    return f"{algorithm}:{hexpart[:hex_chars]}…"


def middle_cut(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters, its middle replaced by ``…`` when it is longer
    (the head says what, the tail which: ``export → file:///m…/batch1.tar``)."""
    if len(text) <= width:
        return text
    if width <= 1:
        return "…"[:width]
    head = (width - 1) // 2
    tail = width - 1 - head
    return text[:head] + "…" + (text[-tail:] if tail else "")
