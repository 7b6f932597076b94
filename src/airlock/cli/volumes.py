"""``--volume-size``: the CLI's part of multi-volume bundles (see :mod:`airlock.archive.volumes`)."""

from __future__ import annotations

from typing import Annotated

import typer

from airlock.archive.volumes import parse_volume_size

VolumeSizeOpt = Annotated[
    str | None,
    typer.Option(
        "--volume-size",
        help="Write volumes of at most SIZE each (e.g. 4GiB, 700MB, 512KiB; at least 64KiB) when the archive is "
        "larger: TARGET is the first volume, TARGET.002, TARGET.003, ... the others, each listed under `volumes`. "
        "Import, inspect and copy take the first volume's URI and read the others beside it.",
        metavar="SIZE",
    ),
]


def volume_size(text: str | None) -> int | None:
    """Bytes ``--volume-size`` asks for, or None without it. Raises UsageError: not a size, or under 64 KiB."""
    return None if text is None else parse_volume_size(text)


PipelineVolumeSizeOpt = Annotated[
    str | None,
    typer.Option(
        "--volume-size",
        help="airlock's extension (properties.volumeSize): the pipeline's runs write multi-volume bundles of "
        "volumes of at most SIZE each (e.g. 4GiB, 700MB, 512KiB; at least 64KiB), listed in the run's volumes.",
        metavar="SIZE",
    ),
]


def pipeline_volume_size(text: str) -> str:
    """``text`` as given, once it reads as a size (the server checks it again). Raises UsageError: it does not."""
    parse_volume_size(text)
    return text.strip()
