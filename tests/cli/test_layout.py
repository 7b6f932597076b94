"""The layout rules behind ``-o table`` and the progress lines, at every width (the console-script
tests in test_table_cli.py and test_progress_cli.py check them at 80 and 60 columns)."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from airlock.cli import display
from airlock.cli.progress import MIN_BAR, bar_line, done_line
from airlock.cli.table import format_table, generic_rows, wrap

HEADERS = ["NAME", "PIPELINE", "START_TIME", "STATUS", "ERROR_MESSAGE"]
words = st.text(alphabet="abcdefghij/.:-", min_size=1, max_size=40)
values = st.lists(words, min_size=0, max_size=6).map(" ".join)


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.tuples(*(values for _ in HEADERS)), min_size=1, max_size=5), width=st.integers(40, 200))
def test_table_fits_keeps_headers_whole_and_loses_no_character_of_a_kept_column(
    rows: list[tuple[str, ...]], width: int
) -> None:
    dicts = [dict(zip(HEADERS, row, strict=True)) for row in rows]
    lines = format_table(dicts, width)
    assert all(len(line) <= width for line in lines), lines
    kept = lines[0].split()
    assert kept[0] == "NAME" and set(kept) <= set(HEADERS)  # whole headers, in order, none cut
    assert kept == [h for h in HEADERS if h in kept]
    spans = [(m.start(), m.end()) for m in re.finditer(r"-+", lines[1])]
    for header, (a, b) in zip(kept, spans, strict=True):
        shown = "".join(line[a:b].replace(" ", "") for line in lines[2:])
        assert shown == "".join(d[header].replace(" ", "") for d in dicts)


def test_table_that_fits_is_az_plain_and_unwrapped() -> None:
    lines = format_table([{"NAME": "run1", "STATUS": "Succeeded"}, {"NAME": "run22", "STATUS": ""}], 80)
    assert lines == ["NAME   STATUS", "-----  ---------", "run1   Succeeded", "run22"]
    assert format_table([{"A": "x" * 300}], None)[2] == "x" * 300  # no width: nothing wraps


def test_wrap_breaks_at_spaces_and_slashes_and_cuts_only_words_longer_than_a_line() -> None:
    assert wrap("file:///a/long/path name here", 12) == ["file:///a/", "long/path", "name here"]
    assert wrap("sha256:" + "0" * 20, 10) == ["sha256:000", "0" * 10, "0" * 7]
    assert wrap("", 5) == [""]


def test_generic_rows_take_scalar_keys_as_az_headers() -> None:
    assert generic_rows([{"name": "a", "nested": {"x": 1}, "size": 3}]) == [{"Name": "a", "Size": "3"}]
    assert generic_rows(["x", "y"]) == [{"Result": "x"}, {"Result": "y"}]
    assert generic_rows(None) == [{"Result": ""}]


@settings(max_examples=300, deadline=None)
@given(
    width=st.integers(20, 250),
    total=st.integers(0, 5 * 1024**4),
    part=st.floats(0, 1),
    description=st.text(alphabet="abc →/:.", max_size=120),
)
def test_bar_line_fits_any_width_and_always_shows_the_amount(
    width: int, total: int, part: float, description: str
) -> None:
    done = int(total * part)
    amount = display.size_pair(done, total)
    line = bar_line(description, part, [amount, "123.4 MiB/s", "ETA 0:00:05"], width).plain
    assert len(line) <= width
    if len(amount) + 1 + MIN_BAR <= width:
        assert amount in line
        assert "━" in line or "─" in line


def test_bar_line_gives_up_the_rate_before_the_eta() -> None:
    line = bar_line("export → file:///x.tar", 0.5, ["10.0/20.0 MiB", "3.0 MiB/s", "ETA 0:00:04"], 40).plain
    assert line.endswith("10.0/20.0 MiB  ETA 0:00:04") and "MiB/s" not in line


@given(width=st.integers(10, 200), size=st.integers(0, 10**12))
def test_done_line_fits(width: int, size: int) -> None:
    line = done_line("samples/a/long/repository/name:1.0", "sha256:" + "ab" * 32, size, width).plain
    assert len(line) <= width and line.startswith("✓ ")
    if width >= len("✓ …  ") + len(display.size(size)):
        assert line.endswith(display.size(size))


def test_units_are_iec() -> None:
    assert [display.size(n) for n in (0, 1023, 1024, 1536 * 1024, 5 * 1024**3)] == [
        "0 B",
        "1023 B",
        "1.0 KiB",
        "1.5 MiB",
        "5.0 GiB",
    ]
    assert display.size_pair(512 * 1024, 3 * 1024**2) == "0.5/3.0 MiB"
    assert display.rate(2.5 * 1024**2) == "2.5 MiB/s"
    assert display.clock(65.2) == "0:01:06" and display.clock(None) == "-:--:--"
    assert display.short_digest("sha256:" + "0123456789abcdef" * 4) == "sha256:0123456789ab…"
