"""The throughput page's numbers and its charts, drawn on the server as SVG (no script, no
charting library): each chart has a ``<title>`` and ``<desc>`` and the same numbers as a table.

The numbers come from the runs' own records in the control plane's database, not from one process's
Prometheus registry: a run's end records the bytes it moved (``response.progress.bytesDone``, the
count ``airlock_transfer_bytes_total`` adds up) and its start and finish times (what
``airlock_pipeline_run_duration_seconds`` observes). So the chart is the same on every replica and
includes the runs of every worker. A bucket's MB/s is the bytes of the runs that ended in it over
the seconds they ran.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from markupsafe import Markup, escape

WINDOWS = {"1h": (timedelta(hours=1), timedelta(minutes=5)), "24h": (timedelta(hours=24), timedelta(hours=1)),
           "7d": (timedelta(days=7), timedelta(hours=6))}  # fmt: skip
MB = 1_000_000


@dataclass
class Bucket:
    start: datetime
    runs: int = 0
    bytes: int = 0
    seconds: float = 0.0

    @property
    def mb_per_s(self) -> float:
        return self.bytes / MB / self.seconds if self.seconds > 0 else 0.0

    def per_hour(self, width: timedelta) -> float:
        return self.runs * 3600 / width.total_seconds()


def buckets(rows: list[dict[str, Any]], window: str, now: datetime) -> tuple[list[Bucket], timedelta]:
    """Finished runs (dashboard run rows) counted into the window's buckets, oldest first."""
    span, width = WINDOWS.get(window, WINDOWS["24h"])
    count = int(span / width)
    first = now - width * count
    out = [Bucket(first + width * (i + 1)) for i in range(count)]
    for row in rows:
        finished = row.get("finished")
        if finished is None or finished <= first or finished > now + width:
            continue
        i = min(count - 1, int((finished - first) / width))
        out[i].runs += 1
        out[i].bytes += int(row.get("bytes_done") or 0)
        out[i].seconds += max(0.001, float(row.get("seconds") or 0))
    return out, width


def _number(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.2f}"


def bar_chart(title: str, unit: str, labels: list[str], values: list[float], css: str) -> Markup:
    """An accessible SVG bar chart (its numbers are also in the page's table)."""
    w, h, left, bottom = 1200, 240, 64, 30
    top = max(values, default=0) or 1.0
    n = max(1, len(values))
    step = (w - left - 8) / n
    ident = css + "-title"
    parts = [
        f'<svg class="chart {escape(css)}" viewBox="0 0 {w} {h}" role="img" aria-labelledby="{ident} {ident}-d">',
        f'<title id="{ident}">{escape(title)}</title>',
        f'<desc id="{ident}-d">{escape(title)}: highest {top:.2f} {escape(unit)}; '
        "the table below lists every value.</desc>",
        f'<line class="axis" x1="{left}" y1="{h - bottom}" x2="{w - 4}" y2="{h - bottom}"/>',
        f'<text class="tick" x="{left - 6}" y="20" text-anchor="end">{_number(top)}</text>',
        f'<text class="tick" x="{left - 6}" y="{h - bottom}" text-anchor="end">0</text>',
    ]
    for i, value in enumerate(values):
        bar = (h - bottom - 16) * value / top
        x = left + i * step
        parts.append(
            f'<rect class="bar" x="{x + 1:.1f}" y="{h - bottom - bar:.1f}" width="{max(1.0, step - 2):.1f}" '
            f'height="{bar:.1f}"><title>{escape(labels[i])}: {value:.2f} {escape(unit)}</title></rect>'
        )
    for i in (0, n // 2, n - 1):
        if i < len(labels):
            parts.append(f'<text class="tick" x="{left + i * step + step / 2:.1f}" y="{h - 8}" text-anchor="middle">'
                         f'{escape(labels[i])}</text>')  # fmt: skip
    parts.append("</svg>")
    return Markup("".join(parts))
