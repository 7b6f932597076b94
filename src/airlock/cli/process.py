"""Process settings the CLI makes for itself (library code never touches them)."""

from __future__ import annotations

import ctypes
import os
import sys

# glibc's own ways to set what tune_malloc sets; when any is present, airlock leaves malloc alone.
_MALLOC_SETTINGS = ("GLIBC_TUNABLES", "MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def tune_malloc() -> None:
    """Keep freed stream buffers in the heap instead of returning them to the kernel.

    Transfers allocate and free ~1 MiB chunks by the thousand, on several threads. glibc serves
    such sizes with mmap and trims freed heap tops, so every chunk came back as fresh pages: an
    export of 2 GiB took ~170,000 page faults and more system time than user time. Raising the
    mmap and trim thresholds cut the faults tenfold (measured with /usr/bin/time on the benchmark
    set). Two arenas and a moderate trim threshold keep what is retained small: an import from
    Azure peaked at 146 MiB, where a 128 MiB threshold with an arena per thread reached 227. Only
    glibc has mallopt; elsewhere this is skipped.
    """
    if not sys.platform.startswith("linux"):
        return
    if any(os.environ.get(v) for v in _MALLOC_SETTINGS):
        return  # the operator tuned malloc: theirs wins
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return  # not glibc (musl has no mallopt)
    m_trim_threshold, m_mmap_threshold, m_arena_max = -1, -3, -8
    mallopt(m_mmap_threshold, 32 * 1024 * 1024)  # chunks and blocks come from the heap
    mallopt(m_trim_threshold, 32 * 1024 * 1024)  # some blocks kept for reuse, not more
    mallopt(m_arena_max, 2)  # each arena keeps up to the trim threshold
