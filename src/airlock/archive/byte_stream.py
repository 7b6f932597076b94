"""Exact-size reads over a stream of chunks of any size: what the archive readers parse from."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from airlock.errors import ArchiveError


class ByteStream:
    """Exact-size reads over an iterator of chunks of any size; ``on_bytes`` hears of every byte
    handed out (progress counts what the archive parser consumed, not what storage delivered)."""

    def __init__(self, chunks: Iterator[bytes], on_bytes: Callable[[int], None]) -> None:
        self._chunks = chunks
        self._on_bytes = on_bytes
        self._cur = memoryview(b"")
        self.offset = 0  # bytes handed out so far

    def peek(self, n: int) -> bytes:
        """Up to ``n`` bytes ahead (fewer only at the end), without consuming them."""
        if len(self._cur) < n:
            parts, have = [bytes(self._cur)], len(self._cur)
            for chunk in self._chunks:
                parts.append(bytes(chunk))
                have += len(chunk)
                if have >= n:
                    break
            self._cur = memoryview(b"".join(parts))  # only ever a small head is joined
        return bytes(self._cur[:n])

    def jump(self, offset: int, chunks: Iterator[bytes]) -> None:
        """Continue at ``offset`` (ahead of the current one) from ``chunks``, which start there."""
        close_chunks(self._chunks)
        self._chunks = chunks
        self._cur = memoryview(b"")
        self.offset = offset

    def close(self) -> None:
        close_chunks(self._chunks)

    def _fill(self) -> bool:
        while not self._cur:
            try:
                chunk = next(self._chunks)
            except StopIteration:
                return False
            self._cur = memoryview(chunk)
        return True

    def pieces(self, n: int) -> Iterator[memoryview]:
        """Yield exactly ``n`` bytes in pieces; raises ArchiveError if the stream ends first."""
        left = n
        while left:
            if not self._fill():
                raise ArchiveError(f"archive is truncated: it ends {left} bytes early, at byte {self.offset}")
            piece = self._cur[:left]
            self._cur = self._cur[len(piece) :]
            left -= len(piece)
            self.offset += len(piece)
            self._on_bytes(len(piece))
            yield piece

    def read(self, n: int) -> bytes:
        return b"".join(self.pieces(n))

    def drain_zeros(self, limit: int) -> None:
        """Consume the rest of the stream, which must be at most ``limit`` zero bytes."""
        seen = 0
        while self._fill():
            piece, self._cur = self._cur, memoryview(b"")
            seen += len(piece)
            self.offset += len(piece)
            self._on_bytes(len(piece))
            if seen > limit or bytes(piece).strip(b"\0"):
                raise ArchiveError("archive has data after its end marker")


def close_chunks(chunks: Iterator[bytes]) -> None:
    """Close ``chunks`` when it can be closed (a generator, a storage read)."""
    close = getattr(chunks, "close", None)
    if close is not None:
        close()
