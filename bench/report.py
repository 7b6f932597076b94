"""The throughput benchmark's report: each operation's label, the skopeo operation and the raw limits each
airlock operation is compared with; :func:`summarize` (per operation: medians over the repetitions, the ratio to
skopeo and the fraction of the limit), :func:`table_rows` with :func:`render_text` and :func:`render_markdown`
(the table), :func:`targets` (issue 4's targets, met or not), :func:`machine` (the host and the tools' versions,
which ``bench.many_small`` records too) and :func:`write_results` (``<timestamp>.json`` and ``latest.md``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from airlock.testing.skopeo import run_skopeo
from bench.measuring import Run
from bench.steps import Bench
from bench.workspace import REPO_ROOT, RESULTS_DIR, SMOKE_RESULTS_DIR, WORK_DIR, MiB

LABELS = {
    "airlock.export.file": "airlock export registry → file",
    "airlock.import.file": "airlock import file → registry",
    "skopeo.export": "skopeo registry → oci-archive (per image)",
    "skopeo.import": "skopeo oci-archive → registry (per image)",
    "airlock.export.azure": "airlock export registry → Azurite",
    "airlock.import.azure": "airlock import Azurite → registry",
    "limit.sha256": "limit: SHA-256, hashlib (file in page cache)",
    "limit.get": "limit: registry GET of the largest blob (cold)",
    "limit.disk_write": "limit: disk write + fsync",
    "limit.put": "limit: registry monolithic PUT, 1 stream (cold)",
    "limit.azure_upload": "limit: azure-storage-blob upload (max_concurrency=4)",
    "limit.azure_download": "limit: azure-storage-blob download (max_concurrency=4)",
}
# For each airlock operation: the skopeo operation it is compared with, and its limit (min of these).
SKOPEO_OF = {
    "airlock.export.file": "skopeo.export",
    "airlock.import.file": "skopeo.import",
    "airlock.export.azure": "skopeo.export",
    "airlock.import.azure": "skopeo.import",
}
LIMITS_OF = {
    "airlock.export.file": ("limit.get", "limit.sha256", "limit.disk_write"),
    "airlock.import.file": ("limit.sha256", "limit.put"),
    "airlock.export.azure": ("limit.azure_upload",),
    "airlock.import.azure": ("limit.azure_download",),
}
LIMIT_NAMES = {
    "limit.get": "GET",
    "limit.sha256": "SHA",
    "limit.disk_write": "disk",
    "limit.put": "PUT",
    "limit.azure_upload": "SDK up",
    "limit.azure_download": "SDK down",
}


def summarize(runs: Sequence[Run]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for op in LABELS:
        mine = [r for r in runs if r.op == op]
        good = [r for r in mine if r.ok]
        if not mine:
            continue
        rates = [r.mib_s for r in good]
        rss = [r.rss_mib for r in good if r.rss_mib is not None]
        cpu = [r.cpu_seconds / (r.bytes / 2**30) for r in good if r.cpu_seconds is not None and r.bytes]
        server = [r.server_cpu / (r.bytes / 2**30) for r in good if r.server_cpu is not None and r.bytes]
        busy = [r.busy_cores for r in good if r.busy_cores is not None]
        other = [r.other_cpu for r in mine if r.other_cpu is not None]
        out[op] = {
            "runs": len(mine),
            "failed": len(mine) - len(good),
            "mib_s_median": statistics.median(rates) if rates else None,
            "mib_s_min": min(rates) if rates else None,
            "mib_s_max": max(rates) if rates else None,
            "seconds_median": statistics.median(r.seconds for r in good) if good else None,
            "peak_rss_mib": max(rss) if rss else None,
            "cpu_s_per_gib": statistics.median(cpu) if cpu else None,
            "server_cpu_s_per_gib": statistics.median(server) if server else None,
            "busy_cores": statistics.median(busy) if busy else None,
            "other_load_cores": statistics.median(other) if other else None,
            "bytes": mine[0].bytes,
        }
    for op, summary in out.items():
        rate = summary["mib_s_median"]
        sk = out.get(SKOPEO_OF.get(op, ""), {}).get("mib_s_median")
        summary["vs_skopeo"] = rate / sk if rate and sk else None
        limits = [(name, out.get(name, {}).get("mib_s_median")) for name in LIMITS_OF.get(op, ())]
        known = [(name, v) for name, v in limits if v]
        if known and rate and len(known) == len(limits):
            name, value = min(known, key=lambda kv: kv[1])
            summary["limit"] = {"op": name, "mib_s": value}
            summary["of_limit"] = rate / value
    return out


def table_rows(summary: dict[str, dict[str, Any]]) -> list[list[str]]:
    rows = [
        [
            "operation",
            "MiB/s median (min-max)",
            "vs skopeo",
            "of limit",
            "peak RSS MiB",
            "CPU s/GiB",
            "servers' CPU s/GiB",
            "busy cores",
            "other load",
        ]
    ]
    for op, s in summary.items():
        if s["mib_s_median"] is None:
            rate = f"FAILED ({s['failed']}/{s['runs']})"
        else:
            rate = f"{s['mib_s_median']:.0f} ({s['mib_s_min']:.0f}-{s['mib_s_max']:.0f})"
            if s["failed"]:
                rate += f", {s['failed']} failed"
        ratio = f"{s['vs_skopeo']:.2f}x" if s.get("vs_skopeo") else ""
        limit = ""
        if s.get("of_limit"):
            limit = f"{100 * s['of_limit']:.0f}% of {s['limit']['mib_s']:.0f} ({LIMIT_NAMES[s['limit']['op']]})"
        rss = f"{s['peak_rss_mib']:.0f}" if s.get("peak_rss_mib") is not None else ""
        if op.startswith("skopeo") and rss:
            rss += " (skopeo)"
        cpu = f"{s['cpu_s_per_gib']:.1f}" if s.get("cpu_s_per_gib") is not None else ""
        other = f"{s['other_load_cores']:.2f}" if s.get("other_load_cores") is not None else ""
        server = f"{s['server_cpu_s_per_gib']:.1f}" if s.get("server_cpu_s_per_gib") else ""
        busy = f"{s['busy_cores']:.2f}" if s.get("busy_cores") is not None else ""
        rows.append([LABELS[op], rate, ratio, limit, rss, cpu, server, busy, other])
    return rows


def render_text(rows: list[list[str]]) -> str:
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render_markdown(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(lines)


def targets(summary: dict[str, dict[str, Any]]) -> list[str]:
    """Issue 4's targets, each with the measured value and whether it is met."""

    def get(op: str, key: str) -> float | None:
        value = summary.get(op, {}).get(key)
        return float(value) if value is not None else None

    lines = []

    def check(text: str, value: float | None, goal: float, fmt: str, *, at_most: bool = False) -> None:
        if value is None:
            lines.append(f"- {text}: not measured")
            return
        met = value <= goal if at_most else value >= goal
        lines.append(f"- {text}: {fmt.format(value)} — {'met' if met else 'NOT met'}")

    check("export → file ≥ 3x skopeo", get("airlock.export.file", "vs_skopeo"), 3.0, "{:.2f}x")
    of = get("airlock.export.file", "of_limit")
    check("export → file ≥ 60% of min(GET, SHA, disk)", None if of is None else 100 * of, 60, "{:.0f}%")
    check("import ← file ≥ 2x skopeo", get("airlock.import.file", "vs_skopeo"), 2.0, "{:.2f}x")
    for op, text in (("airlock.export.azure", "export → Azurite"), ("airlock.import.azure", "import ← Azurite")):
        of = get(op, "of_limit")
        check(f"{text} ≥ 90% of the raw SDK rate", None if of is None else 100 * of, 90, "{:.0f}%")
    rss = [v for op in SKOPEO_OF if (v := get(op, "peak_rss_mib")) is not None]
    check("peak RSS of every airlock process ≤ 150 MiB", max(rss) if rss else None, 150, "{:.0f} MiB", at_most=True)
    return lines


