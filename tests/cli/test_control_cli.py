"""The az-style control-plane commands (acr, pipelines, pipeline runs, identity, keyvault, storage,
configure, rest, serve), run as the real console script against real registries.

Local mode (no AIRLOCK_ENDPOINT: the API runs inside the CLI process on AIRLOCK_HOME) carries most
of the suite; one test runs the same flow against `airlock serve` over HTTP and expects the same
results. Containers are file:// directories, so no storage service or key vault is needed for runs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from airlock.testing import content
from airlock.testing.airlock_server import AirlockServer
from airlock.testing.console import Console
from airlock.testing.content import PushedArtifact
from airlock.testing.processes import refusing_port
from airlock.testing.registry_server import RegistryServer
from airlock.testing.samples import push_sample_set

RG = "transferrg"
SOURCE = "sourcereg1"
TARGET = "targetreg1"
EXPORT = "exportpipe1"
IMPORT = "importpipe1"
BLOB = "batch1.tar"
SUB = "00000000-0000-0000-0000-000000000000"
SECRET_VALUE = "sv=2024-01-01&sr=c&sp=rl&sig=planted-secret-value-7d1e"


@dataclass
class Cli(Console):
    """:class:`Console` with ``AIRLOCK_HOME`` at ``home`` itself and 200 columns, so tables do not
    wrap; ``ok_json`` for the flows."""

    def __post_init__(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)  # the commands run in it

    def _env(self) -> dict[str, str]:
        env = super()._env()
        env.update(AIRLOCK_HOME=str(self.home), COLUMNS="200")
        env.update(self.env)
        return env

    def ok_json(self, *args: str | Path) -> Any:
        return self.ok(*args).json()


def table_rows(text: str) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of az's plain table (columns separated by 2+ spaces, a dashed rule). A line
    that starts blank continues the row above (a long cell wrapped at 80 columns, such as an error
    naming a deep temporary path): its words are added to that row's last cell."""
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) >= 2 and set(lines[1].replace(" ", "")) == {"-"}, text
    split = re.compile(r"\s{2,}")
    rows: list[list[str]] = []
    for line in lines[2:]:
        if line.startswith(" ") and rows:
            rows[-1][-1] += " " + line.strip()
        else:
            rows.append(split.split(line.strip()))
    return split.split(lines[0].strip()), rows


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def samples(source_registry: RegistryServer) -> list[PushedArtifact]:
    return push_sample_set(source_registry.url)


@pytest.fixture(scope="module")
def refs(samples: list[PushedArtifact]) -> list[str]:
    return [a.reference for a in samples]


@dataclass
class Flow:
    cli: Cli
    container: Path
    registries: list[Any]
    export_pipeline: Any
    import_pipeline: Any
    import_stderr: str
    export_run: Any
    import_run: Any


