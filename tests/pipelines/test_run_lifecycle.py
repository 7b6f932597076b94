"""A run's life across processes, on the repository and journal directly: who may take a run, and
whose writes count once it is taken (review findings of the scale-out work)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from airlock.pipelines import resources as R
from airlock.pipelines.execution import RunJournal
from airlock.pipelines.models import PipelineRun, RunState
from airlock.pipelines.plane import ControlPlane
from airlock.pipelines.store import SqlResourceRepository
from airlock.wiring import open_control_plane

SUB = "00000000-0000-0000-0000-000000000000"
RID = R.RegistryRef(SUB, "rg", "reg").child("pipelineRuns", "liferun1")
ELSEWHERE = "another-host:4242:1"  # a process of another machine, whose lease has not run out


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[ControlPlane]:
    made = open_control_plane(tmp_path / "home")
    yield made
    made.close()


def _record(repo: SqlResourceRepository, state: RunState, owner: str) -> None:
    body = {
        "id": RID,
        "name": "liferun1",
        "type": R.RUN_TYPE,
        "properties": {
            "request": {"pipelineResourceId": RID, "source": {"name": "b.tar"}},
            "response": {"status": "Running", "startTime": datetime.now(UTC).isoformat()},
        },
    }
    repo.put(PipelineRun.model_validate(body), state=state, owner=owner)


def test_a_redelivered_job_takes_over_a_run_whose_owner_on_another_host_still_has_a_lease(
    plane: ControlPlane,
) -> None:
    """Review finding: the queue retried a killed worker's job, but the lease of a worker on another
    host (300 s) made the new worker refuse the run, and recovery failed it minutes later."""
    repo = SqlResourceRepository(plane.engine)
    journal = RunJournal(repo, plane.runs._lock)
    _record(repo, RunState.RUNNING, ELSEWHERE)
    assert not journal.start(RID, "me:1:1")  # a thread pool's second look: the lease holds
    assert journal.start(RID, "me:1:1", redelivered=True)  # the queue says the worker is gone
    assert repo.state_of(RID)[:2] == ("Running", "me:1:1")


def test_writes_of_a_process_that_lost_the_run_are_dropped(plane: ControlPlane) -> None:
    repo = SqlResourceRepository(plane.engine)
    journal = RunJournal(repo, plane.runs._lock)
    _record(repo, RunState.RUNNING, "new-owner:1:1")
    journal.update(RID, owner="old-owner:1:1", progress={"percentage": "77"})
    assert not journal.finish(RID, error="stopped", owner="old-owner:1:1")
    run = repo.get(RID, PipelineRun)
    assert run is not None and run.properties.response.progress is None
    assert repo.state_of(RID)[0] == "Running"
    assert journal.finish(RID, owner="new-owner:1:1")
    assert repo.state_of(RID)[0] == "Succeeded"


def test_a_cancel_request_survives_the_runs_later_progress_writes(plane: ControlPlane) -> None:
    repo = SqlResourceRepository(plane.engine)
    journal = RunJournal(repo, plane.runs._lock)
    _record(repo, RunState.RUNNING, "worker:1:1")
    assert journal.request_cancel(RID)
    journal.update(RID, owner="worker:1:1", progress={"percentage": "10"})
    assert journal.should_stop(RID, "worker:1:1")


def test_recovery_fails_a_run_this_process_owns_but_does_not_execute(plane: ControlPlane) -> None:
    """Review finding: this process's own token always looked alive, so such a run stayed for good."""
    repo = SqlResourceRepository(plane.engine)
    _record(repo, RunState.QUEUED, plane.runs._owner)
    assert [r.rsplit("/", 1)[-1] for r in plane.runs.recover()] == ["liferun1"]
    assert repo.state_of(RID)[0] == "Failed"
