"""Source trigger rules, restarts, and every secret / storage access mode, on the control plane itself."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airlock.errors import ResourceConflict
from airlock.oci.reference import ArtifactReference, RegistryURL
from airlock.pipelines.models import PipelineRun
from airlock.pipelines.plane import ControlPlane
from airlock.pipelines.store import SqlResourceRepository
from airlock.pipelines.trigger import SourceTrigger
from airlock.registry.client import RegistryClient
from airlock.secrets.azure_key_vault import AzureKeyVaultStore
from airlock.secrets.base import Principal
from airlock.secrets.hashicorp_vault import HashiCorpVaultStore
from airlock.storage.location import open_blob, parse_blob_uri
from airlock.testing import azurite as az
from airlock.testing.azurite import AzuriteServer, StorageTokenCredential
from airlock.testing.content import PushedArtifact
from airlock.testing.helm import push_helm_chart
from airlock.testing.images import push_oci_image
from airlock.testing.keyvault import FakeCredential, FakeKeyVault
from airlock.testing.openbao import OpenBaoServer
from airlock.testing.registry_server import RegistryServer
from airlock.transfer.export import export_artifacts
from airlock.wiring import Adapters, open_control_plane

SUB = "00000000-0000-0000-0000-000000000000"


@pytest.fixture(scope="module")
def samples(source_registry: RegistryServer) -> list[PushedArtifact]:
    return [
        push_helm_chart(source_registry.url, "charts/app", "1.0.0", seed=21),
        push_oci_image(source_registry.url, "apps/web", "2.0", seed=22),
    ]


@pytest.fixture(scope="module")
def archive(samples: list[PushedArtifact], source_registry: RegistryServer, workdir: Path) -> Path:
    path = workdir / "trigger-source.tar"
    export_artifacts(
        client=RegistryClient(RegistryURL.parse(source_registry.url), use_auth_files=False),
        artifacts=[ArtifactReference.parse(a.reference) for a in samples],
        target=open_blob(parse_blob_uri(path.as_uri())),
    )
    return path


def plane(home: Path, **adapters: Any) -> ControlPlane:
    return open_control_plane(home, Adapters(**adapters))


def registry(cp: ControlPlane, name: str, server: RegistryServer) -> None:
    cp.registries.put(SUB, "rg", name, {"properties": {"loginServer": server.url}})


def import_pipeline(
    cp: ControlPlane,
    reg: str,
    name: str,
    source: dict[str, Any],
    options: list[str] | None = None,
    identity: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"properties": {"source": source, "options": options or []}}
    if identity:
        body["identity"] = identity
    return cp.pipelines.put(SUB, "rg", reg, "importPipelines", name, body)[0].document()


def wait(cp: ControlPlane, rid: str) -> dict[str, Any]:
    return cp.runs.wait(rid, timeout=60).document()


def document(cp: ControlPlane, rid: str) -> dict[str, Any]:
    """The stored document of ``rid``, read as the repository reads it."""
    found = SqlResourceRepository(cp.engine).get_any(rid)
    assert found is not None, rid
    return found.document()


def test_trigger_rules_on_a_directory_container(
    tmp_path: Path, archive: Path, target_registry: RegistryServer, samples: list[PushedArtifact]
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    cp = plane(tmp_path / "home")
    registry(cp, "targetreg", target_registry)
    pipeline = import_pipeline(cp, "targetreg", "inboxpipe", {"uri": inbox.as_uri()})
    trigger = SourceTrigger(cp, interval=3600)

    (inbox / "notes.txt").write_text("not an archive")
    old = inbox / "old.tar"
    old.write_bytes(archive.read_bytes())
    sixty_one_days_ago = time.time() - 61 * 86400
    os.utime(old, (sixty_one_days_ago, sixty_one_days_ago))
    (inbox / "batch.tar").write_bytes(archive.read_bytes())

    started = trigger.poll()
    assert len(started) == 1
    run = wait(cp, started[0])
    assert run["properties"]["provisioningState"] == "Succeeded", run["properties"]["response"]
    assert run["properties"]["request"]["source"]["name"] == "batch.tar"
    report = document(cp, pipeline["id"])["properties"]["sourceTriggerReport"]
    reasons = {item["blob"]: item["reason"] for item in report["skipped"]}
    assert "not a transfer blob" in reasons["notes.txt"]
    assert "(it looks like data that is not a tar archive)" in reasons["notes.txt"]
    assert "60 days" in reasons["old.tar"]

    # Each blob version once: polling again starts nothing, even from a new process on the same home.
    assert trigger.poll() == []
    cp.close()
    cp2 = plane(tmp_path / "home")
    assert SourceTrigger(cp2, interval=3600).poll() == []
    # An updated blob (a new version) is imported again.
    (inbox / "batch.tar").write_bytes(archive.read_bytes())
    os.utime(inbox / "batch.tar", (time.time() + 5, time.time() + 5))
    again = SourceTrigger(cp2, interval=3600).poll()
    assert len(again) == 1 and wait(cp2, again[0])["properties"]["provisioningState"] == "Succeeded"
    cp2.close()


def test_restart_fails_orphaned_runs_and_the_trigger_retries_them(
    tmp_path: Path, archive: Path, target_registry: RegistryServer
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "batch.tar").write_bytes(archive.read_bytes())
    home = tmp_path / "home"
    cp = plane(home)
    registry(cp, "targetreg", target_registry)
    import_pipeline(cp, "targetreg", "inboxpipe", {"uri": inbox.as_uri()})
    started = SourceTrigger(cp, interval=3600).poll()
    wait(cp, started[0])
    # Simulate a server killed mid-run: the run is back in Running, owned by a process that is gone.
    doc = document(cp, started[0])
    doc["properties"]["provisioningState"] = "Creating"
    doc["properties"]["response"] = {"status": "Running", "progress": {"percentage": "40"}}
    SqlResourceRepository(cp.engine).put(
        PipelineRun.model_validate(doc),
        state="Running",
        owner=f"{socket.gethostname()}:999999999:1",  # a process of this host that is gone
    )
    cp.close()

    cp2 = plane(home)
    assert [r.lower() for r in cp2.runs.recover()] == [started[0].lower()]
    failed = document(cp2, started[0])
    assert failed["properties"]["provisioningState"] == "Failed"
    assert "interrupted" in failed["properties"]["response"]["pipelineRunErrorMessage"]
    assert SqlResourceRepository(cp2.engine).ids_in_state(PipelineRun, "Running") == []
    # The interrupted import is retried once by the trigger (the blob is neither skipped nor doubled).
    retried = SourceTrigger(cp2, interval=3600).poll()
    assert len(retried) == 1
    assert wait(cp2, retried[0])["properties"]["provisioningState"] == "Succeeded"
    assert SourceTrigger(cp2, interval=3600).poll() == []
    cp2.close()


def test_rerun_of_a_running_run_is_refused(
    tmp_path: Path, source_registry: RegistryServer, samples: list[PushedArtifact]
) -> None:
    cp = plane(tmp_path / "home")
    registry(cp, "sourcereg", source_registry)
    out = tmp_path / "out"
    out.mkdir()
    pipe = cp.pipelines.put(
        SUB,
        "rg",
        "sourcereg",
        "exportPipelines",
        "outpipe",
        {"properties": {"target": {"uri": out.as_uri()}, "options": ["OverwriteBlobs"]}},
    )[0].document()
    body = {
        "properties": {
            "request": {
                "pipelineResourceId": pipe["id"],
                "artifacts": ["charts/app:1.0.0"],
                "target": {"name": "b.tar"},
            },
            "forceUpdateTag": "1",
        }
    }
    doc, started = cp.runs.put(SUB, "rg", "sourcereg", "exportrun1", body)
    assert started
    body["properties"]["forceUpdateTag"] = "2"
    try:
        cp.runs.put(SUB, "rg", "sourcereg", "exportrun1", body)
    except ResourceConflict as exc:
        assert "still running" in str(exc)
    done = wait(cp, doc.id)
    assert done["properties"]["provisioningState"] == "Succeeded"
    doc2, started2 = cp.runs.put(SUB, "rg", "sourcereg", "exportrun1", body)
    assert started2 and wait(cp, doc2.id)["properties"]["provisioningState"] == "Succeeded"
    cp.close()


# -- secret stores and storage access modes, end to end through export runs -----------------------------


@pytest.fixture(scope="module")
def fake_kv(workdir: Path) -> Iterator[FakeKeyVault]:
    with FakeKeyVault.start(workdir / "kv") as kv:
        yield kv


@pytest.fixture(scope="module")
def openbao(workdir: Path) -> Iterator[OpenBaoServer]:
    with OpenBaoServer.start(workdir / "bao") as server:
        yield server


def _export(cp: ControlPlane, reg: str, name: str, target: dict[str, Any]) -> dict[str, Any]:
    pipe = cp.pipelines.put(
        SUB, "rg", reg, "exportPipelines", name, {"properties": {"target": target, "options": ["OverwriteBlobs"]}}
    )[0].document()
    run_name = name + "run"
    doc, _ = cp.runs.put(
        SUB,
        "rg",
        reg,
        run_name,
        {
            "properties": {
                "request": {
                    "pipelineResourceId": pipe["id"],
                    "artifacts": ["charts/app:1.0.0"],
                    "target": {"name": f"{name}.tar"},
                },
                "forceUpdateTag": str(time.time()),
            }
        },
    )
    return wait(cp, doc.id)


def test_sas_in_azure_key_vault_read_as_the_pipeline_identity(
    tmp_path: Path,
    fake_kv: FakeKeyVault,
    azurite: AzuriteServer,
    source_registry: RegistryServer,
    samples: list[PushedArtifact],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AIRLOCK_STORAGE_HOSTS", azurite.storage_host)  # pipelines may send it their SAS
    store = AzureKeyVaultStore(
        credential_for=lambda p: FakeCredential(p.principal_id if p else "process"),
        connection_verify=str(fake_kv.ca_cert),
        client_options={"retry_total": 0},
    )
    cp = plane(tmp_path / "home", extra_stores=[store])
    registry(cp, "sourcereg", source_registry)
    az.create_container(azurite, "srcacct", "akv")
    fake_kv.set_secret("exportsas", "?" + az.container_sas(azurite, "srcacct", "akv", permissions="racwl"))
    target = {"uri": az.container_url(azurite, "srcacct", "akv"), "keyVaultUri": fake_kv.secret_uri("exportsas")}
    denied = _export(cp, "sourcereg", "akvpipe", target)
    message = denied["properties"]["response"]["pipelineRunErrorMessage"]
    principal = cp.pipelines.get(SUB, "rg", "sourcereg", "exportPipelines", "akvpipe").document()["identity"]
    assert "exportsas" in message and principal["principalId"] in message and "'get'" in message
    fake_kv.grant(principal["principalId"], "get")
    ok = _export(cp, "sourcereg", "akvpipe", target)
    assert ok["properties"]["provisioningState"] == "Succeeded", ok["properties"]["response"]
    cp.close()


def test_sas_in_openbao_read_with_the_identity_token(
    tmp_path: Path,
    openbao: OpenBaoServer,
    azurite: AzuriteServer,
    source_registry: RegistryServer,
    samples: list[PushedArtifact],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AIRLOCK_STORAGE_HOSTS", azurite.storage_host)
    az.create_container(azurite, "srcacct", "bao")
    openbao.put_secret("pipelines/export-sas", value=az.container_sas(azurite, "srcacct", "bao", permissions="racwl"))
    openbao.write_policy("export-sas", 'path "secret/data/pipelines/export-sas" { capabilities = ["read"] }')
    tokens: dict[str, str] = {}
    cp = plane(
        tmp_path / "home",
        extra_stores=[HashiCorpVaultStore(token_for=lambda p: tokens.get(p.principal_id) if p else None)],
    )
    registry(cp, "sourcereg", source_registry)
    target = {
        "uri": az.container_url(azurite, "srcacct", "bao"),
        "keyVaultUri": openbao.secret_uri("pipelines/export-sas"),
    }
    pipe = cp.pipelines.put(SUB, "rg", "sourcereg", "exportPipelines", "baopipe", {"properties": {"target": target}})[
        0
    ].document()
    tokens[pipe["identity"]["principalId"]] = openbao.create_token(["default"])  # no read on the path: denied
    denied = _export(cp, "sourcereg", "baopipe", target)
    assert "read" in denied["properties"]["response"]["pipelineRunErrorMessage"]
    tokens[pipe["identity"]["principalId"]] = openbao.create_token(["export-sas"])
    ok = _export(cp, "sourcereg", "baopipe", target)
    assert ok["properties"]["provisioningState"] == "Succeeded", ok["properties"]["response"]
    cp.close()


def test_managed_identity_storage_mode_with_a_user_assigned_identity(
    tmp_path: Path, source_registry: RegistryServer, samples: list[PushedArtifact], monkeypatch: pytest.MonkeyPatch
) -> None:
    with AzuriteServer.start(tmp_path / "azo", accounts=("miacct",), https=True, oauth=True) as server:
        assert server.ca_cert is not None
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(server.ca_cert))
        monkeypatch.setenv("AIRLOCK_STORAGE_HOSTS", server.storage_host)  # the server's identity may go there
        az.create_container(server, "miacct", "transfer")
        used: list[Principal] = []

        def credential(p: Principal) -> object:
            used.append(p)
            return StorageTokenCredential(p.principal_id)

        cp = plane(tmp_path / "home", storage_credential=credential)
        registry(cp, "sourcereg", source_registry)
        uai = cp.identities.put(SUB, "rg", "pipelineidentity", {})[0].document()
        pipe = cp.pipelines.put(
            SUB,
            "rg",
            "sourcereg",
            "exportPipelines",
            "mipipe",
            {
                "identity": {"type": "UserAssigned", "userAssignedIdentities": {uai["id"]: {}}},
                "properties": {
                    "target": {
                        "uri": az.container_url(server, "miacct", "transfer"),
                        "storageAccessMode": "ManagedIdentity",
                        "keyVaultUri": "https://ignoredvault.vault.azure.net/secrets/unused",  # dropped (MI)
                    }
                },
            },
        )[0].document()
        assert pipe["properties"]["target"]["keyVaultUri"] is None
        assert pipe["identity"]["principalId"] is None
        doc, _ = cp.runs.put(
            SUB,
            "rg",
            "sourcereg",
            "mirun1",
            {
                "properties": {
                    "request": {
                        "pipelineResourceId": pipe["id"],
                        "artifacts": ["apps/web:2.0"],
                        "target": {"name": "mi.tar"},
                    }
                }
            },
        )
        run = wait(cp, doc.id)
        assert run["properties"]["provisioningState"] == "Succeeded", run["properties"]["response"]
        assert used and used[0].principal_id == uai["properties"]["principalId"]
        assert used[0].client_id == uai["properties"]["clientId"]
        assert az.list_blob_names(server, "miacct", "transfer") == ["mi.tar"]
        cp.close()


def test_trigger_on_azure_reports_what_it_passes_over(
    tmp_path: Path,
    azurite: AzuriteServer,
    archive: Path,
    target_registry: RegistryServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A copy tool that strips metadata still gets imported (with a warning); no List permission is reported."""
    monkeypatch.setenv("AIRLOCK_STORAGE_HOSTS", azurite.storage_host)
    az.create_container(azurite, "dstacct", "landing")
    az.upload_blob(azurite, "dstacct", "landing", "stripped.tar", archive.read_bytes())  # no category metadata
    az.upload_blob(azurite, "dstacct", "landing", "readme.md", b"# hello", metadata={"category": "docs"})
    cp = plane(tmp_path / "home")
    registry(cp, "targetreg", target_registry)
    cp.vaults.put(SUB, "rg", "landingkv", {})
    full = az.container_sas(azurite, "dstacct", "landing", permissions="rdl")
    no_list = az.container_sas(azurite, "dstacct", "landing", permissions="rd")
    cp.vaults.set_secret(SUB, "rg", "landingkv", "full", {"properties": {"value": full}})
    cp.vaults.set_secret(SUB, "rg", "landingkv", "nolist", {"properties": {"value": no_list}})
    source = {
        "uri": az.container_url(azurite, "dstacct", "landing"),
        "keyVaultUri": "https://landingkv.vault.azure.net/secrets/nolist",
    }
    pipe = import_pipeline(cp, "targetreg", "landingpipe", source)
    policy = {"objectId": pipe["identity"]["principalId"], "permissions": {"secrets": ["get"]}}
    cp.vaults.set_policies(SUB, "rg", "landingkv", "add", {"properties": {"accessPolicies": [policy]}})
    trigger = SourceTrigger(cp, interval=3600)
    assert trigger.poll() == []
    report = document(cp, pipe["id"])["properties"]["sourceTriggerReport"]
    assert report["skipped"][0]["blob"] == "*" and "permission" in report["skipped"][0]["reason"]
    assert "sig=" not in str(report)

    source["keyVaultUri"] = "https://landingkv.vault.azure.net/secrets/full"
    pipe = import_pipeline(cp, "targetreg", "landingpipe", source)
    started = trigger.poll()
    assert len(started) == 1
    assert wait(cp, started[0])["properties"]["provisioningState"] == "Succeeded"
    report = document(cp, pipe["id"])["properties"]["sourceTriggerReport"]
    assert [w["blob"] for w in report["warnings"]] == ["stripped.tar"]
    assert "stripped" in report["warnings"][0]["warning"]
    assert [s["blob"] for s in report["skipped"]] == ["readme.md"]
    cp.close()