def transfer_flow(cli: Cli, container: Path, source: RegistryServer, target: RegistryServer, refs: list[str]) -> Flow:
    """acr create x2, export and import pipelines, an export run and an import run of its blob."""
    container.mkdir(parents=True, exist_ok=True)
    registries = [
        cli.ok_json("acr", "create", "-g", RG, "-n", SOURCE, "--login-server", source.url),
        cli.ok_json("acr", "create", "-g", RG, "-n", TARGET, "--login-server", target.url),
    ]
    uri = container.as_uri()
    export_pipeline = cli.ok_json(
        "acr", "export-pipeline", "create", "-g", RG, "-r", SOURCE, "-n", EXPORT, "-c", uri, "-z", "OverwriteBlobs"
    )
    imported = cli.ok(
        "acr", "import-pipeline", "create", "-g", RG, "-r", TARGET, "-n", IMPORT, "-c", uri, "-e", "False"
    )
    export_run = cli.ok_json(
        "acr", "pipeline-run", "create", "-g", RG, "-r", SOURCE, "-p", EXPORT, "-n", "exportrun1",
        "-t", "export", "-b", BLOB, "-a", *refs,
    )  # fmt: skip
    import_run = cli.ok_json(
        "acr", "pipeline-run", "create", "-g", RG, "-r", TARGET, "-p", IMPORT, "-n", "importrun1",
        "-t", "import", "-b", BLOB,
    )  # fmt: skip
    return Flow(cli, container, registries, export_pipeline, imported.json(), imported.stderr, export_run, import_run)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    """`airlock serve` on a free port; a Cli whose commands go to it over HTTP (AIRLOCK_ENDPOINT)."""
    home = tmp_path_factory.mktemp("served") / "home"
    home.mkdir()
    served = AirlockServer(home, trigger_interval=3600, env={"NO_COLOR": "1"}, hermetic=True).start()
    try:
        # The client has a home of its own: the token comes from the environment, as on another machine.
        token = (home / "api-token").read_text().strip()
        yield Cli(home.parent / "client-home", env={"AIRLOCK_ENDPOINT": served.url, "AIRLOCK_TOKEN": token})
    finally:
        served.stop()
    assert "Traceback" not in (home.parent / f"serve-{served.port}.log").read_text()


@pytest.fixture(scope="module")
def flows(
    tmp_path_factory: pytest.TempPathFactory,
    server: Cli,
    source_registry: RegistryServer,
    target_registry: RegistryServer,
    refs: list[str],
) -> tuple[Flow, Flow]:
    """The same flow in local mode and against `airlock serve`, run side by side (they are independent)."""
    base = tmp_path_factory.mktemp("control")
    local = Cli(base / "home")
    with ThreadPoolExecutor(max_workers=2) as pool:
        # A space and capitals in the path: file:// container URIs keep their case and quoting.
        mine = pool.submit(transfer_flow, local, base / "Transfer Container", source_registry, target_registry, refs)
        served = pool.submit(transfer_flow, server, base / "served", source_registry, target_registry, refs)
        return mine.result(), served.result()


@pytest.fixture(scope="module")
def flow(flows: tuple[Flow, Flow]) -> Flow:
    return flows[0]


# ------------------------------------------------------------------------------------------ the transfer flow


def test_registries_and_pipelines_have_az_shapes(flow: Flow, source_registry: RegistryServer) -> None:
    source, target = flow.registries
    assert source["name"] == SOURCE
    assert (
        source["id"]
        == f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.ContainerRegistry/registries/{SOURCE}"
    )
    assert source["properties"]["loginServer"] == source_registry.url
    assert target["properties"]["exportPolicy"] == {"status": "enabled"}

    export = flow.export_pipeline
    assert export["type"] == "Microsoft.ContainerRegistry/registries/exportPipelines"
    # file:// paths keep their case (az lower-cases https URIs only in effect: a path is case-sensitive).
    assert export["properties"]["target"]["uri"] == flow.container.as_uri()
    assert export["properties"]["target"]["storageAccessMode"] == "SasToken"
    assert export["properties"]["options"] == ["OverwriteBlobs"]
    assert export["identity"]["type"] == "SystemAssigned"
    assert export["identity"]["principalId"]

    imp = flow.import_pipeline
    assert imp["properties"]["trigger"] == {"sourceTrigger": {"status": "Disabled"}}
    assert imp["properties"]["source"]["uri"] == flow.container.as_uri()
    assert flow.import_stderr == ""  # no secret, no ManagedIdentity: nothing to grant


def test_export_run_succeeds_with_a_catalog_digest(flow: Flow, refs: list[str]) -> None:
    run = flow.export_run
    props = run["properties"]
    assert props["provisioningState"] == "Succeeded", run
    assert props["response"]["status"] == "Succeeded"
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", props["response"]["catalogDigest"])
    assert props["request"]["artifacts"] == refs
    assert props["request"]["target"] == {"type": "AzureStorageBlob", "name": BLOB}
    assert (flow.container / BLOB).is_file()


