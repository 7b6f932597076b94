"""Export pipeline runs with airlock's ``properties.request.selection`` extension (issue 12): any number
of artifacts, while ACR's ``artifacts`` keeps ACR's meaning and its 50-artifact limit; the run's
response lists what was exported. Local mode, file:// containers, through the real console script."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airlock.testing.console import Console
from airlock.testing.content import Client
from airlock.testing.images import push_oci_image, push_oci_index
from airlock.testing.registry_server import RegistryServer

RG = "transferrg"
SOURCE = "sourcereg"
EXPORT = "bulkexport"
TAGS = [f"1.{i}.0" for i in range(55)]


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory, source_registry: RegistryServer) -> Console:
    """A home with a source registry of 55 tags of bulk/app and an export pipeline to a file:// container."""
    home = tmp_path_factory.mktemp("runs-home")
    image = push_oci_image(source_registry.url, "bulk/app", TAGS[0], layers=1, layer_size=256, seed=5)
    with Client(source_registry.url, None) as client:
        for tag in TAGS[1:]:
            client.put_manifest("bulk/app", tag, image.media_type, image.manifest)
    push_oci_index(source_registry.url, "bulk/multi", "1.0", layers=1, layer_size=256, seed=6)
    cli = Console(home=home, env={"COLUMNS": "300"})
    cli.ok("acr", "create", "-g", RG, "-n", SOURCE, "--login-server", source_registry.url)
    container = home / "container"
    container.mkdir()
    cli.ok("acr", "export-pipeline", "create", "-g", RG, "-r", SOURCE, "-n", EXPORT, "-c", container.as_uri(),
           "-z", "OverwriteBlobs")  # fmt: skip
    return cli


def _run(cli: Console, name: str, *args: str) -> list[str]:
    return ["acr", "pipeline-run", "create", "-g", RG, "-r", SOURCE, "-p", EXPORT, "-n", name, "-t", "export",
            "-b", f"{name}.tar", *args]  # fmt: skip


def test_pipeline_run_selection_extension_exceeds_fifty_artifacts(console: Console, tmp_path: Path) -> None:
    selection = tmp_path / "nightly.yaml"
    selection.write_text(
        "repositories:\n  - name: bulk/*\n    tags: '1\\.\\d+\\.0'\n    platforms: [linux/arm64]\n"
        "artifacts:\n  - bulk/multi:1.0\n"
    )
    run = console.ok(*_run(console, "selrun1", "--selection", str(selection))).json()
    props = run["properties"]
    assert props["provisioningState"] == "Succeeded", run
    assert props["request"]["selection"] == {
        "repositories": [{"name": "bulk/*", "tags": r"1\.\d+\.0", "platforms": ["linux/arm64"]}],
        "artifacts": ["bulk/multi:1.0"],
    }
    assert props["request"]["artifacts"] == []
    exported = props["response"]["exportedArtifacts"]
    # artifacts first, then each repository's tags in the registry's order
    assert exported[0] == "bulk/multi:1.0"
    assert sorted(exported[1:]) == sorted(f"bulk/app:{t}" for t in TAGS)
    assert len(exported) == 56 > 50


def test_pipeline_run_selection_extension_goes_through_the_arm_body_with_acr_artifacts(
    console: Console, source_registry: RegistryServer
) -> None:
    pipeline = console.ok("acr", "export-pipeline", "show", "-g", RG, "-r", SOURCE, "-n", EXPORT).json()["id"]
    path = _run_path("selrun2")
    body = {
        "properties": {
            "request": {
                "pipelineResourceId": pipeline,
                "artifacts": ["bulk/multi:1.0"],  # ACR's field, ACR's meaning: every platform travels
                "selection": {"repositories": [{"name": "bulk/app", "semver": ">=1.50", "keep": 2}]},
                "target": {"type": "AzureStorageBlob", "name": "selrun2.tar"},
            }
        }
    }
    console.ok("rest", "--method", "put", "--url", path, "--body", json.dumps(body))
    run = console.ok("acr", "pipeline-run", "show", "-g", RG, "-r", SOURCE, "-n", "selrun2").json()
    assert run["properties"]["provisioningState"] == "Succeeded", run
    assert run["properties"]["response"]["exportedArtifacts"] == [
        "bulk/multi:1.0",
        "bulk/app:1.54.0",
        "bulk/app:1.53.0",
    ]


def test_the_server_checks_the_selection_extension_naming_the_field(console: Console) -> None:
    pipeline = console.ok("acr", "export-pipeline", "show", "-g", RG, "-r", SOURCE, "-n", EXPORT).json()["id"]
    request = {
        "pipelineResourceId": pipeline,
        "selection": {"repositories": [{"name": "bulk/app", "keep": 0}]},
        "target": {"type": "AzureStorageBlob", "name": "bad.tar"},
    }
    message = console(
        "rest",
        "--method",
        "put",
        "--url",
        _run_path("badrun3"),
        "--body",
        json.dumps({"properties": {"request": request}}),
    ).only_error(2)
    assert "properties.request.selection.repositories.0.keep" in message, message
    assert console("acr", "pipeline-run", "show", "-g", RG, "-r", SOURCE, "-n", "badrun3").only_error(1)


def _run_path(name: str) -> str:
    sub = f"{'0' * 8}-{'0' * 4}-{'0' * 4}-{'0' * 4}-{'0' * 12}"
    return f"/subscriptions/{sub}/resourceGroups/{RG}/providers/Microsoft.ContainerRegistry/registries/{SOURCE}" \
        f"/pipelineRuns/{name}"  # fmt: skip


def test_acr_shaped_artifacts_keep_the_fifty_limit(console: Console) -> None:
    fifty_one = [f"bulk/app:{t}" for t in TAGS[:51]]
    message = console(*_run(console, "acrrun1", "-a", *fifty_one)).only_error(2)
    assert "properties.request.artifacts" in message and "at most 50" in message, message
    assert console("acr", "pipeline-run", "show", "-g", RG, "-r", SOURCE, "-n", "acrrun1").only_error(1)
    # Fifty is fine, as in ACR.
    run = console.ok(*_run(console, "acrrun2", "-a", *fifty_one[:50])).json()
    assert len(run["properties"]["response"]["exportedArtifacts"]) == 50


def test_a_selection_is_for_export_runs_and_is_checked_when_the_run_is_put(console: Console, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("repositories:\n  - name: bulk/app\n    semver: '~1'\n")
    message = console(*_run(console, "badrun1", "--selection", str(bad))).only_error(2)
    assert message.startswith(f"selection file {bad}: repositories.0.semver:"), message
    other = tmp_path / "other.yaml"
    other.write_text("artifacts:\n  - registry.example.com/bulk/app:1.0.0\n")
    message = console(*_run(console, "badrun2", "--selection", str(other))).only_error(2)
    assert "registry.example.com" in message, message
