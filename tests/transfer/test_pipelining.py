"""Bounded pipelines: order, error propagation, cancellation, memory bound (no services)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator

import pytest

from airlock.testing.polling import wait_until
from airlock.transfer.pipelining import FanOut, ordered_fetch


def source(i: int, n: int = 5, size: int = 1000, delay: float = 0.0) -> Callable[[], Iterable[bytes]]:
    def gen() -> Iterator[bytes]:
        for _ in range(n):
            time.sleep(delay)
            yield bytes([i]) * size

    return gen


def test_ordered_fetch_keeps_order_with_uneven_sources() -> None:
    sources = [source(i, delay=0.002 * (5 - i)) for i in range(6)]
    out = [b"".join(stream) for stream in ordered_fetch(sources, workers=3, window=2500)]
    assert out == [bytes([i]) * 5000 for i in range(6)]


def test_ordered_fetch_raises_a_source_error_in_the_consumer_and_stops_workers() -> None:
    def bad() -> Iterator[bytes]:
        yield b"x"
        raise ValueError("boom")

    streams = ordered_fetch([source(0), bad, source(2)], workers=3, window=100)
    assert b"".join(next(streams)) == b"\0" * 5000
    with pytest.raises(ValueError, match="boom"):
        b"".join(next(streams))
    streams.close()  # type: ignore[attr-defined]
    wait_until(
        lambda: not [t for t in threading.enumerate() if t.name.startswith("fetch")],
        timeout=5,
        what="fetch threads ended",
    )


def test_ordered_fetch_source_failing_when_called_does_not_hang() -> None:
    """Regression: a source that raised before returning an iterator left its consumer blocked."""

    def broken() -> Iterable[bytes]:
        raise OSError("cannot open")

    streams = ordered_fetch([broken], workers=1, window=10)
    with pytest.raises(OSError, match="cannot open"):
        b"".join(next(streams))
    streams.close()  # type: ignore[attr-defined]


def test_ordered_fetch_read_ahead_is_bounded_in_bytes() -> None:
    produced = [0, 0]

    def counting(i: int) -> Callable[[], Iterable[bytes]]:
        def gen() -> Iterator[bytes]:
            for _ in range(100):
                produced[i] += 1000
                yield b"x" * 1000

        return gen

    streams = ordered_fetch([counting(0), counting(1)], workers=2, window=10_000)
    first = next(streams)
    next(first)
    # The second source reads ahead to its window (a chunk past it at most) and then waits: once it
    # has reached the window, an unbounded read-ahead would be far past it by the next look.
    wait_until(lambda: produced[1] >= 10_000, timeout=10, what="the second source reading ahead to its window")
    assert produced[1] <= 12_000
    for _ in first:
        pass
    assert sum(len(c) for c in next(streams)) == 100_000
    assert next(streams, None) is None  # exhausted: the workers are shut down


def test_fanout_runs_jobs_in_parallel_and_reports_failures() -> None:
    fan = FanOut(workers=3, window=4000)
    results: dict[int, int] = {}
    lock = threading.Lock()

    def job(key: int) -> Callable[[Iterator[bytes]], None]:
        def run(chunks: Iterator[bytes]) -> None:
            total = sum(len(c) for c in chunks)
            if key == 3:
                raise RuntimeError("upload refused")
            with lock:
                results[key] = total

        return run

    for key in range(6):
        feed = fan.start(key, job(key))
        for _ in range(10):
            feed(b"y" * 1000)
        feed(None)
    errors = fan.join()
    assert [k for k, _ in errors] == [3]
    assert results == {k: 10_000 for k in range(6) if k != 3}


def test_fanout_producer_never_blocks_on_a_job_that_died() -> None:
    fan = FanOut(workers=1, window=1000)

    def dies(chunks: Iterator[bytes]) -> None:
        next(chunks)
        raise RuntimeError("dead")

    feed = fan.start("k", dies)
    started = time.monotonic()
    for _ in range(200):
        feed(b"z" * 1000)
    feed(None)
    assert time.monotonic() - started < 5
    assert fan.first_error() is not None
    assert [k for k, _ in fan.join()] == ["k"]


def test_ordered_fetch_keeps_its_threads_busy_while_the_head_of_the_line_is_slow() -> None:
    """Regression (issue 12): a finished small blob held its thread until the consumer reached it,
    so one slow GET at the head left the other request slots idle (an export at 1,000 images ran
    with about 9 of its 16 requests in flight). Finished sources now wait in their queues, and the
    threads go on to the next sources, up to four sources per thread and the byte budget."""
    head_may_finish = threading.Event()
    lock = threading.Lock()
    started: list[int] = []
    finished: list[int] = []
    running = [0, 0]  # now, most at once

    def small(i: int) -> Callable[[], Iterable[bytes]]:
        def gen() -> Iterator[bytes]:
            with lock:
                started.append(i)
                running[0] += 1
                running[1] = max(running)
            try:
                if i == 0:
                    head_may_finish.wait(10)
                yield bytes([i]) * 100
            finally:
                with lock:
                    running[0] -= 1
                    finished.append(i)

        return gen

    count = 20
    streams = ordered_fetch([small(i) for i in range(count)], workers=1, window=10_000, sizes=[100] * count, max_jobs=2)
    try:
        first = next(streams)  # the consumer waits on the head; the second thread works through the rest
        wait_until(lambda: len(finished) == 7, timeout=10, what="7 sources behind the slow head to finish")
        with lock:
            assert sorted(started) == list(range(8))  # 2 threads x 4: admitted, finished or running
            assert running[1] == 2  # never more requests at once than threads
    finally:
        head_may_finish.set()
    out = [b"".join(first), *(b"".join(s) for s in streams)]
    assert out == [bytes([i]) * 100 for i in range(count)]
    assert running[1] == 2


def test_fanout_runs_small_blobs_read_whole_many_at_once_within_the_byte_budget() -> None:
    # A job submitted with its size costs that size, not a window: one large upload's memory holds
    # many small ones (the import's blobs of at most WHOLE_MAX bytes), up to max_jobs of them.
    fan = FanOut(workers=1, window=100, max_jobs=8)
    release = threading.Event()
    running: list[int] = []
    lock = threading.Lock()

    def job(key: int) -> Callable[[], None]:
        def run() -> None:
            with lock:
                running.append(key)
            release.wait(60)  # longer than the wait below: a job ending must not make room for the next

        return run

    def submit_three() -> None:
        for k in range(3):
            fan.submit(k, job(k), size=40)

    submitter = threading.Thread(target=submit_three, daemon=True)
    submitter.start()
    wait_until(lambda: len(running) == 2, timeout=15, what="two 40-byte jobs running in a 100-byte budget")
    assert submitter.is_alive(), "a third 40-byte job was admitted past the budget"
    release.set()
    submitter.join(30)
    assert fan.join() == [] and sorted(running) == [0, 1, 2]

    small = FanOut(workers=1, window=100, max_jobs=8)
    gate, started = threading.Event(), threading.Semaphore(0)

    def waits() -> None:
        started.release()
        gate.wait(30)

    # 8 jobs of 10 bytes: all run at once (submitted from a thread, so that one admitted too few
    # fails the test rather than hang it).
    def submit_eight() -> None:
        for k in range(8):
            small.submit(k, waits, size=10)

    threading.Thread(target=submit_eight, daemon=True).start()
    for _ in range(8):
        assert started.acquire(timeout=30), "fewer than 8 small jobs ran at once"
    gate.set()
    assert small.join() == []