def test_import_run_copies_every_artifact_digest_for_digest(
    flow: Flow, target_registry: RegistryServer, samples: list[PushedArtifact]
) -> None:
    props = flow.import_run["properties"]
    assert props["provisioningState"] == "Succeeded", flow.import_run
    assert props["request"]["source"] == {"type": "AzureStorageBlob", "name": BLOB}
    assert "artifacts" not in props["request"]
    assert props["response"]["importedArtifacts"]
    assert props["response"]["catalogDigest"] == flow.export_run["properties"]["response"]["catalogDigest"]
    for artifact in samples:
        _, media_type, digest = content.get_manifest(
            target_registry.url, artifact.repository, artifact.tag or artifact.digest
        )
        assert digest == artifact.digest, artifact.reference
        assert media_type == artifact.media_type


def test_run_lifecycle_noop_force_latest_failed_top_clean_delete(flow: Flow, refs: list[str]) -> None:
    cli = flow.cli
    export_args = ("acr", "pipeline-run", "create", "-g", RG, "-r", SOURCE, "-p", EXPORT, "-n", "exportrun1",
                   "-t", "export", "-b", BLOB, "-a", *refs)  # fmt: skip
    again, failed, latest = cli.parallel(
        export_args,
        ("acr", "pipeline-run", "create", "-g", RG, "-r", TARGET, "-p", IMPORT, "-n", "missingrun1",
         "-t", "import", "-b", "no-such-blob.tar"),
        ("acr", "pipeline-run", "create", "-g", RG, "-r", SOURCE, "-p", EXPORT, "-n", "latestrun1",
         "-t", "export", "-b", "multi.tar", "-a", "samples/multi"),
    )  # fmt: skip
    # An identical PUT is a no-op: the finished run comes back as it was.
    first = flow.export_run["properties"]["response"]
    assert again.json()["properties"]["response"]["startTime"] == first["startTime"]
    assert again.json()["properties"]["response"]["finishTime"] == first["finishTime"]
    # A failed run is printed, then the command fails with the run's error.
    message = failed.only_error(1, stdout_empty=False)
    assert message.startswith("pipeline run missingrun1 failed: ")
    printed = json.loads(failed.stdout)
    assert printed["properties"]["provisioningState"] == "Failed"
    assert printed["properties"]["response"]["pipelineRunErrorMessage"]
    # A bare repository means :latest, as in az.
    assert latest.json()["properties"]["request"]["artifacts"] == ["samples/multi:latest"]
    assert latest.json()["properties"]["provisioningState"] == "Succeeded"

    forced, top, dry = cli.parallel(
        (*export_args, "-f"),
        ("acr", "pipeline-run", "list", "-g", RG, "-r", TARGET, "--top", "1"),
        ("acr", "pipeline-run", "clean", "-g", RG, "-r", TARGET, "--dry-run", "-o", "table"),
    )
    props = forced.json()["properties"]
    assert props["provisioningState"] == "Succeeded"
    assert float(props["forceUpdateTag"]) > 0
    assert props["response"]["startTime"] >= first["finishTime"]
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", props["response"]["catalogDigest"])
    assert [r["name"] for r in top.json()] == ["missingrun1"]
    headers, rows = table_rows(dry.stdout)
    assert headers[-1] == "ERROR_MESSAGE"
    assert [(r[0], r[5]) for r in rows] == [("missingrun1", "Failed")]

    cleaned, deleted = cli.parallel(
        ("acr", "pipeline-run", "clean", "-g", RG, "-r", TARGET),
        ("acr", "pipeline-run", "delete", "-g", RG, "-r", SOURCE, "-n", "latestrun1"),
    )
    assert [r["name"] for r in cleaned.json()] == ["missingrun1"]  # so the dry run had deleted nothing
    assert deleted.returncode == 0 and deleted.stdout == "", deleted.where()

    listed, gone, again_deleted = cli.parallel(
        ("acr", "pipeline-run", "list", "-g", RG, "-r", TARGET),
        ("acr", "pipeline-run", "show", "-g", RG, "-r", SOURCE, "-n", "latestrun1"),
        ("acr", "pipeline-run", "delete", "-g", RG, "-r", SOURCE, "-n", "latestrun1"),
    )
    assert [r["name"] for r in listed.json()] == ["importrun1"]
    assert "latestrun1 not found" in gone.only_error(1)
    assert "latestrun1 not found" in again_deleted.only_error(1)