def _version(argv: Sequence[str]) -> str:
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=30, check=False)
    except OSError as exc:
        return f"unavailable ({exc.strerror})"
    return (done.stdout or done.stderr).strip().splitlines()[0] if (done.stdout or done.stderr).strip() else "?"


def machine() -> dict[str, Any]:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    osname = platform.platform()
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                osname = line.split("=", 1)[1].strip('"')
    import airlock

    azurite = "?"
    with contextlib.suppress(OSError, ValueError, KeyError):
        pkg = REPO_ROOT / ".tools/node_modules/azurite/package.json"
        azurite = json.loads(pkg.read_text())["version"]

    def dist(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "?"

    git = _version(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--", "src"], capture_output=True, text=True, check=False
    ).stdout.strip()
    fs = _version(["findmnt", "-no", "SOURCE,FSTYPE", "--target", str(WORK_DIR)])
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "os": osname,
        "kernel": platform.release(),
        "filesystem": fs,
        "python": platform.python_version(),
        "airlock": f"{airlock.__version__} (git {git}{', src/ modified' if dirty else ''})",
        "skopeo": run_skopeo("--version", check=False).stdout.strip(),
        "distribution": _version(["/usr/bin/docker-registry", "--version"]),
        "azurite": azurite,
        "azure-storage-blob": dist("azure-storage-blob"),
        "urllib3": dist("urllib3"),
    }


