"""Streaming writer of transfer archives (see :mod:`airlock.archive.format` for the layout)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from airlock.archive.format import BLOCK, member_header, padded
from airlock.errors import ArchiveError

_ZEROS = bytes(BLOCK)


class ArchiveWriter:
    """Writes tar members in order to ``sink``.

    ``sink`` receives every byte exactly once, in order. The writer buffers nothing but headers
    and padding, and hashes nothing: the archive's digest is its catalog's (see
    :mod:`airlock.archive.format`), and the caller verifies what it streams in. ``size`` counts the
    bytes written so far.
    """

    def __init__(self, sink: Callable[[bytes], None]) -> None:
        self._sink = sink
        self.size = 0

    def _out(self, data: bytes) -> None:
        self.size += len(data)
        self._sink(data)

    def add_dir(self, name: str) -> None:
        self._out(member_header(name, 0, directory=True))

    def add_bytes(self, name: str, data: bytes) -> None:
        self.add_stream(name, len(data), (data,))

    def add_stream(self, name: str, size: int, chunks: Iterable[bytes]) -> None:
        """Write one member of exactly ``size`` bytes taken from ``chunks``.

        Raises:
            ArchiveError: ``chunks`` yielded more or fewer bytes than ``size``.
            Whatever ``chunks`` raises (e.g. IntegrityError from a verifying source) propagates.
        """
        self._out(member_header(name, size))
        written = 0
        for chunk in chunks:
            written += len(chunk)
            if written > size:
                raise ArchiveError(f"member {name}: source yielded more than the declared {size} bytes")
            self._out(chunk)
        if written != size:
            raise ArchiveError(f"member {name}: source yielded {written} bytes, expected {size}")
        pad = padded(size) - size
        if pad:
            self._out(_ZEROS[:pad])

    def close(self) -> int:
        """Write the end-of-archive marker (two zero blocks); return the archive's size."""
        self._out(_ZEROS + _ZEROS)
        return self.size
