"""One conformance suite for every RunExecutor adapter: the in-process thread pool, and the
procrastinate job queue (a fresh PostgreSQL database per test, with an in-process worker).

Each test gives the adapter a handler that looks a run id up in ``work`` and calls what it finds,
so a test decides what "executing" a run means without the adapter ever holding a closure.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest

from airlock.pipelines.executor import RunExecutor, RunHandler, ThreadRunExecutor
from airlock.pipelines.queue import QueueRunExecutor

Make = Callable[[RunHandler], RunExecutor]


def _threads(request: pytest.FixtureRequest) -> Make:
    return lambda handler: ThreadRunExecutor(handler, workers=1)


def _procrastinate(request: pytest.FixtureRequest) -> Make:
    url = request.getfixturevalue("queue_database")()  # one database per test: no job leaks across
    return lambda handler: QueueRunExecutor(url, handler, worker=True, concurrency=1)


# Each adapter, built (one worker wide) from what a test may need (its fixtures).
ADAPTERS: dict[str, Callable[[pytest.FixtureRequest], Make]] = {"threads": _threads, "procrastinate": _procrastinate}
DEADLINE = 30.0  # seconds any wait here may take before the test fails


class Work(dict[str, Callable[[], None]]):
    """What executing each run id does; its ``handle`` is the executor's handler."""

    def handle(self, run_id: str) -> None:
        self[run_id]()


@pytest.fixture
def work() -> Work:
    return Work()


@pytest.fixture(params=sorted(ADAPTERS))
def make_executor(request: pytest.FixtureRequest) -> Iterator[Make]:
    """Builds executors of one adapter; each is closed (waiting) after the test."""
    build, made = ADAPTERS[request.param](request), []

    def make(handler: RunHandler) -> RunExecutor:
        made.append(build(handler))
        return made[-1]

    yield make
    for executor in made:
        executor.close(wait=True)


@pytest.fixture
def executor(make_executor: Make, work: Work) -> RunExecutor:
    return make_executor(work.handle)


def _gated() -> tuple[threading.Event, threading.Event, Callable[[], None]]:
    started, release = threading.Event(), threading.Event()

    def gated() -> None:
        started.set()
        assert release.wait(DEADLINE)

    return started, release, gated


def test_submitted_work_runs_and_is_reported_running_until_it_ends(executor: RunExecutor, work: Work) -> None:
    started, release, work["run-a"] = _gated()
    executor.submit("run-a")
    assert started.wait(DEADLINE)
    assert executor.is_running("run-a") and executor.running() == ["run-a"]
    release.set()
    executor.wait("run-a", timeout=DEADLINE)
    assert not executor.is_running("run-a") and executor.running() == []


def test_wait_times_out_while_work_runs_and_returns_at_once_for_unknown_runs(executor: RunExecutor, work: Work) -> None:
    started, release, work["run-b"] = _gated()
    executor.submit("run-b")
    assert started.wait(DEADLINE)
    with pytest.raises(TimeoutError):
        executor.wait("run-b", timeout=0.05)
    release.set()
    executor.wait("run-b", timeout=DEADLINE)
    executor.wait("never-submitted", timeout=0)


def test_work_that_raises_does_not_stop_the_executor(executor: RunExecutor, work: Work) -> None:
    def broken() -> None:
        raise RuntimeError("a bug in a run")

    work["run-c"] = broken
    executor.submit("run-c")
    with pytest.raises(RuntimeError):
        executor.wait("run-c", timeout=DEADLINE)
    done = threading.Event()
    work["run-d"] = done.set
    executor.submit("run-d")
    executor.wait("run-d", timeout=DEADLINE)
    assert done.is_set()


def test_close_without_waiting_drops_work_that_has_not_started(make_executor: Make, work: Work) -> None:
    executor = make_executor(work.handle)  # one worker: the second run waits behind the first
    started, release, work["first"] = _gated()
    executor.submit("first")
    assert started.wait(DEADLINE)
    second = threading.Event()
    work["second"] = second.set
    executor.submit("second")
    executor.close(wait=False)
    release.set()
    executor.wait("first", timeout=DEADLINE)
    assert not second.is_set()
