"""The many-small benchmark's results: :class:`Measured` (one step's measurement) and ``OPERATIONS`` (the steps, in
the table's order); :func:`summarize` (per count and operation: the medians over the repetitions, the ratios to
skopeo and to the bare requests, and for airlock the all-cores ceiling and what 5x skopeo is of it) and
:func:`render` (the markdown table). ``bench.many_small`` measures and writes them.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

OPERATIONS = ("airlock.export", "skopeo.export", "bare.export", "airlock.import", "skopeo.import", "bare.import")


@dataclass
class Measured:
    op: str  # one of OPERATIONS
    count: int
    rep: int
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    rss_mib: float = 0.0
    processes: int = 1
    busy_cores: float | None = None
    registry_cpu_seconds: float = 0.0  # the source and target registries' user + system time during the step
    ok: bool = True
    error: str | None = None
    detail: dict[str, object] = field(default_factory=dict)

    @property
    def per_s(self) -> float:
        return self.count / self.seconds if self.ok and self.seconds else 0.0


def summarize(results: Sequence[Measured]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for count in sorted({m.count for m in results}):
        for op in OPERATIONS:
            good = [m for m in results if m.count == count and m.op == op and m.ok]
            mine = [m for m in results if m.count == count and m.op == op]
            if not mine:
                continue
            rates = [m.per_s for m in good]
            row: dict[str, object] = {"count": count, "op": op, "runs": len(mine), "failed": len(mine) - len(good)}
            if good:
                row |= {
                    "per_s": statistics.median(rates),
                    "min": min(rates),
                    "max": max(rates),
                    "ms_per_artifact": statistics.median(1000 * m.seconds / count for m in good),
                    "cpu_ms_per_artifact": statistics.median(1000 * m.cpu_seconds / count for m in good),
                    "registry_cpu_ms_per_artifact": statistics.median(
                        1000 * m.registry_cpu_seconds / count for m in good
                    ),
                    "rss_mib": max(m.rss_mib for m in good),
                    "busy_cores": statistics.median(m.busy_cores or 0.0 for m in good),
                }
            rows.append(row)

    def rate(count: object, op: str) -> float | None:
        peer = next((r for r in rows if r["count"] == count and r["op"] == op and "per_s" in r), None)
        return None if peer is None else float(peer["per_s"])  # type: ignore[arg-type]

    for row in rows:
        tool, _, step = str(row["op"]).partition(".")
        if tool == "skopeo" or "per_s" not in row:
            continue
        if (skopeo := rate(row["count"], f"skopeo.{step}")) is not None:
            row["vs_skopeo"] = float(row["per_s"]) / skopeo  # type: ignore[arg-type]
        if tool == "airlock" and (bare := rate(row["count"], f"bare.{step}")) is not None:
            row["of_bare"] = float(row["per_s"]) / bare  # type: ignore[arg-type]
        if tool == "airlock" and (ceiling := _ceiling(rows, row["count"], step)) is not None:
            row["ceiling_per_s"] = ceiling
            if skopeo is not None:
                row["five_x_of_ceiling"] = 5 * skopeo / ceiling
    return rows


def _ceiling(rows: Sequence[dict[str, object]], count: object, step: str) -> float | None:
    """The most artifacts/s that the bare client's requests allow on this machine's cores: all cores
    busy with nothing but the registries' CPU and the bare client's own for each artifact (the bare
    client makes only the requests a step needs; no run reaches all cores, so this is out of reach
    too). None without a bare run."""
    bare = next((r for r in rows if r["count"] == count and r["op"] == f"bare.{step}" and "per_s" in r), None)
    if bare is None:
        return None
    cpu_ms = float(bare["cpu_ms_per_artifact"]) + float(bare["registry_cpu_ms_per_artifact"])  # type: ignore[arg-type]
    return (os.cpu_count() or 1) * 1000 / cpu_ms if cpu_ms > 0 else None


def render(rows: Sequence[dict[str, object]]) -> list[str]:
    out = [
        "| N | operation | artifacts/s median (min-max) | vs skopeo | of bare requests | ms/artifact "
        "| CPU ms/artifact | registries' CPU ms/artifact | peak RSS MiB | busy cores | all-cores ceiling/s "
        "| 5x skopeo is of it |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "per_s" not in r:
            out.append(f"| {r['count']} | {r['op']} | FAILED ({r['failed']}/{r['runs']}) | | | | | | | | | |")
            continue
        ratio = f"{r['vs_skopeo']:.2f}x" if "vs_skopeo" in r else ""
        of_bare = f"{100 * r['of_bare']:.0f}%" if "of_bare" in r else ""  # type: ignore[operator]
        rss = "" if str(r["op"]).startswith("bare") else f"{r['rss_mib']:.0f}"  # bare: in the bench process
        ceiling = f"{r['ceiling_per_s']:.0f}" if "ceiling_per_s" in r else ""
        needs = f"{100 * r['five_x_of_ceiling']:.0f}%" if "five_x_of_ceiling" in r else ""  # type: ignore[operator]
        out.append(
            f"| {r['count']} | {r['op']} | {r['per_s']:.1f} ({r['min']:.1f}-{r['max']:.1f}) | {ratio} | {of_bare} | "
            f"{r['ms_per_artifact']:.1f} | {r['cpu_ms_per_artifact']:.1f} | {r['registry_cpu_ms_per_artifact']:.1f} | "
            f"{rss} | {r['busy_cores']:.2f} | {ceiling} | {needs} |"
        )
    return out
