"""``-o table``: az's plain table (headers, a dashed rule, left-aligned cells), fitted to the terminal.

One renderer for every table: the per-resource columns of the control-plane commands, the
data-plane results (:mod:`airlock.cli.results`) and ``--query`` results all print through
:func:`print_table`, so the style never depends on the path taken. A table wider than the terminal
is fitted, never cut: long values wrap within their column (at spaces and after ``/ . @ +``, or
hard when one word is too long), and when even that cannot fit, whole columns are left out (empty ones
first, then the least telling, then from the right). Headers are never cut.
"""

from __future__ import annotations

import json
import os
import re
import sys
from typing import Any

Row = dict[str, str]

_GAP = 2
# Values this short never wrap; words up to _LONG_WORD are kept whole while anything else can give;
# a column of longer words (a digest reference) is narrowed down to _BROKEN if need be.
_SHORT = 12
_LONG_WORD = 24
_BROKEN = 16
# Left out first, in this order, when a table cannot fit: they say the least of their resource
# (a run's trigger flag; its start time, which DURATION and `pipeline-run show` cover).
_DROP_FIRST = ("SOURCE_TRIGGER", "START_TIME")
# Words and spaces; a line may break after "/", ".", "@" or "+" (URIs, media types, references).
_ATOM = re.compile(r"\s+|[^\s/.@+]*[/.@+]+|[^\s/.@+]+")


def terminal_width() -> int | None:
    """The width a table must fit: ``COLUMNS`` when set, else stdout's terminal; None (no limit)
    when stdout is not a terminal, as az does: a piped table stays one line per row."""
    env = os.environ.get("COLUMNS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    if sys.stdout.isatty():
        try:
            return os.get_terminal_size(sys.stdout.fileno()).columns
        except OSError:
            return None
    return None


def print_table(rows: list[Row], width: int | None = None) -> None:
    """Print ``rows`` (each a header → cell mapping, the first row's keys are the columns) to stdout,
    fitted to ``width`` (default: :func:`terminal_width`). Nothing is printed for no rows."""
    lines = format_table(rows, terminal_width() if width is None else width)
    if lines:
        print("\n".join(lines))  # noqa: T201


def format_table(rows: list[Row], width: int | None) -> list[str]:
    """The lines of the table of ``rows``, each at most ``width`` characters (None: no limit), unless
    a single header is wider than that."""
    if not rows:
        return []
    headers = list(rows[0])
    cells = [[" ".join(str(r.get(h, "")).split()) for h in headers] for r in rows]
    columns = [_Column(h, [row[i] for row in cells]) for i, h in enumerate(headers)]
    keep = list(range(len(headers)))
    widths = {i: c.natural for i, c in enumerate(columns)}
    if width is not None:
        order = _drop_order(columns)
        while True:
            widths = _narrowed({k: columns[k] for k in keep}, width)
            if _total(list(widths.values())) <= width or len(keep) == 1:
                break
            keep.remove(order.pop(0))
    lines = ["  ".join(headers[k].ljust(widths[k]) for k in keep)]
    lines.append("  ".join("-" * widths[k] for k in keep))
    for row in cells:
        wrapped = {k: wrap(row[k], widths[k]) for k in keep}
        for n in range(max(len(w) for w in wrapped.values())):
            lines.append("  ".join((wrapped[k][n] if n < len(wrapped[k]) else "").ljust(widths[k]) for k in keep))
    return [line.rstrip() for line in lines]


class _Column:
    """A column's widths: natural (its widest cell or header), and how far it may be narrowed.

    ``soft``: narrower, a word would be broken (words longer than _LONG_WORD are broken anyway);
    ``hard``: narrower, even broken words become unreadable. Short values (up to _SHORT) never wrap.
    """

    def __init__(self, header: str, values: list[str]) -> None:
        self.header = header
        self.empty = not any(values)
        self.natural = max(len(header), *(len(v) for v in values))
        longest = max((len(a) for v in values for a in _ATOM.findall(v) if not a.isspace()), default=0)
        if self.natural <= _SHORT:
            self.soft = self.hard = self.natural
        else:
            self.soft = max(len(header), min(longest, _LONG_WORD))
            self.hard = self.soft if longest <= _LONG_WORD else max(len(header), _BROKEN)


def _total(widths: list[int]) -> int:
    return sum(widths) + _GAP * (len(widths) - 1)


def _drop_order(columns: list[_Column]) -> list[int]:
    """Which columns to leave out first: empty ones, then _DROP_FIRST, then from the right (never the
    first: it names the row)."""
    empty = [i for i, c in enumerate(columns) if c.empty]
    named = [i for h in _DROP_FIRST for i, c in enumerate(columns) if c.header == h]
    out: list[int] = []
    for i in [*empty, *named, *reversed(range(1, len(columns)))]:
        if i not in out and i != 0:
            out.append(i)
    return out


def _narrowed(columns: dict[int, _Column], width: int) -> dict[int, int]:
    """Narrow the widest columns one cell at a time until the table fits: first down to where no
    word would break, then the columns whose words are broken anyway, down to _BROKEN."""
    widths = {k: c.natural for k, c in columns.items()}
    over = _total(list(widths.values())) - width
    for floor in ("soft", "hard"):
        while over > 0:
            room = {k: w for k, w in widths.items() if w > getattr(columns[k], floor)}
            if not room:
                break
            widths[max(room, key=lambda k: room[k])] -= 1
            over -= 1
    return widths


def wrap(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width``: broken at spaces and after ``/ . @ +``; a word longer than a
    line fills the line it starts on and goes on at the next."""
    if len(text) <= width:
        return [text]
    lines: list[str] = []
    line = ""
    space = False
    for atom in _ATOM.findall(text):
        if atom.isspace():
            space = bool(line)
            continue
        lead = " " if space else ""
        space = False
        if len(line) + len(lead) + len(atom) <= width:
            line += lead + atom
            continue
        if len(atom) <= width:
            lines.append(line)
            line = atom
            continue
        if line and len(line) + len(lead) < width:
            line += lead
        else:
            if line:
                lines.append(line)
            line = ""
        room = width - len(line)
        line += atom[:room]
        atom = atom[room:]
        while atom:
            lines.append(line)
            line, atom = atom[:width], atom[width:]
    if line:
        lines.append(line)
    return lines or [""]


def generic_rows(obj: Any) -> list[Row]:
    """Rows for a value without columns of its own (a ``--query`` result, say), as az makes them: one
    row per list element, a column per scalar key (headers as the keys, first letter upper-cased),
    nested values left out; a scalar or a list of scalars is one ``Result`` column."""
    items = obj if isinstance(obj, list) else [obj]
    columns: list[str] = []
    for item in items:
        if isinstance(item, dict):
            columns += [k for k, v in item.items() if k not in columns and not isinstance(v, dict | list)]
    if not columns:
        return [{"Result": cell(i)} for i in items]
    titles = {c: c[:1].upper() + c[1:] for c in columns}
    if len(set(titles.values())) < len(titles):  # "name" and "Name": keep the keys as they are
        titles = {c: c for c in columns}
    return [{titles[c]: cell(item.get(c)) if isinstance(item, dict) else "" for c in columns} for item in items]


def cell(value: Any) -> str:
    """A value as a table shows it: None as nothing, containers as compact JSON."""
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), default=str)
    return str(value)