def test_show_list_table_and_query(flow: Flow) -> None:
    show, table, run_table, query, tsv = flow.cli.parallel(
        ("acr", "export-pipeline", "show", "-g", RG, "-r", SOURCE, "-n", EXPORT),
        ("acr", "import-pipeline", "list", "-g", RG, "-r", TARGET, "-o", "table"),
        ("acr", "pipeline-run", "show", "-g", RG, "-r", TARGET, "-n", "importrun1", "-o", "table"),
        ("acr", "import-pipeline", "list", "-g", RG, "-r", TARGET, "--query", "[].name"),
        ("acr", "pipeline-run", "show", "-g", RG, "-r", TARGET, "-n", "importrun1",
         "--query", "properties.response.catalogDigest", "-o", "tsv"),
    )  # fmt: skip
    assert show.json()["id"] == flow.export_pipeline["id"]

    headers, rows = table_rows(table.stdout)
    assert headers == ["NAME", "PROVISIONING_STATE", "STORAGE_ACCOUNT", "SOURCE_TRIGGER"]
    assert rows == [[IMPORT, "Succeeded", flow.container.as_uri(), "Disabled"]]

    headers, rows = table_rows(run_table.stdout)
    assert headers == ["NAME", "PIPELINE", "START_TIME", "DURATION", "SOURCE_TRIGGER", "STATUS", "ERROR_MESSAGE"]
    assert len(rows) == 1
    name, pipeline, start, duration, trigger, status = rows[0]  # no error message: the last cell is empty
    assert (name, pipeline, trigger, status) == ("importrun1", IMPORT, "False", "Succeeded")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", start)
    assert re.fullmatch(r"\d+:\d\d:\d\d", duration)

    assert query.json() == [IMPORT]
    assert tsv.stdout == flow.import_run["properties"]["response"]["catalogDigest"] + "\n"


def test_rest_reads_and_writes_arm_paths(flow: Flow, tmp_path: Path, target_registry: RegistryServer) -> None:
    cli = flow.cli
    url = f"/subscriptions/{{subscriptionId}}/resourceGroups/{RG}/providers/Microsoft.ContainerRegistry/registries"
    body = tmp_path / "registry.json"
    body.write_text(json.dumps({"properties": {"loginServer": target_registry.url}}))
    run, created = cli.parallel(
        ("rest", "--method", "get", "--url", f"{url}/{TARGET}/pipelineRuns/importrun1"),
        ("rest", "--method", "put", "--url", f"{url}/restreg1", "--body", f"@{body}"),
    )
    assert run.json()["id"] == flow.import_run["id"]
    assert created.json()["name"] == "restreg1"
    deleted = cli.ok("rest", "--method", "delete", "--url", f"{url}/restreg1")
    assert deleted.stdout == ""


# ------------------------------------------------------------------------------------------ identities, key vault


