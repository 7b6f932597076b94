"""Bounded parallelism for blob streams: several transfers in flight, memory capped in bytes.

Two shapes, both with at most ``workers`` transfers running and at most ``window`` bytes
buffered for each:

- :func:`ordered_fetch` — many sources fetched in parallel, consumed strictly in order (export:
  registry GETs feeding one sequential archive). The consumer streams the head job directly while
  later jobs read ahead into their windows: small blobs arrive whole while a large one streams.
- :class:`FanOut` — one sequential producer feeding several parallel consumers (import: one
  archive stream feeding registry uploads). The producer blocks only while the current job's
  window is full, so small blobs upload in parallel while a large one streams. A job may also
  read its own stream (:meth:`FanOut.submit`: a large blob read by a ranged read of its own).

Memory bound: ``workers * (window + one chunk)``, plus, for each job that reads its own stream
(:meth:`FanOut.submit`), that stream's own read-ahead (4 MiB from a file, 16 MiB from Azure).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

from airlock.transfer.options import Progress

T = TypeVar("T", bytes, memoryview)

_POLL = 0.1  # seconds between cancellation checks of a blocked thread
_AHEAD = 4  # ordered_fetch: jobs admitted per thread, finished or running, while the byte budget allows


def close_stream(chunks: Iterable[Any]) -> None:
    """Close a chunk iterator if it can be closed (a generator holding a file or a connection)."""
    close = getattr(chunks, "close", None)
    if close is not None:
        close()


def counted(chunks: Iterable[T], progress: Progress) -> Iterator[T]:
    """Pass ``chunks`` through, reporting each one's length to ``progress``.

    Closing the result closes ``chunks`` at once, so a storage read abandoned midway (an import
    jumping past a large blob) releases its read-ahead buffers and threads then, not at the end.
    """
    try:
        for chunk in chunks:
            progress.advance(len(chunk))
            yield chunk
    finally:
        close_stream(chunks)


class Cancelled(Exception):
    """Raised in a thread whose counterpart went away."""


class _End:
    pass


class _Failed:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


_END = _End()


class _ByteQueue:
    """A FIFO bounded by the bytes it holds (an item is always admitted into an empty queue)."""

    def __init__(self, limit: int, cancel: threading.Event) -> None:
        self._items: deque[Any] = deque()
        self._bytes = 0
        self._limit = limit
        self._cancel = cancel
        self._cond = threading.Condition()

    def put(self, item: Any, *, abandon: threading.Event | None = None) -> bool:
        """Append ``item``; False (item dropped) when ``abandon`` is set while waiting for room.

        Raises:
            Cancelled: the pipeline was cancelled.
        """
        size = len(item) if isinstance(item, bytes | bytearray | memoryview) else 0
        with self._cond:
            while self._items and self._bytes + size > self._limit:
                if self._cancel.is_set():
                    raise Cancelled()
                if abandon is not None and abandon.is_set():
                    return False
                self._cond.wait(_POLL)
            if self._cancel.is_set():
                raise Cancelled()
            self._items.append(item)
            self._bytes += size
            self._cond.notify_all()
            return True

    def get(self) -> Any:
        """Pop the oldest item. Raises Cancelled if the pipeline was cancelled while waiting."""
        with self._cond:
            while not self._items:
                if self._cancel.is_set():
                    raise Cancelled()
                self._cond.wait(_POLL)
            item = self._items.popleft()
            if isinstance(item, bytes | bytearray | memoryview):
                self._bytes -= len(item)
            self._cond.notify_all()
            return item


class Sources(Protocol):
    """What :func:`ordered_fetch` reads: ``len()`` sources, each asked for once, in order. A list
    of callables will do; a large export passes one that makes each when it is reached."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int, /) -> Callable[[], Iterable[bytes]]: ...


def ordered_fetch(
    sources: Sources,
    *,
    workers: int,
    window: int,
    sizes: Sequence[int] | None = None,
    max_jobs: int | None = None,
) -> Iterator[Iterator[bytes]]:
    """Yield one chunk iterator per source, in order, while later sources are read ahead.

    Each source runs in a worker thread; its errors are raised from its iterator in the consumer.
    Every returned iterator must be exhausted before the next is requested. Closing the outer
    iterator (or an error) cancels the workers and waits for them.

    With ``sizes`` (each source's length in bytes), a source counts ``min(size, window)`` against
    a budget of ``workers * window`` bytes, and up to ``max_jobs`` run at once while the budget
    allows: many small blobs are fetched at once, in the memory of ``workers`` large ones. Up to
    four times ``max_jobs`` are admitted: a finished source waits whole in its queue for the
    consumer, and its thread goes on to the next, so a slow head does not idle the others.
    """
    cancel = threading.Event()
    slots = max(1, workers)
    jobs_cap = max(slots, max_jobs or slots) if sizes is not None else slots
    # Jobs submitted and not yet consumed: a job that has finished waits, whole in its queue, for
    # the consumer to reach it, and frees its thread meanwhile. Admitting more than there are
    # threads keeps every thread busy while the consumer waits on a slow head of the line.
    ahead = jobs_cap * _AHEAD if sizes is not None else slots
    budget = slots * window
    pool = ThreadPoolExecutor(max_workers=jobs_cap, thread_name_prefix="fetch")
    active: deque[tuple[_ByteQueue, Future[None], int]] = deque()
    reserved = 0
    next_job = 0

    def cost(i: int) -> int:
        return window if sizes is None else min(window, sizes[i])

    def run(src: Callable[[], Iterable[bytes]], q: _ByteQueue) -> None:
        it: Iterator[bytes] = iter(())
        try:
            it = iter(src())
            for chunk in it:
                q.put(chunk)
            q.put(_END)
        except Cancelled:
            pass
        except BaseException as exc:
            try:
                q.put(_Failed(exc))
            except Cancelled:
                pass
        finally:
            close_stream(it)  # releases the HTTP connection of an abandoned download

    def top_up() -> None:
        nonlocal next_job, reserved
        while next_job < len(sources) and len(active) < ahead:
            c = cost(next_job)
            if active and reserved + c > budget:
                return
            q = _ByteQueue(window, cancel)
            active.append((q, pool.submit(run, sources[next_job], q), c))
            reserved += c
            next_job += 1

    def drain(q: _ByteQueue) -> Iterator[bytes]:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.exc
            yield item

    try:
        for _ in range(len(sources)):
            top_up()
            q, _fut, c = active.popleft()
            reserved -= c
            yield drain(q)
            top_up()
    finally:
        cancel.set()
        pool.shutdown(wait=True, cancel_futures=True)


