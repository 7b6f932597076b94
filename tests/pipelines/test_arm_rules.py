"""ARM's rules that the services keep (issue 10): deletes that would orphan something are refused
naming it, a run must name a pipeline, and a run's state moves only along the allowed transitions."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airlock.errors import ResourceConflict, UsageError
from airlock.pipelines import resources as R
from airlock.pipelines.service import ControlPlane
from airlock.testing import content
from airlock.testing.services import RegistryServer
from airlock.wiring import open_control_plane

SUB = "00000000-0000-0000-0000-000000000000"
RG = "rulesrg"


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[ControlPlane]:
    cp = open_control_plane(tmp_path / "home")
    yield cp
    cp.close()


def _export_pipeline(cp: ControlPlane, out: Path, name: str = "rulesexport", **extra: Any) -> dict[str, Any]:
    body = {"properties": {"target": {"uri": out.as_uri()}, "options": ["OverwriteBlobs"]}, **extra}
    return cp.put_pipeline(SUB, RG, "rulesreg", "exportPipelines", name, body)[0]


def _run_body(pipeline: dict[str, Any], artifact: str) -> dict[str, Any]:
    request = {"pipelineResourceId": pipeline["id"], "artifacts": [artifact], "target": {"name": "b.tar"}}
    return {"properties": {"request": request}}


def test_deleting_a_pipeline_with_a_running_run_is_refused_naming_the_run(
    plane: ControlPlane, source_registry: RegistryServer, tmp_path: Path
) -> None:
    image = content.push_oci_image(source_registry.url, "rules/app", "1", layers=1, layer_size=1024 * 1024, seed=81)
    plane.put_registry(SUB, RG, "rulesreg", {"properties": {"loginServer": source_registry.url}})
    pipeline = _export_pipeline(plane, tmp_path)
    assert source_registry.pid is not None
    os.kill(source_registry.pid, signal.SIGSTOP)  # the run hangs mid-way, alive
    try:
        doc, started = plane.put_run(SUB, RG, "rulesreg", "holdrun1", _run_body(pipeline, image.reference))
        assert started
        with pytest.raises(ResourceConflict, match="holdrun1"):
            plane.delete_pipeline(SUB, RG, "rulesreg", "exportPipelines", "rulesexport")
        assert plane.store.get(pipeline["id"]) is not None
    finally:
        os.kill(source_registry.pid, signal.SIGCONT)
    assert plane.wait(doc["id"], timeout=60)["properties"]["provisioningState"] == "Succeeded"
    assert plane.delete_pipeline(SUB, RG, "rulesreg", "exportPipelines", "rulesexport") is True
    assert plane.store.get(doc["id"]) is not None  # the run's record stays


def test_deleting_an_identity_a_pipeline_uses_is_refused_naming_the_pipeline(
    plane: ControlPlane, tmp_path: Path
) -> None:
    identity, _ = plane.put_identity(SUB, RG, "pipelineid", {})
    plane.put_registry(SUB, RG, "rulesreg", {"properties": {"loginServer": "http://127.0.0.1:9"}})
    uai = {"type": "UserAssigned", "userAssignedIdentities": {identity["id"].upper(): {}}}  # ids compare in any case
    _export_pipeline(plane, tmp_path, name="uaiexport", identity=uai)
    with pytest.raises(ResourceConflict, match="uaiexport"):
        plane.delete_identity(SUB, RG, "pipelineid")
    assert plane.store.get(identity["id"]) is not None
    plane.delete_pipeline(SUB, RG, "rulesreg", "exportPipelines", "uaiexport")
    assert plane.delete_identity(SUB, RG, "pipelineid") is True


def test_a_run_naming_another_run_as_its_pipeline_is_refused_naming_the_field(
    plane: ControlPlane, tmp_path: Path
) -> None:
    """Regression: it was accepted, then crashed the executor with a KeyError."""
    plane.put_registry(SUB, RG, "rulesreg", {"properties": {"loginServer": "http://127.0.0.1:9"}})
    pipeline = _export_pipeline(plane, tmp_path)
    first, _ = plane.put_run(SUB, RG, "rulesreg", "firstrun1", _run_body(pipeline, "rules/none:1"))
    plane.wait(first["id"], timeout=60)
    with pytest.raises(UsageError, match=r"properties\.request\.pipelineResourceId"):
        plane.put_run(SUB, RG, "rulesreg", "secondrun1", _run_body(first, "rules/none:1"))
    assert plane.store.get(R.RegistryRef(SUB, RG, "rulesreg").child("pipelineRuns", "secondrun1")) is None


def test_run_states_move_only_along_the_allowed_transitions() -> None:
    assert R.run_transition(None, R.RunState.RUNNING, "r") is R.RunState.RUNNING
    assert R.run_transition("Running", R.RunState.RUNNING, "r") is R.RunState.RUNNING  # progress
    assert R.run_transition("Running", R.RunState.FAILED, "r") is R.RunState.FAILED
    assert R.run_transition("Failed", R.RunState.RUNNING, "r") is R.RunState.RUNNING  # re-run (forceUpdateTag)
    for done in ("Succeeded", "Failed", "Canceled"):
        for end in (R.RunState.SUCCEEDED, R.RunState.FAILED, R.RunState.CANCELED):
            with pytest.raises(ResourceConflict, match="cannot become"):
                R.run_transition(done, end, "r")
    with pytest.raises(ResourceConflict):
        R.run_transition(None, R.RunState.SUCCEEDED, "r")


def test_a_late_progress_report_does_not_reopen_a_finished_run(plane: ControlPlane, tmp_path: Path) -> None:
    plane.put_registry(SUB, RG, "rulesreg", {"properties": {"loginServer": "http://127.0.0.1:9"}})
    pipeline = _export_pipeline(plane, tmp_path)
    doc, _ = plane.put_run(SUB, RG, "rulesreg", "laterun1", _run_body(pipeline, "rules/none:1"))
    finished = plane.wait(doc["id"], timeout=60)
    assert finished["properties"]["provisioningState"] == "Failed"
    plane._update_response(doc["id"], progress={"percentage": "50"})  # what a straggling progress thread does
    assert plane.store.state_of(doc["id"])[0] == "Failed"
    assert plane.get(doc["id"], "run")["properties"]["response"]["progress"] != {"percentage": "50"}


def test_a_user_assigned_identity_must_be_an_identity_of_the_subscription(plane: ControlPlane, tmp_path: Path) -> None:
    """Review finding: a registry's id as the identity was a 500 (KeyError: 'principalId')."""
    registry, _ = plane.put_registry(SUB, RG, "rulesreg", {"properties": {"loginServer": "http://127.0.0.1:9"}})
    uai = {"type": "UserAssigned", "userAssignedIdentities": {registry["id"]: {}}}
    with pytest.raises(UsageError, match="is not a user-assigned identity"):
        _export_pipeline(plane, tmp_path, name="wrongid", identity=uai)


def test_a_pipeline_on_a_plain_local_path_is_stored_as_its_file_uri_and_needs_no_credential(
    plane: ControlPlane, tmp_path: Path
) -> None:
    """Review finding: "/srv/transfer" was stored as written and every run failed as untrusted storage."""
    plane.put_registry(SUB, RG, "rulesreg", {"properties": {"loginServer": "http://127.0.0.1:9"}})
    body = {"properties": {"target": {"uri": str(tmp_path)}}}
    doc, _ = plane.put_pipeline(SUB, RG, "rulesreg", "exportPipelines", "plainpath", body)
    target = doc["properties"]["target"]
    assert target["uri"] == tmp_path.as_uri()
    assert plane.storage_access(target, plane.principal_of(doc)) == (None, None)
