"""One conformance suite for every RunExecutor adapter (the in-process thread pool today)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest

from airlock.pipelines.executor import RunExecutor, ThreadRunExecutor

ADAPTERS: dict[str, Callable[[], RunExecutor]] = {"threads": lambda: ThreadRunExecutor(workers=1)}
DEADLINE = 30.0  # seconds any wait here may take before the test fails


@pytest.fixture(params=sorted(ADAPTERS))
def executor(request: pytest.FixtureRequest) -> Iterator[RunExecutor]:
    made = ADAPTERS[request.param]()
    yield made
    made.close(wait=True)


def _gated() -> tuple[threading.Event, threading.Event, Callable[[], None]]:
    started, release = threading.Event(), threading.Event()

    def work() -> None:
        started.set()
        assert release.wait(DEADLINE)

    return started, release, work


def test_submitted_work_runs_and_is_reported_running_until_it_ends(executor: RunExecutor) -> None:
    started, release, work = _gated()
    executor.submit("run-a", work)
    assert started.wait(DEADLINE)
    assert executor.is_running("run-a") and executor.running() == ["run-a"]
    release.set()
    executor.wait("run-a", timeout=DEADLINE)
    assert not executor.is_running("run-a") and executor.running() == []


def test_wait_times_out_while_work_runs_and_returns_at_once_for_unknown_runs(executor: RunExecutor) -> None:
    started, release, work = _gated()
    executor.submit("run-b", work)
    assert started.wait(DEADLINE)
    with pytest.raises(TimeoutError):
        executor.wait("run-b", timeout=0.05)
    release.set()
    executor.wait("run-b", timeout=DEADLINE)
    executor.wait("never-submitted", timeout=0)


def test_work_that_raises_does_not_stop_the_executor(executor: RunExecutor) -> None:
    def broken() -> None:
        raise RuntimeError("a bug in a run")

    executor.submit("run-c", broken)
    with pytest.raises(RuntimeError):
        executor.wait("run-c", timeout=DEADLINE)
    done = threading.Event()
    executor.submit("run-d", done.set)
    executor.wait("run-d", timeout=DEADLINE)
    assert done.is_set()


def test_close_without_waiting_drops_work_that_has_not_started() -> None:
    for make in ADAPTERS.values():
        executor = make()  # one worker: the second run waits behind the first
        started, release, work = _gated()
        executor.submit("first", work)
        assert started.wait(DEADLINE)
        second = threading.Event()
        executor.submit("second", second.set)
        executor.close(wait=False)
        release.set()
        executor.wait("first", timeout=DEADLINE)
        assert not second.is_set()
