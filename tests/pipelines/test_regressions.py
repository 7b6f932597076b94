"""Named regressions from the control-plane review: each test states the failure it guards against."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas

from airlock.errors import UsageError
from airlock.oci.reference import ArtifactReference, RegistryURL
from airlock.pipelines.models import ImportPipeline, PipelineRun, Resource
from airlock.pipelines.plane import ControlPlane
from airlock.pipelines.store import SqlResourceRepository, TriggerLedger
from airlock.pipelines.trigger import SourceTrigger
from airlock.registry.client import RegistryClient
from airlock.storage.location import open_blob, parse_blob_uri
from airlock.testing import azurite as az
from airlock.testing.azurite import AzuriteServer
from airlock.testing.fault_proxy import Fault, FaultProxy
from airlock.testing.images import push_oci_image
from airlock.testing.polling import wait_until
from airlock.testing.registry_server import RegistryServer
from airlock.transfer.export import export_artifacts
from airlock.wiring import open_control_plane

SUB = "00000000-0000-0000-0000-000000000000"
SECRET = "https://nameskv.vault.azure.net/secrets/accountsas"


def _export_pipeline(cp: ControlPlane, reg: str, out: Path, **target: Any) -> Resource:
    return cp.pipelines.put(
        SUB,
        "rg",
        reg,
        "exportPipelines",
        "exportpipe",
        {"properties": {"target": {"uri": out.as_uri(), **target}, "options": ["OverwriteBlobs"]}},
    )[0]


def test_a_second_process_never_fails_a_live_run(tmp_path: Path) -> None:
    """Regression: the first progress update erased the run's owner, so any other process's recover()
    (every local CLI command) marked a live server's run as interrupted."""
    with RegistryServer.start(tmp_path / "src", name="src") as source:
        img = push_oci_image(source.url, "live/app", "1", layers=1, layer_size=2 * 1024 * 1024, seed=71)
        layer = max(img.blobs, key=lambda b: b[1])[0]
        held = threading.Event()
        with FaultProxy(source.url) as proxy:
            hang = proxy.add(Fault("GET", f"/blobs/{layer}", hold=held))  # the run hangs mid-way, alive
            cp = open_control_plane(tmp_path / "home")
            cp.registries.put(SUB, "rg", "sourcereg", {"properties": {"loginServer": proxy.url}})
            out = tmp_path / "out"
            out.mkdir()
            pipe = _export_pipeline(cp, "sourcereg", out)
            try:
                request = {"pipelineResourceId": pipe.id, "artifacts": [img.reference], "target": {"name": "b.tar"}}
                doc, _ = cp.runs.put(SUB, "rg", "sourcereg", "liverun1", {"properties": {"request": request}})

                def first_progress() -> bool:  # the config's bytes are counted before the layer's GET hangs
                    response = cp.runs.get(SUB, "rg", "sourcereg", "liverun1").document()["properties"]["response"]
                    return bool(response.get("progress")) and hang.hits == 1

                wait_until(first_progress, what="the run's first progress update, its layer's GET held")
                other = open_control_plane(tmp_path / "home")
                assert other.runs.recover() == []
                assert SqlResourceRepository(other.engine).state_of(doc.id)[0] == "Running"
                other.close()
            finally:
                held.set()
            done = cp.runs.wait(doc.id, timeout=60)
            assert done.properties.provisioningState == "Succeeded"
            assert "interrupted" not in done.document()["properties"]["response"]
            cp.close()


def test_pipelines_cannot_read_local_files_as_secrets(tmp_path: Path, source_registry: RegistryServer) -> None:
    """Regression: file:// secret URIs let any pipeline read the server's own files (its API token)."""
    home = tmp_path / "home"
    cp = open_control_plane(home)
    (home / "api-token").write_text("owner-token-that-must-stay-home")
    cp.registries.put(
        SUB,
        "rg",
        "sourcereg",
        {
            "properties": {
                "loginServer": source_registry.url,
                "credentials": {"username": "u", "passwordSecretUri": f"file://{home}/api-token"},
            }
        },
    )
    out = tmp_path / "out"
    out.mkdir()
    pipe = _export_pipeline(cp, "sourcereg", out)
    doc, _ = cp.runs.put(
        SUB,
        "rg",
        "sourcereg",
        "filerun1",
        {
            "properties": {
                "request": {"pipelineResourceId": pipe.id, "artifacts": ["x/y:1"], "target": {"name": "b.tar"}}
            }
        },
    )
    run = cp.runs.wait(doc.id, timeout=60)
    message = run.properties.response.pipelineRunErrorMessage or ""
    assert "no secret store serves" in message and "owner-token" not in message
    cp.close()