def write_results(
    args: argparse.Namespace,
    bench: Bench,
    summary: dict[str, dict[str, Any]],
    started: dt.datetime,
    host: dict[str, Any],
) -> tuple[Path, Path]:
    results_dir = Path(args.results_dir) if args.results_dir else (SMOKE_RESULTS_DIR if args.smoke else RESULTS_DIR)
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    dropped = [r.cache_dropped for r in bench.runs if r.op != "limit.sha256"]
    doc = {
        "started": started.isoformat(),
        "finished": dt.datetime.now(dt.UTC).isoformat(),
        "argv": sys.argv[1:],
        "smoke": args.smoke,
        "set": {
            **asdict(bench.set.spec),
            "key": bench.set.spec.key,
            "description": bench.set.spec.describe(),
            "payload_bytes": bench.set.payload_bytes,
            "archive_bytes": bench.archive_size,
            "images": [asdict(i) for i in bench.set.images],
        },
        "settings": {
            "repeat": args.repeat,
            "airlock_concurrency": args.concurrency or "default",
            "page_cache_dropped": all(dropped) if dropped else False,
            "skipped": sorted(args.skip),
        },
        "machine": host,
        "summary": summary,
        "runs": [asdict(r) | {"mib_s": r.mib_s} for r in bench.runs],
    }
    json_path = results_dir / f"{stamp}.json"
    json_path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    md = [
        "# airlock benchmark: latest results",
        "",
        f"Measured {started.strftime('%Y-%m-%d %H:%M UTC')} by `{'make bench-smoke' if args.smoke else 'make bench'}`"
        f" ({json_path.name}); {args.repeat} interleaved repetitions, page cache "
        f"{'dropped' if doc['settings']['page_cache_dropped'] else 'NOT dropped'} before each timed step.",
        "",
        f"Machine: {host['cpu']}, {host['cores']} cores, {host['memory_gib']} GiB, {host['os']}, kernel "
        f"{host['kernel']}, Python {host['python']}; airlock {host['airlock']}, {host['skopeo']}, distribution "
        f"{host['distribution'].split()[-1]}, Azurite {host['azurite']}, "
        f"azure-storage-blob {host['azure-storage-blob']}.",
        "",
        f"Set: {bench.set.spec.describe()}: {bench.set.payload_bytes / MiB:.1f} MiB of payload in "
        f"{len(bench.set.images)} images (archive {(bench.archive_size or 0) / MiB:.1f} MiB).",
        "",
        render_markdown(table_rows(summary)),
        "",
        "MiB/s is payload bytes over the wall time of the whole operation, process start-up included; skopeo runs "
        "one `skopeo copy` per image, sequentially. *vs skopeo* compares with skopeo in the same direction; "
        "*of limit* divides by the smallest of the relevant raw limits measured in the same run "
        "(export → file: GET, SHA, disk; import ← file: SHA, registry PUT of one stream; Azurite: the raw SDK rate "
        "for the archive's bytes). Peak RSS is the largest over the repetitions. *CPU s/GiB* is the user + system "
        "time of the airlock (or skopeo) processes per GiB of payload; *servers' CPU* is the same for the registries "
        "and Azurite serving the step; *busy cores* is how many of the machine's cores were busy during the step "
        f"(the machine has {os.cpu_count()}; near that, the step is CPU-bound). *other load* is the median "
        "number of cores kept busy, during the step, by processes that are not the benchmark's (other work on "
        "the machine, kernel writeback): above ~0.2 the rates are disturbed.",
        "",
        "Targets (issue 4):",
        "",
        *targets(summary),
        "",
    ]
    md_path = results_dir / "latest.md"
    md_path.write_text("\n".join(md))
    return json_path, md_path
