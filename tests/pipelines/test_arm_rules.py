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
from airlock.pipelines.access import principal_of
from airlock.pipelines.models import ExportPipeline, Resource, RunState, run_transition
from airlock.pipelines.plane import ControlPlane
from airlock.testing.images import push_oci_image
from airlock.testing.registry_server import RegistryServer
from airlock.wiring import open_control_plane

SUB = "00000000-0000-0000-0000-000000000000"
RG = "rulesrg"


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[ControlPlane]:
    cp = open_control_plane(tmp_path / "home")
    yield cp
    cp.close()


def _export_pipeline(cp: ControlPlane, out: Path, name: str = "rulesexport", **extra: Any) -> ExportPipeline:
    body = {"properties": {"target": {"uri": out.as_uri()}, "options": ["OverwriteBlobs"]}, **extra}
    made = cp.pipelines.put(SUB, RG, "rulesreg", "exportPipelines", name, body)[0]
    assert isinstance(made, ExportPipeline)
    return made


def _run_body(pipeline: Resource, artifact: str) -> dict[str, Any]:
    request = {"pipelineResourceId": pipeline.id, "artifacts": [artifact], "target": {"name": "b.tar"}}
    return {"properties": {"request": request}}


def test_deleting_a_pipeline_with_a_running_run_is_refused_naming_the_run(
    plane: ControlPlane, source_registry: RegistryServer, tmp_path: Path
) -> None:
    image = push_oci_image(source_registry.url, "rules/app", "1", layers=1, layer_size=1024 * 1024, seed=81)
    plane.registries.put(SUB, RG, "rulesreg", {"properties": {"loginServer": source_registry.url}})
    pipeline = _export_pipeline(plane, tmp_path)
    assert source_registry.pid is not None
    os.kill(source_registry.pid, signal.SIGSTOP)  # the run hangs mid-way, alive
    try:
        doc, started = plane.runs.put(SUB, RG, "rulesreg", "holdrun1", _run_body(pipeline, image.reference))
        assert started
        with pytest.raises(ResourceConflict, match="holdrun1"):
            plane.pipelines.delete(SUB, RG, "rulesreg", "exportPipelines", "rulesexport")
        assert plane.pipelines.get(SUB, RG, "rulesreg", "exportPipelines", "rulesexport").id == pipeline.id
    finally:
        os.kill(source_registry.pid, signal.SIGCONT)
    assert plane.runs.wait(doc.id, timeout=60).properties.provisioningState == "Succeeded"
    assert plane.pipelines.delete(SUB, RG, "rulesreg", "exportPipelines", "rulesexport") is True
    assert plane.runs.get(SUB, RG, "rulesreg", "holdrun1").id == doc.id  # the run's record stays


def test_deleting_an_identity_a_pipeline_uses_is_refused_naming_the_pipeline(
    plane: ControlPlane, tmp_path: Path
) -> None:
    identity, _ = plane.identities.put(SUB, RG, "pipelineid", {})
    plane.registries.put(SUB, RG, "rulesreg", {"properties": {"loginServer": "http://127.0.0.1:9"}})
    uai = {"type": "UserAssigned", "userAssignedIdentities": {identity.id.upper(): {}}}  # ids compare in any case
    _export_pipeline(plane, tmp_path, name="uaiexport", identity=uai)
    with pytest.raises(ResourceConflict, match="uaiexport"):
        plane.identities.delete(SUB, RG, "pipelineid")
    assert plane.identities.get(SUB, RG, "pipelineid").id == identity.id
    plane.pipelines.delete(SUB, RG, "rulesreg", "exportPipelines", "uaiexport")
    assert plane.identities.delete(SUB, RG, "pipelineid") is True


def test_a_run_naming_another_run_as_its_pipeline_is_refused_naming_the_field(
    plane: ControlPlane, tmp_path: Path
) -> None:
    """Regression: it was accepted, then crashed the executor with a KeyError."""
    plane.registries.put(SUB, RG, "rulesreg", {"properties": {"loginServer": "http://127.0.0.1:9"}})
    pipeline = _export_pipeline(plane, tmp_path)
    first, _ = plane.runs.put(SUB, RG, "rulesreg", "firstrun1", _run_body(pipeline, "rules/none:1"))
    plane.runs.wait(first.id, timeout=60)
    with pytest.raises(UsageError, match=r"properties\.request\.pipelineResourceId"):
        plane.runs.put(SUB, RG, "rulesreg", "secondrun1", _run_body(first, "rules/none:1"))
    assert [run.name for run in plane.runs.list(SUB, RG, "rulesreg")] == ["firstrun1"]


def test_run_states_move_only_along_the_allowed_transitions() -> None:
    assert run_transition(None, RunState.RUNNING, "r") is RunState.RUNNING
    assert run_transition("Running", RunState.RUNNING, "r") is RunState.RUNNING  # progress
    assert run_transition("Running", RunState.FAILED, "r") is RunState.FAILED
    assert run_transition("Failed", RunState.RUNNING, "r") is RunState.RUNNING  # re-run (forceUpdateTag)
    for done in ("Succeeded", "Failed", "Canceled"):
        for end in (RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELED):
            with pytest.raises(ResourceConflict, match="cannot become"):
                run_transition(done, end, "r")
    with pytest.raises(ResourceConflict):
        run_transition(None, RunState.SUCCEEDED, "r")


