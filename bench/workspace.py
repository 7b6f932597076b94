"""What every benchmark module shares: where they keep their files (``BENCH_DIR``, ``REPO_ROOT``; ``WORK_DIR``,
``bench/work/``: cached sets, scratch runs, compiled bytecode; ``RESULTS_DIR``, ``bench/results/``: the published
numbers; ``SMOKE_RESULTS_DIR``: smoke runs' results), the ``MiB`` they count in, and :func:`say`, the progress line
they print.
"""

from __future__ import annotations

import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
WORK_DIR = BENCH_DIR / "work"
RESULTS_DIR = BENCH_DIR / "results"
SMOKE_RESULTS_DIR = WORK_DIR / "results"

MiB = 1024 * 1024


def say(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