class FanOut:
    """Run jobs that each consume a chunk stream, fed by one producer thread.

    ``start(key, job)`` runs ``job(chunks)`` in a worker and returns ``feed``; the producer calls
    ``feed(chunk)`` for every chunk and ``feed(None)`` at the end. ``start`` blocks while
    ``workers`` jobs run — or, for a job started with its ``size``, while the jobs running hold
    the budget of ``workers * window`` bytes (each counts ``min(size, window)``) or ``max_jobs``
    run: small blobs upload many at once in the memory of ``workers`` large ones. A job that fails
    early has the rest of its stream dropped, so the producer never blocks on a dead job;
    :meth:`join` reports (key, error) for each failure. Only failures are kept, not every job.
    """

    def __init__(self, *, workers: int, window: int, max_jobs: int | None = None) -> None:
        slots = max(1, workers)
        self._max_jobs = max(slots, max_jobs or slots)
        self._pool = ThreadPoolExecutor(max_workers=self._max_jobs, thread_name_prefix="upload")
        self._budget = slots * window
        self._window = window
        self._cond = threading.Condition()
        self._running = 0
        self._reserved = 0
        self._cancel = threading.Event()
        self._errors: list[tuple[Any, BaseException]] = []

    def _acquire(self, cost: int) -> None:
        with self._cond:
            while self._running and (self._running >= self._max_jobs or self._reserved + cost > self._budget):
                if self._cancel.is_set():
                    raise Cancelled()
                self._cond.wait(_POLL)
            if self._cancel.is_set():
                raise Cancelled()
            self._running += 1
            self._reserved += cost

    def _acquire_for(self, size: int | None) -> int:
        """Wait for room for a job of ``size`` bytes (None: a stream, a window); return what it holds."""
        cost = self._window if size is None else min(size, self._window)
        self._acquire(cost)
        return cost

    def _release(self, cost: int) -> None:
        with self._cond:
            self._running -= 1
            self._reserved -= cost
            self._cond.notify_all()

    def _launch(self, key: Any, run: Callable[[], None]) -> None:
        def settle(fut: Future[None]) -> None:
            exc = None if fut.cancelled() else fut.exception()
            if exc is not None:
                with self._cond:
                    self._errors.append((key, exc))

        self._pool.submit(run).add_done_callback(settle)

    def start(
        self, key: Any, job: Callable[[Iterator[bytes]], None], *, size: int | None = None
    ) -> Callable[[bytes | memoryview | None], None]:
        cost = self._acquire_for(size)
        q = _ByteQueue(self._window, self._cancel)
        dead = threading.Event()

        def chunks() -> Iterator[bytes]:
            while True:
                item = q.get()
                if item is _END:
                    return
                yield item

        def run() -> None:
            try:
                job(chunks())
            finally:
                dead.set()
                self._release(cost)

        self._launch(key, run)

        def feed(chunk: bytes | memoryview | None) -> None:
            if not dead.is_set():
                q.put(_END if chunk is None else chunk, abandon=dead)

        return feed

    def submit(self, key: Any, job: Callable[[], None], *, size: int | None = None) -> None:
        """Run ``job()`` in a worker, under the same limits and failure reporting as :meth:`start`;
        blocks while they are reached. ``job`` reads its own stream (it costs a window), or holds
        ``size`` bytes already read (it costs those: a small blob read whole, which saves the
        stream's hand-over between threads)."""
        cost = self._acquire_for(size)

        def run() -> None:
            try:
                if not self._cancel.is_set():
                    job()
            finally:
                self._release(cost)

        self._launch(key, run)

    def cancellable(self, chunks: Iterable[T]) -> Iterator[T]:
        """Pass ``chunks`` through until :meth:`cancel`, then raise Cancelled (for submitted jobs)."""
        for chunk in chunks:
            if self._cancel.is_set():
                raise Cancelled()
            yield chunk

    def first_error(self) -> tuple[Any, BaseException] | None:
        """(key, error) of a job that has already failed, if any; does not wait."""
        with self._cond:
            return self._errors[0] if self._errors else None

    def join(self) -> list[tuple[Any, BaseException]]:
        """Wait for every job; return (key, error) for each job that failed."""
        self._pool.shutdown(wait=True)
        with self._cond:
            return list(self._errors)

    def cancel(self) -> None:
        """Stop all jobs where they are and wait for the workers."""
        self._cancel.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