def test_trigger_survives_a_bad_blob_and_does_not_reimport_deleted_run_records(
    tmp_path: Path, source_registry: RegistryServer, target_registry: RegistryServer
) -> None:
    """Regressions: one blob whose import could not start stopped the trigger for every pipeline;
    deleting a triggered run's record (pipeline-run clean) made the blob import again."""
    img = push_oci_image(source_registry.url, "trig/app", "1", seed=72)
    archive = tmp_path / "a.tar"
    export_artifacts(
        client=RegistryClient(RegistryURL.parse(source_registry.url), use_auth_files=False),
        artifacts=[ArtifactReference.parse(img.reference)],
        target=open_blob(parse_blob_uri(archive.as_uri())),
    )
    cp = open_control_plane(tmp_path / "home")
    cp.registries.put(SUB, "rg", "targetreg", {"properties": {"loginServer": target_registry.url}})
    pipes = []
    for name in ("firstinbox", "secondinbox"):
        inbox = tmp_path / name
        inbox.mkdir()
        pipes.append(
            cp.pipelines.put(
                SUB, "rg", "targetreg", "importPipelines", name, {"properties": {"source": {"uri": inbox.as_uri()}}}
            )[0]
        )
    (tmp_path / "firstinbox" / "bad\\name.tar").write_bytes(archive.read_bytes())
    (tmp_path / "secondinbox" / "good.tar").write_bytes(archive.read_bytes())
    trigger = SourceTrigger(cp, interval=3600)
    started = trigger.poll()
    assert len(started) == 1  # the second pipeline was still scanned
    first = cp.pipelines.get(SUB, "rg", "targetreg", "importPipelines", "firstinbox")
    assert isinstance(first, ImportPipeline) and first.properties.sourceTriggerReport is not None
    assert "could not start its import" in first.properties.sourceTriggerReport["skipped"][0]["reason"]
    cp.runs.wait(started[0], timeout=60)
    assert cp.runs.delete(SUB, "rg", "targetreg", started[0].rsplit("/", 1)[-1])
    assert trigger.poll() == []  # deleting the record is not a request to import again
    cp.close()


def test_embedded_vault_secret_names_are_case_insensitive(tmp_path: Path) -> None:
    """Regression: the CLI lower-cases secret URIs (as az does) but secrets were looked up by exact case."""
    cp = open_control_plane(tmp_path / "home")
    cp.vaults.put(SUB, "rg", "casekv", {})
    cp.vaults.set_secret(SUB, "rg", "casekv", "ExportSas", {"properties": {"value": "value-1"}})
    assert cp.access.secrets.get("https://casekv.vault.azure.net/secrets/exportsas", principal=None) == "value-1"
    cp.vaults.set_secret(SUB, "rg", "casekv", "exportsas", {"properties": {"value": "value-2"}})
    assert [v.name for v in cp.vaults.list_secrets("rg", "casekv")] == ["exportsas"]
    cp.close()


def test_runs_of_another_machine_fail_only_when_their_lease_expires(tmp_path: Path) -> None:
    """Regression: runs owned by another host were either failed at once (killing live runs on a
    shared database) or never (stuck in Running after the host was replaced)."""
    from datetime import UTC, datetime, timedelta

    from airlock.db.schema import resources
    from airlock.pipelines import resources as R
    from airlock.pipelines.leases import LEASE

    cp = open_control_plane(tmp_path / "home")
    repo = SqlResourceRepository(cp.engine)  # runs another machine wrote, as its repository did
    for name in ("fresh", "stale"):
        rid = R.RegistryRef(SUB, "rg", "reg").child("pipelineRuns", name)
        run = {"pipelineResourceId": rid, "source": {"name": "b.tar"}}
        doc = {"id": rid, "name": name, "type": R.RUN_TYPE, "properties": {"request": run, "response": {}}}
        repo.put(PipelineRun.model_validate(doc), state="Running", owner="other-host:1:1")
    old = datetime.now(UTC) - timedelta(seconds=LEASE + 60)
    with cp.engine.begin() as conn:
        conn.execute(resources.update().where(resources.c.name == "stale").values(updated_at=old))
    failed = cp.runs.recover()
    assert [f.rsplit("/", 1)[-1] for f in failed] == ["stale"]
    assert cp.runs.running(R.RegistryRef(SUB, "rg", "reg").child("pipelineRuns", "fresh")) is True
    assert cp.runs.get(SUB, "rg", "reg", "stale").properties.provisioningState == "Failed"
    cp.close()