def test_identity_and_embedded_vault_flow(flow: Flow, tmp_path: Path) -> None:
    cli = flow.cli
    identity_run, vault_run = cli.parallel(
        ("identity", "create", "-g", RG, "-n", "pipeline-id"),
        ("keyvault", "create", "-g", RG, "-n", "transfer-kv"),
    )
    identity = identity_run.json()
    principal = identity["properties"]["principalId"]
    assert identity["properties"]["clientId"]
    assert vault_run.json()["properties"]["vaultUri"] == "https://transfer-kv.vault.azure.net/"

    value_file = tmp_path / "sas.txt"
    value_file.write_text(SECRET_VALUE + "\n")
    secret_uri = "https://TRANSFER-KV.vault.azure.net/secrets/ExportSas"
    set_args = ("keyvault", "secret", "set", "--vault-name", "transfer-kv", "-g", RG)
    stored, from_file, neither, both, no_vault, pipe = cli.parallel(
        (*set_args, "--name", "exportsas", "--value", SECRET_VALUE),
        (*set_args, "--name", "fromfile", "--file", value_file),
        (*set_args, "--name", "other"),
        (*set_args, "--name", "other", "--value", "v", "--file", value_file),
        ("keyvault", "secret", "set", "--vault-name", "no-such-kv", "-n", "s2", "-g", RG, "--value", SECRET_VALUE),
        # A pipeline with a secret URI and a user-assigned identity: create prints the grant it needs.
        ("acr", "export-pipeline", "create", "-g", RG, "-r", SOURCE, "-n", "kvexport1", "-c",
         flow.container.as_uri(), "-s", secret_uri, "-m", "SasToken", "-i", identity["id"]),
    )  # fmt: skip
    for run in (stored, from_file):
        assert SECRET_VALUE not in run.stdout + run.stderr
        assert run.json()["attributes"]["enabled"] is True
    assert stored.json()["id"].startswith("https://transfer-kv.vault.azure.net/secrets/exportsas/")
    assert "--value or --file" in neither.only_error(2)
    assert "--value or --file" in both.only_error(2)
    assert SECRET_VALUE not in no_vault.only_error((1, 2))
    doc = pipe.json()
    assert doc["properties"]["target"]["keyVaultUri"] == secret_uri.lower()  # az lower-cases -s
    assert doc["identity"]["type"] == "UserAssigned"
    assert doc["identity"]["userAssignedIdentities"][identity["id"]]["principalId"] == principal
    grant = f"airlock keyvault set-policy -n transfer-kv --object-id {principal} --secret-permissions get"
    assert grant in pipe.stderr

    shown, shown_file, listed, policy = cli.parallel(
        ("keyvault", "secret", "show", "--vault-name", "transfer-kv", "-n", "exportsas", "-g", RG,
         "--query", "value", "-o", "tsv"),
        ("keyvault", "secret", "show", "--vault-name", "transfer-kv", "-n", "fromfile", "-g", RG),
        ("keyvault", "secret", "list", "--vault-name", "transfer-kv", "-g", RG),
        ("keyvault", "set-policy", "-n", "transfer-kv", "-g", RG, "--object-id", principal,
         "--secret-permissions", "get", "list"),
    )  # fmt: skip
    assert shown.stdout == SECRET_VALUE + "\n"
    assert shown_file.json()["value"] == SECRET_VALUE  # the file's trailing newline is not part of it
    assert sorted(s["name"] for s in listed.json()) == ["exportsas", "fromfile"]
    assert SECRET_VALUE not in listed.stdout
    granted = [p for p in policy.json()["properties"]["accessPolicies"] if p["objectId"] == principal]
    assert [p["permissions"] for p in granted] == [{"secrets": ["get", "list"]}]


# ------------------------------------------------------------------------------------------ errors


