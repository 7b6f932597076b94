"""Hashing a whole archive on its own thread, so it runs on another core than the data path.

The archive's SHA-256 (its ``catalogDigest``) covers every byte in order, so it cannot be split;
but it need not hold up the thread that moves the bytes. :class:`BackgroundHasher` takes chunks
in order into a bounded queue and hashes them on a worker thread (hashlib releases the GIL for
large updates). Profiling showed the in-line hash was about half of the export's main thread.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from typing import Any

_END = object()


class BackgroundHasher:
    """Hashes what :meth:`update` is given, in order, on a worker thread.

    Memory: at most ``max_items`` chunks wait (the callers' chunks are ~1 MiB). The chunks must not
    be mutated after ``update`` (bytes and memoryviews of bytes are safe). Always end with
    :meth:`hexdigest` or :meth:`close`, or the worker waits for more.
    """

    def __init__(self, algorithm: str = "sha256", *, max_items: int = 8) -> None:
        self._hash: Any = hashlib.new(algorithm)
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_items)
        self._error: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="archive-hash", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if self._error is None:
                try:
                    self._hash.update(item)
                except BaseException as exc:  # kept for hexdigest; the queue is still drained
                    self._error = exc

    def update(self, data: bytes | memoryview) -> None:
        if self._closed:
            raise RuntimeError("BackgroundHasher.update after close")
        self._queue.put(data)

    def hexdigest(self) -> str:
        """Wait for everything queued to be hashed; the digest of all of it.

        Raises:
            RuntimeError: the worker failed to hash a chunk (the digest would be wrong).
        """
        self.close()
        if self._error is not None:
            raise RuntimeError(f"hashing the archive failed: {self._error!r}") from self._error
        return str(self._hash.hexdigest())

    def close(self) -> None:
        """Stop the worker (idempotent); what was queued is still hashed."""
        if not self._closed:
            self._closed = True
            self._queue.put(_END)
            self._thread.join()