def test_only_one_process_takes_over_a_trigger_claim(tmp_path: Path) -> None:
    """Regression: taking over an abandoned claim was not a compare-and-swap, so two servers could both win."""
    cp = open_control_plane(tmp_path / "home")
    ledger, other = cp.trigger_ledger, TriggerLedger(cp.engine)  # two servers' ledgers on one database
    assert ledger.claim("p", "b.tar", "v1", "run-a", replacing=None)
    assert not other.claim("p", "b.tar", "v1", "run-b", replacing=None)
    record = ledger.record("p", "b.tar", "v1")
    assert record is not None
    assert ledger.claim("p", "b.tar", "v1", "run-a", replacing=record)
    assert not other.claim("p", "b.tar", "v1", "run-a", replacing=record)  # the second one loses
    cp.close()


class _WriteLandsMidRead:
    """The store, with one write landing as a pipeline is read for a change of it: just after a plain read,
    or just before a locked read-modify-write (the only place one can land then)."""

    def __init__(self, repo: Any, pipeline_id: str, write: Callable[[], object]) -> None:
        self._repo, self._id, self._write = repo, pipeline_id, write
        self.landed = False

    def _land(self, resource_id: str) -> None:
        if resource_id == self._id and not self.landed:
            self.landed = True
            self._write()

    def get(self, resource_id: str, model: Any) -> Any:
        found = self._repo.get(resource_id, model)
        self._land(resource_id)
        return found

    def modify(self, resource_id: str, model: Any, change: Any) -> bool:
        self._land(resource_id)
        return bool(self._repo.modify(resource_id, model, change))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._repo, name)


def _inbox_pipeline(cp: ControlPlane, inbox: Path) -> Callable[[str], Resource]:
    """A PUT of import pipeline ``inbox`` on ``inbox``, its source trigger's status as given."""
    cp.registries.put(SUB, "rg", "targetreg", {"properties": {"loginServer": "localhost:5000"}})
    inbox.mkdir()

    def put(status: str) -> Resource:
        body = {"properties": {"source": {"uri": inbox.as_uri()}, "trigger": {"sourceTrigger": {"status": status}}}}
        return cp.pipelines.put(SUB, "rg", "targetreg", "importPipelines", "inbox", body)[0]

    return put


def test_a_trigger_report_never_undoes_a_pipeline_put_that_lands_while_it_is_written(tmp_path: Path) -> None:
    """Regression (CI on c8e4cd5: the dashboard turned a trigger off, and it showed on again): the report
    was written by reading the pipeline and putting it back whole, so a PUT in between was undone."""
    cp = open_control_plane(tmp_path / "home")
    put = _inbox_pipeline(cp, tmp_path / "inbox")
    pipeline = put("Enabled")
    store = _WriteLandsMidRead(cp.pipelines._repo, pipeline.id, lambda: put("Disabled"))
    cp.pipelines._repo = store  # what the API's PUT and the trigger share: one store
    cp.pipelines.set_trigger_report(pipeline.id, {"skipped": [{"blob": "x.txt", "reason": "not a bundle"}]})
    assert store.landed
    stored = cp.pipelines.get(SUB, "rg", "targetreg", "importPipelines", "inbox")
    assert isinstance(stored, ImportPipeline)
    assert stored.properties.trigger.sourceTrigger.status == "Disabled"
    assert stored.properties.sourceTriggerReport == {"skipped": [{"blob": "x.txt", "reason": "not a bundle"}]}
    cp.close()


def test_a_pipeline_put_never_drops_a_trigger_report_written_while_it_is_checked(tmp_path: Path) -> None:
    """Regression: a PUT of an import pipeline copied the report it had read into what it wrote, so a report
    the trigger wrote while the PUT was checked was lost until the trigger's next poll."""
    cp = open_control_plane(tmp_path / "home")
    put = _inbox_pipeline(cp, tmp_path / "inbox")
    pipeline = put("Enabled")
    report = {"skipped": [], "warnings": [], "incompleteBundles": [{"blob": "b.tar", "waitingSeconds": 12}]}
    store = _WriteLandsMidRead(
        cp.pipelines._repo, pipeline.id, lambda: cp.pipelines.set_trigger_report(pipeline.id, report)
    )
    cp.pipelines._repo = store
    answered = put("Disabled")
    assert store.landed
    stored = cp.pipelines.get(SUB, "rg", "targetreg", "importPipelines", "inbox")
    assert isinstance(stored, ImportPipeline) and isinstance(answered, ImportPipeline)
    assert stored.properties.trigger.sourceTrigger.status == "Disabled"
    assert stored.properties.sourceTriggerReport == report
    assert answered.properties.sourceTriggerReport == report  # the PUT's answer shows what it stored
    cp.close()