def test_a_late_progress_report_does_not_reopen_a_finished_run(plane: ControlPlane, tmp_path: Path) -> None:
    plane.registries.put(SUB, RG, "rulesreg", {"properties": {"loginServer": "http://127.0.0.1:9"}})
    pipeline = _export_pipeline(plane, tmp_path)
    doc, _ = plane.runs.put(SUB, RG, "rulesreg", "laterun1", _run_body(pipeline, "rules/none:1"))
    finished = plane.runs.wait(doc.id, timeout=60)
    assert finished.properties.provisioningState == "Failed"
    journal = plane.runs._journal  # the one writer of a run's response
    journal.update(doc.id, progress={"percentage": "50"})  # what a straggling progress thread does
    after = plane.runs.by_id(doc.id)
    assert after.properties.provisioningState == "Failed"
    assert after.properties.response.progress is not None and after.properties.response.progress.percentage != "50"


def test_a_user_assigned_identity_must_be_an_identity_of_the_subscription(plane: ControlPlane, tmp_path: Path) -> None:
    """Review finding: a registry's id as the identity was a 500 (KeyError: 'principalId')."""
    registry, _ = plane.registries.put(SUB, RG, "rulesreg", {"properties": {"loginServer": "http://127.0.0.1:9"}})
    uai = {"type": "UserAssigned", "userAssignedIdentities": {registry.id: {}}}
    with pytest.raises(UsageError, match="is not a user-assigned identity"):
        _export_pipeline(plane, tmp_path, name="wrongid", identity=uai)


def test_a_pipeline_on_a_plain_local_path_is_stored_as_its_file_uri_and_needs_no_credential(
    plane: ControlPlane, tmp_path: Path
) -> None:
    """Review finding: "/srv/transfer" was stored as written and every run failed as untrusted storage."""
    plane.registries.put(SUB, RG, "rulesreg", {"properties": {"loginServer": "http://127.0.0.1:9"}})
    body = {"properties": {"target": {"uri": str(tmp_path)}}}
    doc, _ = plane.pipelines.put(SUB, RG, "rulesreg", "exportPipelines", "plainpath", body)
    assert isinstance(doc, ExportPipeline)
    assert doc.properties.target.uri == tmp_path.as_uri()
    assert plane.access.storage_access(doc.properties.target, principal_of(doc, plane.tenant_id)) == (None, None)


def test_an_import_run_refuses_artifacts_or_a_selection_and_a_run_refuses_a_blob_type_acr_has_not(
    plane: ControlPlane, tmp_path: Path
) -> None:
    """Regression: an import run's artifacts and selection were dropped, and it imported every
    artifact of the blob, those the caller meant to leave out too; a target.type other than ACR's
    one was ignored."""
    plane.registries.put(SUB, RG, "rulesreg", {"properties": {"loginServer": "http://127.0.0.1:9"}})
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    body = {"properties": {"source": {"uri": inbox.as_uri()}}}
    imports = plane.pipelines.put(SUB, RG, "rulesreg", "importPipelines", "rulesimport", body)[0]
    # Regression: a rename no repository name can follow was stored, and every run failed on it.
    for bad in ("Mirror/", "../x/", "evil.example:5000/x/"):
        renamed = {"properties": {**body["properties"], "rename": {"team/": bad}}}
        with pytest.raises(UsageError, match="renames into an invalid repository name"):
            plane.pipelines.put(SUB, RG, "rulesreg", "importPipelines", "rulesimport", renamed)
    for extra in ({"artifacts": ["team/base:2"]}, {"selection": {"repositories": [{"name": "team/base"}]}}):
        request: dict[str, Any] = {"pipelineResourceId": imports.id, "source": {"name": "b.tar"}, **extra}
        with pytest.raises(UsageError, match=r"request\.artifacts and request\.selection are for export runs"):
            plane.runs.put(SUB, RG, "rulesreg", "importrun1", {"properties": {"request": request}})
    # What ACR's clients send for an import (no artifacts, or an empty list; ACR's ARM template for an
    # import run sends an empty target too) is a run.
    request = {"pipelineResourceId": imports.id, "source": {"type": "AzureStorageBlob", "name": "b.tar"}}
    template = {**request, "artifacts": [], "target": {"type": "", "name": ""}}
    plane.runs.put(SUB, RG, "rulesreg", "importrun2", {"properties": {"request": template}})

    exports = _export_pipeline(plane, tmp_path)
    empty = {"pipelineResourceId": exports.id, "selection": {"repositories": []}, "target": {"name": "b.tar"}}
    with pytest.raises(UsageError, match=r"request\.selection selects nothing"):
        plane.runs.put(SUB, RG, "rulesreg", "exportrun1", {"properties": {"request": empty}})
    other_kind = {"type": "AzureFileShare", "name": "b.tar"}
    refused = {"pipelineResourceId": exports.id, "artifacts": ["rules/none:1"], "target": other_kind}
    with pytest.raises(UsageError, match="AzureStorageBlob"):
        plane.runs.put(SUB, RG, "rulesreg", "exportrun1", {"properties": {"request": refused}})
    assert [run.name for run in plane.runs.list(SUB, RG, "rulesreg")] == ["importrun2"]
