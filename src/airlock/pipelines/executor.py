"""Where pipeline runs execute: the :class:`RunExecutor` port and its in-process adapter.

The control plane records a run, then hands its work to an executor and returns; the work records
its own result in the store. The in-process adapter is a thread pool of this process; a job-queue
adapter (runs on other worker processes) is the scale-out mode's.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

log = logging.getLogger(__name__)


RunHandler = Callable[[str], None]
"""Executes one run by its (lower-cased ARM) id and records its result. It must not raise for a
run's own failures; an exception that escapes it is a bug, logged by the adapter, and leaves the
run to recovery."""


class RunExecutor(Protocol):
    """Calls its handler for a run id, some time after ``submit`` returns. Thread-safe.

    An adapter is built from the :data:`RunHandler` it calls (``make(handler)``), so the work it
    is handed is a run id, never a closure: a job-queue adapter can carry it to another process.
    """

    durable: bool
    """Whether submitted work survives this process (a job queue's does; a thread pool's does not).
    A queued run of a non-durable executor whose process is gone is failed by recovery."""

    def submit(self, run_id: str) -> None:
        """Have the handler execute ``run_id`` (lower-cased ARM id), without waiting for it."""
        ...

    def enqueue(self, run_id: str) -> Callable[[Any], None] | None:
        """For a durable executor: the function that queues ``run_id``'s work on the database
        connection of the transaction recording the run, so that both commit or neither (no run is
        lost between the two). None: call :meth:`submit` once the run is committed."""
        ...

    def pending(self) -> set[str]:
        """The run ids whose work waits or runs anywhere, in one look (a non-durable executor knows
        only its own)."""
        ...

    def is_running(self, run_id: str) -> bool:
        """Whether ``run_id``'s work executes in this process now."""
        ...

    def running(self) -> list[str]:
        """The run ids whose work executes in this process now."""
        ...

    def wait(self, run_id: str, timeout: float | None = None) -> None:
        """Block until ``run_id``'s work ends (at once when it is not executing here).

        Raises:
            TimeoutError: ``timeout`` seconds passed first.
        """
        ...

    def close(self, *, wait: bool = True) -> None:
        """Stop taking work; with ``wait``, let what runs finish, otherwise drop what has not started."""
        ...


class ThreadRunExecutor:
    """The in-process adapter: ``workers`` runs at once on threads named ``run_*``."""

    durable = False

    def __init__(self, handler: RunHandler, workers: int = 2) -> None:
        self._handler = handler
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="run")
        self._futures: dict[str, Future[None]] = {}
        self._lock = threading.Lock()

    def submit(self, run_id: str) -> None:
        with self._lock:
            future = self._pool.submit(self._handler, run_id)
            self._futures[run_id] = future
        future.add_done_callback(lambda done: self._ended(run_id, done))

    def _ended(self, run_id: str, future: Future[None]) -> None:
        if not future.cancelled() and future.exception() is not None:
            exc = future.exception()
            log.error("pipeline run %s: its execution raised %s: %s", run_id, type(exc).__name__, exc)

    def enqueue(self, run_id: str) -> None:
        return None  # a thread may only start once the run is committed: submit() then

    def is_running(self, run_id: str) -> bool:
        with self._lock:
            future = self._futures.get(run_id)
        return future is not None and not future.done()

    def pending(self) -> set[str]:
        with self._lock:
            return {rid for rid, future in self._futures.items() if not future.done()}

    def running(self) -> list[str]:
        with self._lock:
            return [rid for rid, future in self._futures.items() if not future.done()]

    def wait(self, run_id: str, timeout: float | None = None) -> None:
        with self._lock:
            future = self._futures.get(run_id)
        if future is not None:
            future.result(timeout=timeout)

    def close(self, *, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=not wait)
