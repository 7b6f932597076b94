"""CI runs the benchmark's smoke version: the harness works end to end (the numbers are `make bench`'s job)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_smoke_runs_and_prints_the_table(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", "--smoke", "--results-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for row in ("airlock export registry → file", "airlock import file → registry", "skopeo"):
        assert row in done.stdout, row
    assert list(tmp_path.glob("*.json")), "results were not written"


def test_many_small_bench_smoke_measures_airlock_skopeo_sync_and_bare_requests_and_writes_its_table(
    tmp_path: Path,
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.many_small", "--smoke", "--results-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    table = (tmp_path / "many_small.md").read_text()
    for op in ("airlock.export", "airlock.import", "skopeo.export", "skopeo.import", "bare.export", "bare.import"):
        assert f"| 20 | {op} | " in table, op
    assert "FAILED" not in table
    airlock_export = next(line for line in table.splitlines() if line.startswith("| 20 | airlock.export | "))
    cells = airlock_export.split(" | ")
    assert cells[4].endswith("%"), airlock_export  # its share of the bare requests' rate
    assert float(cells[10]) > 0 and cells[11].removesuffix(" |").endswith("%"), airlock_export  # ceiling, 5x's share