def test_a_pipeline_put_after_a_delete_it_did_not_see_creates_it_without_the_old_report(tmp_path: Path) -> None:
    """The other side of the locked write: a pipeline deleted between a PUT's read and its write is
    created again by the PUT, as any PUT of a missing pipeline, with no report of the deleted one."""
    cp = open_control_plane(tmp_path / "home")
    put = _inbox_pipeline(cp, tmp_path / "inbox")
    pipeline = put("Enabled")
    cp.pipelines.set_trigger_report(pipeline.id, {"skipped": [{"blob": "x.txt", "reason": "not a bundle"}]})
    delete = partial(cp.pipelines.delete, SUB, "rg", "targetreg", "importPipelines", "inbox")
    store = _WriteLandsMidRead(cp.pipelines._repo, pipeline.id, delete)
    cp.pipelines._repo = store
    put("Disabled")
    assert store.landed
    stored = cp.pipelines.get(SUB, "rg", "targetreg", "importPipelines", "inbox")
    assert isinstance(stored, ImportPipeline)
    assert stored.properties.trigger.sourceTrigger.status == "Disabled"
    assert stored.properties.sourceTriggerReport is None
    cp.close()


def test_a_runs_blob_name_cannot_leave_its_pipelines_container(
    tmp_path: Path, source_registry: RegistryServer, azurite: AzuriteServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression (security): a run's blob name was joined to the container's URI as text, which was
    then decoded, so "a%2F..%2F..%2Fescape%2Fx.tar" (which has no literal ".." segment) wrote into
    another container of the account, with an account SAS, or another directory of the server's
    disk, with a file container. It is a blob name: it lands under that name, in the container."""
    monkeypatch.setenv("AIRLOCK_STORAGE_HOSTS", azurite.storage_host)
    img = push_oci_image(source_registry.url, "names/app", "1", layers=1, seed=73)
    cp = open_control_plane(tmp_path / "home")
    cp.registries.put(SUB, "rg", "sourcereg", {"properties": {"loginServer": source_registry.url}})

    def export(pipe: Resource, name: str, blob: str) -> dict[str, Any]:
        request = {"pipelineResourceId": pipe.id, "artifacts": [img.reference], "target": {"name": blob}}
        doc, _ = cp.runs.put(SUB, "rg", "sourcereg", name, {"properties": {"request": request}})
        properties: dict[str, Any] = cp.runs.wait(doc.id, timeout=60).document()["properties"]
        return properties

    hostile = "a%2F..%2F..%2Fescape%2Fx.tar"
    out = tmp_path / "disk" / "out"
    out.mkdir(parents=True)
    on_disk = export(_export_pipeline(cp, "sourcereg", out), "filerun", hostile)
    assert on_disk["provisioningState"] == "Succeeded", on_disk["response"]
    assert [p for p in tmp_path.rglob("*") if p.is_file() and "x.tar" in p.name] == [out / hostile]

    for container in ("transfer", "escape"):
        az.create_container(azurite, "srcacct", container)
    account_sas = generate_account_sas(
        "srcacct",
        azurite.account_key("srcacct"),
        ResourceTypes(container=True, object=True),
        AccountSasPermissions(read=True, write=True, list=True, add=True, create=True),
        datetime.now(UTC) + timedelta(hours=1),
    )
    cp.vaults.put(SUB, "rg", "nameskv", {})
    cp.vaults.set_secret(SUB, "rg", "nameskv", "accountsas", {"properties": {"value": account_sas}})
    target = {"uri": az.container_url(azurite, "srcacct", "transfer"), "keyVaultUri": SECRET}
    pipe = cp.pipelines.put(SUB, "rg", "sourcereg", "exportPipelines", "azpipe", {"properties": {"target": target}})[0]
    policy = {"objectId": pipe.document()["identity"]["principalId"], "permissions": {"secrets": ["get"]}}
    cp.vaults.set_policies(SUB, "rg", "nameskv", "add", {"properties": {"accessPolicies": [policy]}})
    in_azure = export(pipe, "azrun", hostile)
    assert in_azure["provisioningState"] == "Succeeded", in_azure["response"]
    assert az.list_blob_names(azurite, "srcacct", "escape") == []
    assert az.list_blob_names(azurite, "srcacct", "transfer") == [hostile]
    # The response's URI reads back as that blob: the name percent-encoded, as it was sent.
    uri = in_azure["response"]["target"]["uri"]
    assert uri.endswith("/transfer/a%252F..%252F..%252Fescape%252Fx.tar") and parse_blob_uri(uri).blob == hostile

    # Names that would leave the container, or that hold what no blob name should, are refused at PUT.
    for bad in ("../x.tar", "a/../../x.tar", "/x.tar", "a//x.tar", "a\\x.tar", "a\nx.tar", "a/./x.tar", ""):
        request = {"pipelineResourceId": pipe.id, "artifacts": [img.reference], "target": {"name": bad}}
        with pytest.raises(UsageError, match=r"invalid blob name|target\.name"):
            cp.runs.put(SUB, "rg", "sourcereg", "badrun", {"properties": {"request": request}})
    cp.close()
