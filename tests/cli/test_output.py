"""The CLI kernel's renderings of a result (``-o``/``--query``), as az prints them."""

from __future__ import annotations

from typing import Any

import pytest
from rich.console import Console

from airlock.cli.output import render


def tsv(obj: Any, query: str | None = None) -> str:
    out: list[str] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("builtins.print", lambda line: out.append(line))
        render(obj, fmt="tsv", query=query, console=Console())
    return "\n".join(out)


# Regression: a list of lists (``--query "volumes[].[index, size, verified]"``) came out one value a
# line; az prints a line per inner list, its values tab-separated.
def test_tsv_of_a_list_of_lists_is_a_row_per_inner_list() -> None:
    volumes = {"volumes": [{"index": 1, "size": 10752, "verified": True}, {"index": 2, "size": 512, "verified": False}]}
    assert tsv(volumes, "volumes[].[index, size, verified]") == "1\t10752\tTrue\n2\t512\tFalse"


@pytest.mark.parametrize(
    ("obj", "printed"),
    [
        ("sha256:abc", "sha256:abc"),  # a scalar: itself
        (["a", "b"], "a\nb"),  # a list of scalars: one a line
        ({"name": "x", "size": 3, "tags": ["1"], "meta": {"k": "v"}, "gone": None}, "x\t3\t"),  # nested omitted
        ([{"name": "x", "size": 3}, {"name": "y", "size": 4}], "x\t3\ny\t4"),  # objects: a line each
        ([["x", ["nested"], None]], "x\t\t"),  # a nested value inside a row: an empty cell, columns kept
    ],
)
def test_tsv_follows_az(obj: Any, printed: str) -> None:
    assert tsv(obj) == printed
