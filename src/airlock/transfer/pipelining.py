"""Bounded parallelism for blob streams: many transfers in flight, memory capped.

Two shapes, both with at most ``workers`` transfers running and ``window`` chunks buffered each:

- :func:`ordered_fetch` — many sources fetched in parallel, consumed strictly in order (export:
  registry GETs feeding one sequential archive). The consumer streams the head job directly while
  later jobs read ahead into their windows: small blobs arrive whole while a large one streams.
- :class:`FanOut` — one sequential producer feeding many parallel consumers (import: one archive
  stream feeding several registry uploads). The producer blocks only when the current job's
  window is full, so small blobs upload in parallel while a large one streams.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

_POLL = 0.1  # seconds between cancellation checks of a blocked thread


class _End:
    pass


class _Failed:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


_END = _End()


class Cancelled(Exception):
    """Raised inside a worker whose consumer went away."""


def _put(q: queue.Queue[Any], item: Any, cancel: threading.Event) -> None:
    while True:
        if cancel.is_set():
            raise Cancelled()
        try:
            q.put(item, timeout=_POLL)
            return
        except queue.Full:
            continue


def ordered_fetch(
    sources: Sequence[Callable[[], Iterable[bytes]]], *, workers: int, window: int
) -> Iterator[Iterator[bytes]]:
    """Yield one chunk iterator per source, in order, while later sources are read ahead.

    Each source is called in a worker thread; its errors are raised from its iterator in the
    consumer. Every returned iterator must be exhausted before the next is requested. Closing the
    outer iterator (or an error) cancels the workers and waits for them.
    """
    cancel = threading.Event()
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="fetch")
    queues: deque[tuple[queue.Queue[Any], Future[None]]] = deque()
    next_job = 0

    def run(src: Callable[[], Iterable[bytes]], q: queue.Queue[Any]) -> None:
        it = iter(src())
        try:
            for chunk in it:
                _put(q, chunk, cancel)
            _put(q, _END, cancel)
        except Cancelled:
            pass
        except BaseException as exc:
            try:
                _put(q, _Failed(exc), cancel)
            except Cancelled:
                pass
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()

    def top_up() -> None:
        nonlocal next_job
        while next_job < len(sources) and len(queues) < max(1, workers):
            q: queue.Queue[Any] = queue.Queue(maxsize=max(1, window))
            queues.append((q, pool.submit(run, sources[next_job], q)))
            next_job += 1

    def drain(q: queue.Queue[Any]) -> Iterator[bytes]:
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
            q, _fut = queues.popleft()
            yield drain(q)
            top_up()
    finally:
        cancel.set()
        pool.shutdown(wait=True, cancel_futures=True)


class FanOut:
    """Run jobs that consume a chunk stream, fed from one producer thread.

    ``start(job)`` begins ``job(chunks)`` in a worker and returns a ``feed`` function; the producer
    calls ``feed(chunk)`` for every chunk and ``feed(None)`` at the end. ``start`` blocks while
    ``workers`` jobs are running. Job errors are collected by :meth:`join`; a job that fails early
    has the rest of its stream discarded, so the producer never blocks on a dead job.
    """

    def __init__(self, *, workers: int, window: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="upload")
        self._slots = threading.Semaphore(max(1, workers))
        self._window = max(1, window)
        self._cancel = threading.Event()
        self._futures: list[tuple[Any, Future[None]]] = []

    def start(self, key: Any, job: Callable[[Iterator[bytes]], None]) -> Callable[[bytes | memoryview | None], None]:
        while not self._slots.acquire(timeout=_POLL):
            if self._cancel.is_set():
                raise Cancelled()
        q: queue.Queue[Any] = queue.Queue(maxsize=self._window)
        dead = threading.Event()

        def chunks() -> Iterator[bytes]:
            while True:
                try:
                    item = q.get(timeout=_POLL)
                except queue.Empty:
                    if self._cancel.is_set():
                        raise Cancelled() from None
                    continue
                if item is _END:
                    return
                yield item

        def run() -> None:
            try:
                job(chunks())
            finally:
                dead.set()
                self._slots.release()

        fut = self._pool.submit(run)
        self._futures.append((key, fut))

        def feed(chunk: bytes | memoryview | None) -> None:
            item: Any = _END if chunk is None else chunk
            while not dead.is_set():
                if self._cancel.is_set():
                    raise Cancelled()
                try:
                    q.put(item, timeout=_POLL)
                    return
                except queue.Full:
                    continue

        return feed

    def join(self) -> list[tuple[Any, BaseException]]:
        """Wait for every job; return (key, error) for each job that failed."""
        errors: list[tuple[Any, BaseException]] = []
        for key, fut in self._futures:
            exc = fut.exception()
            if exc is not None:
                errors.append((key, exc))
        self._pool.shutdown(wait=True)
        return errors

    def cancel(self) -> None:
        """Stop feeding and wait for the workers (their streams end where they are)."""
        self._cancel.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
