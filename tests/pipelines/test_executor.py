"""One conformance suite for every RunExecutor adapter (the in-process thread pool today).

Each test gives the adapter a handler that looks a run id up in ``work`` and calls what it finds,
so a test decides what "executing" a run means without the adapter ever holding a closure.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest

from airlock.pipelines.executor import RunExecutor, RunHandler, ThreadRunExecutor

ADAPTERS: dict[str, Callable[[RunHandler], RunExecutor]] = {
    "threads": lambda handler: ThreadRunExecutor(handler, workers=1)
}
DEADLINE = 30.0  # seconds any wait here may take before the test fails


class Work(dict[str, Callable[[], None]]):
    """What executing each run id does; its ``handle`` is the executor's handler."""

    def handle(self, run_id: str) -> None:
        self[run_id]()


@pytest.fixture
def work() -> Work:
    return Work()


@pytest.fixture(params=sorted(ADAPTERS))
def executor(request: pytest.FixtureRequest, work: Work) -> Iterator[RunExecutor]:
    made = ADAPTERS[request.param](work.handle)
    yield made
    made.close(wait=True)


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


@pytest.mark.parametrize("adapter", sorted(ADAPTERS))
def test_close_without_waiting_drops_work_that_has_not_started(adapter: str) -> None:
    work = Work()
    executor = ADAPTERS[adapter](work.handle)  # one worker: the second run waits behind the first
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
