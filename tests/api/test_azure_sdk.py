"""The official Azure SDK (azure-mgmt-containerregistry 14.0.0) against a real `airlock serve` over
HTTPS, with default polling: pipelines of both kinds created, run, polled, listed and deleted.

The server's certificate is self-signed and trusted through ``connection_verify``; the credential
is a static bearer token (the server's Owner token), as any TokenCredential would hand one over.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError
from azure.mgmt.containerregistry import ContainerRegistryManagementClient
from azure.mgmt.containerregistry.v2025_03_01_preview import models as m

from airlock.pipelines import arm
from airlock.testing import content
from airlock.testing.airlock_server import AirlockServer
from airlock.testing.images import push_oci_image
from airlock.testing.registry_server import RegistryServer

SUB = "11111111-2222-3333-4444-555555555555"
RG = "sdkrg"


class StaticToken:
    """A TokenCredential that hands out one token."""

    def __init__(self, token: str) -> None:
        self.token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self.token, int(time.time()) + 3600)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirlockServer]:
    home = tmp_path_factory.mktemp("sdk") / "home"
    home.mkdir()
    s = AirlockServer(home, tls=True).start()
    yield s
    s.stop()


@pytest.fixture
def clients(server: AirlockServer) -> Iterator[list[ContainerRegistryManagementClient]]:
    made: list[ContainerRegistryManagementClient] = []
    yield made
    for c in made:
        # uvicorn waits for open TLS connections before it stops
        c.close()  # type: ignore[no-untyped-call]  # the SDK's multi-API client leaves close() unannotated


def client(server: AirlockServer, made: list[ContainerRegistryManagementClient], **kwargs: Any) -> Any:
    token = (server.home / "api-token").read_text().strip()
    assert server.ca_cert is not None
    acr = ContainerRegistryManagementClient(
        StaticToken(token), SUB, base_url=server.url, connection_verify=str(server.ca_cert), **kwargs
    )
    made.append(acr)
    return acr


def create_registry(acr: Any, name: str, login_server: str) -> m.Registry:
    # ACR's loginServer is read-only, so the SDK's model would leave it out: send the body as it is.
    body = {"location": "westus", "sku": {"name": "Premium"}, "properties": {"loginServer": login_server}}
    # The callers' acr is on arm.SDK_API_VERSION (2025-03-01-preview), whose models m is.
    registry: m.Registry = acr.registries.begin_create(RG, name, io.BytesIO(json.dumps(body).encode())).result()
    return registry


def test_azure_sdk_creates_runs_polls_lists_and_deletes_both_pipeline_kinds(
    server: AirlockServer,
    clients: list[ContainerRegistryManagementClient],
    source_registry: RegistryServer,
    target_registry: RegistryServer,
    tmp_path: Path,
) -> None:
    image = push_oci_image(source_registry.url, "sdk/app", "1.0", layers=1, layer_size=2048, seed=71)
    container = tmp_path / "transfer"
    container.mkdir()
    # The SDK's default for pipelines and runs (2025-03-01-preview); its registries default is a
    # GA version, which is not a transfer version, so the registries client names its own.
    acr = client(server, clients)
    registries = client(server, clients, api_version=arm.SDK_API_VERSION)
    create_registry(registries, "sdksource", source_registry.url)
    create_registry(registries, "sdktarget", target_registry.url)

    vault = "https://sdkvault.vault.azure.net/secrets/sas"  # the SDK requires one; file: containers read none
    export = acr.export_pipelines.begin_create(
        RG,
        "sdksource",
        "sdkexport",
        m.ExportPipeline(
            identity=m.IdentityProperties(type="SystemAssigned"),
            target=m.ExportPipelineTargetProperties(
                type="AzureStorageBlobContainer", uri=container.as_uri(), key_vault_uri=vault
            ),
            options=["OverwriteBlobs"],
        ),
    ).result()
    assert export.provisioning_state == "Succeeded" and export.identity.principal_id
    imported = acr.import_pipelines.begin_create(
        RG,
        "sdktarget",
        "sdkimport",
        m.ImportPipeline(
            identity=m.IdentityProperties(type="SystemAssigned"),
            source=m.ImportPipelineSourceProperties(uri=container.as_uri(), key_vault_uri=vault),
            trigger=m.PipelineTriggerProperties(source_trigger=m.PipelineSourceTriggerProperties(status="Disabled")),
            options=["OverwriteTags"],
        ),
    ).result()
    assert imported.provisioning_state == "Succeeded"

    # Runs, with the SDK's default polling: .result() returns about a second after the run's end
    # (Retry-After: 1), not the 30 s the SDK waits without one.
    for registry, run_name, request in (
        (
            "sdksource",
            "sdkexportrun",
            m.PipelineRunRequest(
                pipeline_resource_id=export.id,
                artifacts=["sdk/app:1.0"],
                target=m.PipelineRunTargetProperties(type="AzureStorageBlob", name="sdk.tar"),
            ),
        ),
        (
            "sdktarget",
            "sdkimportrun",
            m.PipelineRunRequest(
                pipeline_resource_id=imported.id,
                source=m.PipelineRunSourceProperties(type="AzureStorageBlob", name="sdk.tar"),
            ),
        ),
    ):
        started = time.monotonic()
        run = acr.pipeline_runs.begin_create(RG, registry, run_name, m.PipelineRun(request=request)).result()
        returned = datetime.now(UTC)
        assert run.provisioning_state == "Succeeded", run.response.pipeline_run_error_message
        assert run.response.finish_time is not None and run.response.start_time is not None
        lag = (returned - run.response.finish_time).total_seconds()
        # Retry-After: 1 makes the SDK poll every second (measured: 1.0 s after the run's end); without
        # it the SDK waits 30 s. The bound leaves room for a loaded 2-core CI machine.
        assert lag < 5, f"{run_name}: result() came {lag:.2f} s after the run ended"
        assert time.monotonic() - started < 30
    assert content.list_tags(target_registry.url, "sdk/app") == ["1.0"]
    assert image.digest

    # Lists and gets, then deletes, for both kinds.
    for registry, pipelines, name in (
        ("sdksource", acr.export_pipelines, "sdkexport"),
        ("sdktarget", acr.import_pipelines, "sdkimport"),
    ):
        assert [p.name for p in pipelines.list(RG, registry)] == [name]
        assert pipelines.get(RG, registry, name).name == name
        runs = list(acr.pipeline_runs.list(RG, registry))
        assert len(runs) == 1 and runs[0].provisioning_state == "Succeeded"
        acr.pipeline_runs.begin_delete(RG, registry, runs[0].name).result()
        pipelines.begin_delete(RG, registry, name).result()
        assert list(pipelines.list(RG, registry)) == []
        assert list(acr.pipeline_runs.list(RG, registry)) == []


def test_azure_sdk_registries_get_list_and_patch(
    server: AirlockServer, clients: list[ContainerRegistryManagementClient], source_registry: RegistryServer
) -> None:
    registries = client(server, clients, api_version=arm.SDK_API_VERSION)
    create_registry(registries, "sdkpatched", source_registry.url)
    got = registries.registries.get(RG, "sdkpatched")
    assert got.sku.name == "Premium" and got.sku.tier == "Premium"
    assert "sdkpatched" in [r.name for r in registries.registries.list()]  # subscription scope
    assert "sdkpatched" in [r.name for r in registries.registries.list_by_resource_group(RG)]
    patched = registries.registries.begin_update(
        RG, "sdkpatched", m.RegistryUpdateParameters(tags={"team": "transfer"}, sku=m.Sku(name="Standard"))
    ).result()
    assert patched.tags == {"team": "transfer"} and patched.sku.name == "Standard"
    assert registries.registries.get(RG, "sdkpatched").login_server == source_registry.url

    # The SDK's own registries default is a GA version: a clean ARM error, not a silent success.
    with pytest.raises(HttpResponseError) as raised:
        client(server, clients).registries.get(RG, "sdkpatched")
    assert raised.value.status_code == 400 and raised.value.error is not None
    assert raised.value.error.code == "InvalidApiVersionParameter"


def test_azure_sdk_runs_an_export_with_the_selection_extension_and_reads_it_back(
    server: AirlockServer,
    clients: list[ContainerRegistryManagementClient],
    source_registry: RegistryServer,
    tmp_path: Path,
) -> None:
    for tag in ("1.0", "1.1", "2.0"):
        push_oci_image(source_registry.url, "sdk/sel", tag, layers=1, layer_size=256, seed=72)
    container = tmp_path / "selected"
    container.mkdir()
    acr = client(server, clients)
    create_registry(client(server, clients, api_version=arm.SDK_API_VERSION), "sdkselsource", source_registry.url)
    export = acr.export_pipelines.begin_create(
        RG, "sdkselsource", "sdkselexport",
        m.ExportPipeline(
            identity=m.IdentityProperties(type="SystemAssigned"),
            target=m.ExportPipelineTargetProperties(
                type="AzureStorageBlobContainer", uri=container.as_uri(),
                key_vault_uri="https://sdkvault.vault.azure.net/secrets/sas",
            ),
        ),
    ).result()  # fmt: skip
    # The SDK's models do not know airlock's request.selection: the body goes as it is (its IO
    # overload), and the run it polls and reads back carries the field it ignores.
    body = {
        "properties": {
            "request": {
                "pipelineResourceId": export.id,
                "selection": {"repositories": [{"name": "sdk/sel", "semver": "<2", "keep": 1}]},
                "target": {"type": "AzureStorageBlob", "name": "sel.tar"},
            }
        }
    }
    run = acr.pipeline_runs.begin_create(RG, "sdkselsource", "sdkselrun", io.BytesIO(json.dumps(body).encode()))
    done = run.result()
    assert done.provisioning_state == "Succeeded", done.response.pipeline_run_error_message
    assert done.request.pipeline_resource_id == export.id
    assert acr.pipeline_runs.get(RG, "sdkselsource", "sdkselrun").provisioning_state == "Succeeded"
    with tarfile.open(container / "sel.tar") as tf:
        catalog = json.loads(tf.extractfile("airlock-catalog.json").read())  # type: ignore[union-attr]
    assert [a["reference"] for a in catalog["artifacts"]] == ["sdk/sel:1.1"]  # the newest below 2
