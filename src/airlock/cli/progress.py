"""Progress on stderr, shown only when stderr is a terminal and ``AIRLOCK_NO_PROGRESS`` is not 1.

- :class:`RichProgress`: what the engine reports to (``transfer.options.Progress``) during export,
  import, copy and inspect: one bar line per operation that always fits the terminal width, with
  done/total, rate and ETA in IEC units, and a ``✓`` line above it as each artifact completes.
- :func:`wait_for_run`: waits for a pipeline run as ``ArmClient.wait_for_run`` does, drawing a bar
  from the run's ``properties.response.progress.percentage`` and status, which it polls (the same
  through ``AIRLOCK_ENDPOINT`` and in local mode, where the run executes in this process).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.progress import Progress, Task, TaskID
from rich.text import Text

from airlock.cli import display
from airlock.cli.arm import POLL_INTERVAL, TERMINAL_STATES, ArmClient
from airlock.cli.common import dig

# Cells: a bar narrower than this says nothing; a description cut shorter than this neither.
MIN_BAR = 10
MAX_BAR = 40
MIN_DESCRIPTION = 12
_GAP = "  "


def show_progress() -> bool:
    """Whether to show progress: stderr is a terminal and ``AIRLOCK_NO_PROGRESS`` is not 1."""
    return sys.stderr.isatty() and os.environ.get("AIRLOCK_NO_PROGRESS") != "1"


def bar_line(description: str, fraction: float, fields: Sequence[str], width: int) -> Text:
    """``description ━━━━━──── fields[0]  fields[1]  fields[2]`` in at most ``width`` cells.

    ``fields[0]`` (the amount: ``12.3/45.6 MiB``, ``45%``) is always shown; when the line is too
    narrow the middle field goes first, then the last, then the description; the bar takes what
    is left, up to MAX_BAR cells.
    """
    kept = list(fields)
    right = _GAP.join(kept)
    while len(kept) > 1 and width - len(right) - 1 < MIN_BAR:
        del kept[1 if len(kept) > 2 else -1]
        right = _GAP.join(kept)
    avail = max(0, width - len(right) - 1)  # the space before the fields
    desc_width = min(len(description), max(avail - 1 - MAX_BAR, (avail - 1) // 2))
    if desc_width < MIN_DESCRIPTION and desc_width < len(description):
        desc_width = 0
    bar_width = min(MAX_BAR, avail - (desc_width + 1 if desc_width else 0))
    filled = round(bar_width * min(max(fraction, 0.0), 1.0))
    line = Text(no_wrap=True, overflow="crop", end="")
    if desc_width:
        line.append(display.middle_cut(description, desc_width), style="bold")
        line.append(" ")
    if bar_width > 0:
        line.append("━" * filled, style="bar.finished" if filled == bar_width else "bar.complete")
        line.append("─" * (bar_width - filled), style="bar.back")
        line.append(" ")
    line.append(right)
    line.truncate(width)
    return line


def done_line(reference: str, digest: str, size: int, width: int) -> Text:
    """``✓ samples/app:1.0  sha256:0123456789ab…  12.3 MiB`` in at most ``width`` cells (the digest
    goes first when it is too narrow, then the reference is cut in its middle)."""
    right = _GAP.join((display.short_digest(digest), display.size(size)))
    if 2 + len(reference) + len(_GAP) + len(right) > width:
        right = display.size(size)
    room = max(1, width - 2 - len(_GAP) - len(right))
    line = Text(no_wrap=True, overflow="crop", end="")
    line.append("✓ ", style="green")
    line.append(display.middle_cut(reference, room), style="bold")
    line.append(_GAP + right)
    line.truncate(width)
    return line


def _task_line(task: Task, width: int) -> Text:
    total = int(task.total or 0)
    done = int(task.completed)
    fraction = done / total if total else (1.0 if task.finished else 0.0)
    eta = "ETA " + display.clock(task.time_remaining)
    # Fields padded to their widest, so the bar and description keep their place from frame to frame.
    if task.fields.get("kind") == "run":
        status = str(task.fields.get("status", ""))
        eta = "ETA " + display.clock(_run_remaining(task))
        fields = [f"{min(done, 100)}%".rjust(4), status.ljust(max(len(status), len("Succeeded"))), eta]
    else:
        amount = display.size_pair(min(done, total), total).rjust(len(display.size_pair(total, total)))
        speed = display.rate(task.finished_speed or task.speed).rjust(len("1023.9 MiB/s"))
        fields = [amount, speed, eta]
    return bar_line(task.description, fraction, fields, width)


def _run_remaining(task: Task) -> float | None:
    """A run's ETA at its pace since the watch began: its percentage arrives in steps, seconds apart,
    too few for a rate over recent samples (which is what a byte bar's ETA uses)."""
    if task.finished or task.completed >= 100:
        return 0.0
    if task.completed <= 0 or not task.elapsed:
        return None
    return task.elapsed * (100 - task.completed) / task.completed


class _TaskLine:
    """One task's line, laid out for the width rich renders it at (the terminal's, at each refresh)."""

    def __init__(self, task: Task) -> None:
        self._task = task

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield _task_line(self._task, options.max_width)


class _Bars(Progress):
    def get_renderables(self) -> Iterable[RenderableType]:
        for task in self.tasks:
            if task.visible:
                yield _TaskLine(task)


class RichProgress:
    """Implements :class:`airlock.transfer.options.Progress` with a bar line per operation."""

    def __init__(self, console: Console) -> None:
        self._progress = _Bars(console=console, transient=False)
        self._task: TaskID | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self._progress.stop()

    def begin(self, total_bytes: int, description: str) -> None:
        with self._lock:
            self._task = self._progress.add_task(description, total=total_bytes)

    def advance(self, nbytes: int) -> None:
        if self._task is not None:
            self._progress.advance(self._task, nbytes)

    def note(self, message: str) -> None:
        self._progress.console.print(message, style="dim", highlight=False, markup=False)

    def blobs(self, done: int, total: int) -> None:
        pass  # the bar counts bytes, and a count beside it would not fit 80 columns with the rate and ETA

    def artifact_done(self, reference: str, digest: str, size: int) -> None:
        console = self._progress.console
        console.print(done_line(reference, digest, size, console.width), highlight=False)


def _percentage(doc: dict[str, Any]) -> int:
    raw = dig(doc, "properties", "response", "progress", "percentage")
    try:
        return max(0, min(100, int(float(raw))))
    except (TypeError, ValueError):
        return 0


def wait_for_run(client: ArmClient, path: str) -> dict[str, Any]:
    """Poll the pipeline run at ``path`` until it ends and return it, as ``client.wait_for_run`` does
    (without a terminal, it is that call); on a terminal, with a bar of the run's percentage and status.

    Raises:
        AirlockError: what ``client.get`` raises (the run or the server is gone).
    """
    if not show_progress():
        return client.wait_for_run(path)
    with _Bars(console=Console(stderr=True), transient=False) as bars:
        task: TaskID | None = None
        while True:
            doc: dict[str, Any] = client.get(path)
            props = doc.get("properties") or {}
            state = props.get("provisioningState")
            status = str((props.get("response") or {}).get("status") or state or "")
            percentage = 100 if state == "Succeeded" else _percentage(doc)
            if task is None:
                task = bars.add_task(f"run {doc.get('name', '')}", total=100, kind="run", status=status)
            bars.update(task, completed=percentage, status=status)
            if state in TERMINAL_STATES:
                return doc
            time.sleep(POLL_INTERVAL)
