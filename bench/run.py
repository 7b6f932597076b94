"""Throughput and memory benchmark: airlock side by side with skopeo and the machine's raw limits (issue 4).

Run ``make bench`` (full set, about 2 GiB of payload, 10-20 min on 2 cores) or ``make bench-smoke`` (a tiny set,
seconds); directly: ``.venv/bin/python -m bench.run [--smoke] [--repeat N] ...`` (``--help`` lists the knobs).

What it does, all against real local services started with airlock's own test harness:

1. Builds a fixed, seeded test set once and caches it under ``bench/work/set-<key>/`` (the source registry's
   storage): ``--images`` images of ``--layers`` layers of ``--layer-mib`` MiB each, plus one image with a single
   ``--big-mib`` layer. Layers are tars of one file of seeded random bytes (AES-CTR keystream), wrapped in gzip
   level 0 (stored blocks): valid ``tar+gzip`` layers that cost nothing to build and that skopeo passes through
   untouched. They are streamed straight into the registry (chunked PATCH), so no layout is kept on disk.
2. Measures, interleaved in every repetition (page cache dropped before each timed step when permitted):
   the raw limits (hashlib SHA-256 over the largest blob, one cold GET of it with urllib3, a 1 GiB write with
   fsync, one monolithic registry PUT of it, and the azure-storage-blob SDK upload/download of the archive
   airlock wrote); airlock export → file and import ← file (fresh registry); skopeo registry → one oci-archive
   per image and back (fresh registry, blob-info cache wiped); airlock export → Azurite and import ← Azurite
   (fresh Azurite per repetition, SAS token file). Every airlock and skopeo process is timed and its peak RSS
   taken from ``wait4``'s rusage.
3. Prints the table (MiB/s median and min-max, ratio to skopeo, fraction of the relevant limit, peak RSS),
   writes ``bench/results/<UTC timestamp>.json`` with the machine's description and refreshes
   ``bench/results/latest.md``. Smoke runs write to ``bench/work/results/`` instead, so CI never overwrites
   the published numbers. The exit status is 1 when any step failed.

Throughput is payload bytes (every blob and manifest of the set, once) divided by wall time of the whole
operation, process start-up included, for airlock and skopeo alike.

This module is the command line (:func:`parse_args`, :func:`main`); the test set is in ``bench.image_set``,
the way processes are measured in ``bench.measuring``, the steps in ``bench.steps`` and the table and results
files in ``bench.report``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench.image_set import SetSpec, open_test_set
from bench.measuring import drop_caches
from bench.report import machine, render_text, summarize, table_rows, targets, write_results
from bench.steps import Bench
from bench.workspace import REPO_ROOT, WORK_DIR, MiB, say


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny set (2x2x1 MiB + 8 MiB), 1 repetition: seconds")
    p.add_argument("--seed", type=int, default=4)
    p.add_argument("--images", type=int, help="images of --layers layers (default 10; smoke 2)")
    p.add_argument("--layers", type=int, help="layers per image (default 5; smoke 2)")
    p.add_argument("--layer-mib", type=float, help="MiB per layer (default 20; smoke 1)")
    p.add_argument("--big-mib", type=float, help="MiB of the one-layer image, 0 for none (default 1024; smoke 8)")
    p.add_argument(
        "--disk-mib",
        type=float,
        help="MiB written for the disk limit (default: the set's payload, as much as an export writes)",
    )
    p.add_argument("--repeat", type=int, help="interleaved repetitions (default 3; smoke 1)")
    p.add_argument("--concurrency", type=int, help="airlock --concurrency (default: airlock's own default)")
    p.add_argument(
        "--skip", action="append", default=[], choices=["skopeo", "azure", "limits"], help="leave a group out"
    )
    p.add_argument(
        "--quiet-wait",
        type=float,
        help="before each step, wait up to this many seconds for other processes to go idle (default 20; smoke 0)",
    )
    p.add_argument("--results-dir", help="where to write <timestamp>.json and latest.md")
    p.add_argument("--keep", action="store_true", help="keep the run's scratch directory under bench/work/")
    args = p.parse_args(argv)
    defaults = (
        {"images": 2, "layers": 2, "layer_mib": 1, "big_mib": 8, "repeat": 1, "quiet_wait": 0}
        if args.smoke
        else {
            "images": 10,
            "layers": 5,
            "layer_mib": 20,
            "big_mib": 1024,
            "repeat": 3,
            "quiet_wait": 20,
        }
    )
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.disk_mib is None:
        # The same amount as the export writes: past ~1 GiB of dirty pages the kernel throttles
        # writers to the device's rate (seen here: 3 GB/s for the first GiB, then 230-300 MB/s at
        # times), so a smaller write would overstate the disk limit an export meets.
        args.disk_mib = args.images * args.layers * args.layer_mib + args.big_mib
    if args.repeat < 1 or args.images < 0 or args.layers < 1 or args.layer_mib <= 0 or args.big_mib < 0:
        p.error("sizes and --repeat must be positive")
    if args.images == 0 and args.big_mib == 0:
        p.error("the set would be empty")
    args.skip = set(args.skip)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = dt.datetime.now(dt.UTC)
    spec = SetSpec(args.seed, args.images, args.layers, args.layer_mib, args.big_mib)
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    test_set, source = open_test_set(spec)
    run_dir = Path(tempfile.mkdtemp(prefix=f"run-{started.strftime('%Y%m%dT%H%M%S')}-", dir=WORK_DIR))
    bench = Bench(args, test_set, source, run_dir)
    try:
        host = machine()
        can_drop = drop_caches()
        say(
            f"payload {test_set.payload_bytes / MiB:.1f} MiB in {len(test_set.images)} images; "
            f"page cache {'dropped' if can_drop else 'cannot be dropped (not root)'} before each step; "
            f"scratch {run_dir.relative_to(REPO_ROOT)}"
        )
        for rep in range(args.repeat):
            bench.repetition(rep)
    finally:
        source.stop()
        if not args.keep:
            shutil.rmtree(run_dir, ignore_errors=True)
    summary = summarize(bench.runs)
    rows = table_rows(summary)
    say()
    say(render_text(rows))
    say()
    for line in targets(summary):
        say(line)
    json_path, md_path = write_results(args, bench, summary, started, host)
    say()

    def shown(path: Path) -> str:
        return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)

    say(f"results: {shown(json_path)}, {shown(md_path)}")
    failed = [r for r in bench.runs if not r.ok]
    if failed:
        say(f"{len(failed)} step(s) failed:")
        for r in failed:
            say(f"  {r.op} (repetition {r.rep + 1}): {r.error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
