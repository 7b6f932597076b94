"""Profile one airlock export (registry → file) and one import (file → fresh registry) with py-spy.

    .venv/bin/pip install py-spy          # a profiling tool, deliberately not a project dependency
    .venv/bin/python -m bench.profile_airlock [--subset layers|big|all] [--gil] [--native]

Uses the benchmark's cached test set (``bench.image_set``; the default full-size set) and its source registry.
``layers`` profiles the 10 x 5 x 20 MiB images, ``big`` the image with the single large layer. py-spy samples
every thread (``--threads``) including idle ones (``--idle``), so the report is a wall-clock breakdown per
thread role (the main thread; the worker threads together): which line each spent its time in, waiting
included (a worker blocked on a full window shows as ``Condition.wait``). A C call (``sha.update``,
``os.write``, a socket read) counts for the Python line that makes it. Raw stacks go to
``bench/work/profile/<subset>-<op>.txt`` (collapsed-stack format, for speedscope or flamegraph.pl).
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from airlock.testing.registry_server import RegistryServer
from bench.image_set import SetSpec, open_test_set
from bench.measuring import airlock_argv, drop_caches, wait_for_quiet
from bench.workspace import MiB, say

PROFILE_DIR = Path(__file__).resolve().parent / "work" / "profile"
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?):(?P<line>\d+)\)$")


def _short(frame: str) -> str:
    """``func (path/to/airlock/x/y.py:12)`` → ``func (x/y.py:12)``."""
    m = _FRAME.match(frame)
    if not m:
        return frame
    path = m["file"]
    for marker in ("/site-packages/", "/src/airlock/", "/lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{m['func']} ({path}:{m['line']})"


def _function(frame: str) -> str:
    """A frame without its line number, to add up a function's lines."""
    return re.sub(r":\d+\)$", ")", frame)


_WAITS = ("Condition.wait", "_worker (concurrent/futures/thread.py:81)", "Thread._stop", "Event.wait")


def summarize(raw: Path, top: int) -> dict[str, object]:
    """Per thread role (main, workers): where the threads' wall time went, by line, and by function."""
    samples: list[tuple[str, list[str], int]] = []
    main_tids: set[str] = set()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not (stack and count.isdigit()):
            continue
        frames = stack.split(";")
        thread = re.match(r"thread \((\w+)\)", frames[0])
        if thread and "MainThread" in frames[0]:
            main_tids.add(thread[1])
        samples.append((thread[1] if thread else "?", [_short(f) for f in frames[1:] if _FRAME.match(f)], int(count)))
    roles: dict[str, dict[str, collections.Counter[str]]] = {}
    for tid, frames, n in samples:
        if not frames:
            continue
        role = "main thread" if tid in main_tids else "worker threads"
        r = roles.setdefault(role, {k: collections.Counter() for k in ("all", "lines", "inclusive")})
        r["all"]["samples"] += n
        leaf = frames[-1]
        caller = frames[-2].split(" (")[0] if len(frames) > 1 else ""
        r["lines"][f"{leaf} <- {caller}" if caller else leaf] += n
        for f in {_function(f) for f in frames}:
            r["inclusive"][f] += n
    out: dict[str, object] = {}
    for role, r in roles.items():
        total = r["all"]["samples"] or 1
        waiting = sum(n for k, n in r["lines"].items() if any(w in k for w in _WAITS))
        out[role] = {
            "samples": total,
            "waiting_pct": round(100 * waiting / total, 1),
            "lines": [(k, round(100 * v / total, 1)) for k, v in r["lines"].most_common(top)],
            "inclusive": [
                (k, round(100 * v / total, 1))
                for k, v in r["inclusive"].most_common(top + 25)
                if not k.startswith(("Thread.", "_worker", "<module>", "run (", "_WorkItem", "Context.", "Typer"))
                and "typer" not in k
            ][:top],
        }
    return out


