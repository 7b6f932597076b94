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
        self._thread = threading.Thread(target=self._run, name="archive-hash", daemon=True)
        self._thread.start()
        self._closed = False

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            self._hash.update(item)

    def update(self, data: bytes | memoryview) -> None:
        self._queue.put(data)

    def hexdigest(self) -> str:
        """Wait for everything queued to be hashed; the digest of all of it."""
        self.close()
        return str(self._hash.hexdigest())

    def close(self) -> None:
        """Stop the worker (idempotent); what was queued is still hashed."""
        if not self._closed:
            self._closed = True
            self._queue.put(_END)
            self._thread.join()