def test_errors_are_one_line(flow: Flow, refs: list[str]) -> None:
    cli = flow.cli
    too_many = [f"samples/app:t{i}" for i in range(51)]
    run_args = ("acr", "pipeline-run", "create", "-g", RG, "-r", SOURCE, "-n", "badrun1", "-b", "x.tar")
    (
        four, dashed, missing_pipe, over_limit, unknown_opt, bad_output, bad_type, no_artifacts, bad_query,
        bad_mode, bad_trigger,
    ) = cli.parallel(
        ("acr", "create", "-g", RG, "-n", "abcd", "--login-server", "http://127.0.0.1:1"),
        ("acr", "create", "-g", RG, "-n", "my-registry", "--login-server", "http://127.0.0.1:1"),
        (*run_args, "-p", "nopipeline1", "-t", "export", "-a", "samples/app:1.0"),
        (*run_args, "-p", EXPORT, "-t", "export", "-a", *too_many),
        ("acr", "list", "-g", RG, "--bogus"),
        ("acr", "list", "-g", RG, "-o", "yaml"),
        (*run_args, "-p", EXPORT, "-t", "sideways", "-a", "samples/app:1.0"),
        (*run_args, "-p", EXPORT, "-t", "export"),
        ("acr", "list", "-g", RG, "--query", "[?"),
        ("acr", "export-pipeline", "create", "-g", RG, "-r", SOURCE, "-n", "expmode1", "-c",
         "https://acct.blob.core.windows.net/transfer", "-m", "Sas"),
        ("acr", "import-pipeline", "create", "-g", RG, "-r", TARGET, "-n", "imptrig1", "-c",
         flow.container.as_uri(), "-e", "maybe"),
    )  # fmt: skip
    assert "invalid registry name 'abcd'" in four.only_error(2)
    assert "invalid registry name 'my-registry'" in dashed.only_error(2)
    assert missing_pipe.only_error(1) == (
        f"Export pipeline nopipeline1 not found on registry {SOURCE} in the {RG} resource group."
    )
    assert "at most 50" in over_limit.only_error(2)
    assert "--bogus" in unknown_opt.only_error(2)
    assert "unknown output format 'yaml'" in bad_output.only_error(2)
    assert "must be either import or export" in bad_type.only_error(2)
    assert "artifacts cannot be empty" in no_artifacts.only_error(2)
    assert "invalid --query" in bad_query.only_error(2)
    assert "--storage-access-mode 'Sas'" in bad_mode.only_error(2)
    assert "must be either True or False" in bad_trigger.only_error(2)


# ------------------------------------------------------------------------------------------ airlock serve


def test_serve_gives_the_same_results_over_http(flows: tuple[Flow, Flow], server: Cli) -> None:
    local, remote = flows
    for mine, theirs in [
        *zip(local.registries, remote.registries, strict=True),
        (local.export_pipeline, remote.export_pipeline),
        (local.import_pipeline, remote.import_pipeline),
    ]:
        assert mine["id"] == theirs["id"]
        assert mine.keys() == theirs.keys()
        assert mine["properties"].keys() == theirs["properties"].keys()
    for mine, theirs in [(local.export_run, remote.export_run), (local.import_run, remote.import_run)]:
        assert theirs["properties"]["provisioningState"] == "Succeeded", theirs
        assert theirs["properties"]["request"] == mine["properties"]["request"]
        assert theirs["properties"]["response"].keys() == mine["properties"]["response"].keys()
    assert sorted(remote.import_run["properties"]["response"]["importedArtifacts"]) == sorted(
        local.import_run["properties"]["response"]["importedArtifacts"]
    )
    assert (remote.container / BLOB).is_file()

    wrong_token = Cli(server.home, env={**server.env, "AIRLOCK_TOKEN": "not-the-token"})
    with refusing_port() as port, ThreadPoolExecutor(max_workers=3) as pool:
        unreachable = Cli(server.home, env={"AIRLOCK_ENDPOINT": f"http://127.0.0.1:{port}", "AIRLOCK_TOKEN": "x"})
        missing = pool.submit(server, "acr", "pipeline-run", "show", "-g", RG, "-r", TARGET, "-n", "nosuchrun1")
        denied = pool.submit(wrong_token, "acr", "list", "-g", RG)
        nowhere = pool.submit(unreachable, "acr", "list", "-g", RG)
    assert "nosuchrun1 not found" in missing.result().only_error(1)
    assert "missing or invalid bearer token" in denied.result().only_error(1)
    assert "cannot reach the airlock API" in nowhere.result().only_error(1)