def profile(name: str, argv: Sequence[str], args: argparse.Namespace) -> dict[str, Any]:
    pyspy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if pyspy is None:
        raise SystemExit("py-spy is not installed: .venv/bin/pip install py-spy")
    PROFILE_DIR.mkdir(parents=True, exist_ok=True)
    raw = PROFILE_DIR / f"{args.subset}-{name}.txt"
    cmd = [pyspy, "record", "--format", "raw", "--rate", str(args.rate), "--threads", "--idle", "-o", str(raw)]
    if args.gil:
        cmd.append("--gil")
    if args.native:
        cmd.append("--native")
    waited = wait_for_quiet(args.quiet_wait)
    drop_caches()
    started = time.perf_counter()
    done = subprocess.run([*cmd, "--", *argv], capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{name} failed under py-spy ({done.returncode}):\n{done.stderr[-3000:]}")
    result = summarize(raw, args.top)
    result["seconds"] = round(seconds, 2)
    result["waited_for_quiet_s"] = round(waited, 1)
    result["raw"] = str(raw)
    return result


def report(name: str, result: dict[str, Any], mib: float) -> None:
    seconds = float(result["seconds"])
    say(f"\n== {name}: {seconds:.2f} s under py-spy ({mib / seconds:.0f} MiB/s); raw stacks {result['raw']}")
    for role in ("main thread", "worker threads"):
        data = result.get(role)
        if not data:
            continue
        say(f"  {role}: {data['samples']} samples, {data['waiting_pct']}% waiting (queue/condition/idle pool)")
        say("    by line (share of the role's wall time):")
        for what, share in data["lines"]:
            say(f"      {share:5.1f}%  {what}")
        say("    by function, callees included:")
        for what, share in data["inclusive"]:
            say(f"      {share:5.1f}%  {what}")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profile_airlock", description=__doc__.split("\n\n")[0])
    p.add_argument("--subset", choices=["layers", "big", "all"], default="layers")
    p.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--gil", action="store_true", help="only samples holding the GIL (py-spy --gil)")
    p.add_argument("--native", action="store_true", help="include C frames (py-spy --native)")
    p.add_argument("--concurrency", type=int)
    p.add_argument("--quiet-wait", type=float, default=20, help="wait up to this long for other processes to idle")
    args = p.parse_args(argv)

    spec = SetSpec(seed=4, images=10, layers=5, layer_mib=20, big_mib=1024)
    test_set, source = open_test_set(spec)
    images = [
        i for i in test_set.images if args.subset == "all" or (i.repository == "bench/big") == (args.subset == "big")
    ]
    mib = sum(i.manifest_size + sum(s for _, s in i.blobs) for i in images) / MiB
    extra = ["--concurrency", str(args.concurrency)] if args.concurrency else []
    archive = PROFILE_DIR / f"{args.subset}.tar"
    results: dict[str, dict[str, Any]] = {}
    target = None
    try:
        PROFILE_DIR.mkdir(parents=True, exist_ok=True)
        archive.unlink(missing_ok=True)
        export = [
            *airlock_argv(),
            "export",
            "--source-registry",
            source.url,
            "--artifacts",
            *(i.reference for i in images),
            "--target",
            archive.as_uri(),
            *extra,
        ]
        results["export"] = profile("export", export, args)
        report(f"airlock export ({args.subset}, {mib:.0f} MiB) → file", results["export"], mib)
        target = RegistryServer.start(PROFILE_DIR, name=f"target-{args.subset}")
        importing = [*airlock_argv(), "import", "--source", archive.as_uri(), "--target-registry", target.url, *extra]
        results["import"] = profile("import", importing, args)
        report(f"airlock import ({args.subset}, {mib:.0f} MiB) ← file", results["import"], mib)
    finally:
        source.stop()
        if target is not None:
            target.stop()
            shutil.rmtree(target.data_dir, ignore_errors=True)
        archive.unlink(missing_ok=True)
    (PROFILE_DIR / f"{args.subset}-summary.json").write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
