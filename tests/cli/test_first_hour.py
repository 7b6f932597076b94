"""A newcomer's first hour (issue 9): what tripped a new user, each guarded by a test named for it.

Everything runs through the real console script, against real registries (and Azurite where the
item is about Azure storage), in local mode on a private AIRLOCK_HOME.
"""

from __future__ import annotations

import inspect
import json
import shlex
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import pytest
import typer
import typer.core

from airlock.cli.argv import expand_multi, hoist_global_args
from airlock.cli.helptext import examples
from airlock.cli.main import app
from airlock.oci.digest import Digest
from airlock.oci.reference import ArtifactReference, RegistryURL
from airlock.pipelines.resources import check_name, check_resource_group
from airlock.storage.location import parse_blob_uri, parse_container_uri
from airlock.testing import content
from airlock.testing.azurite import AzuriteServer
from airlock.testing.console import Console
from airlock.testing.content import PushedArtifact
from airlock.testing.images import push_oci_image
from airlock.testing.referrers import push_referrer
from airlock.testing.registry_server import RegistryServer
from airlock.transfer.options import EXPORT_OPTIONS, IMPORT_OPTIONS, parse_options

RG = "firsthourrg"


@pytest.fixture
def cli(tmp_path: Path) -> Console:
    return Console(home=tmp_path)


@pytest.fixture(scope="module")
def signed(source_registry: RegistryServer) -> tuple[PushedArtifact, PushedArtifact]:
    image = push_oci_image(source_registry.url, "newcomer/app", "1.0", seed=91)
    signature = push_referrer(source_registry.url, "newcomer/app", image, seed=92)
    return image, signature


def _artifacts(cli: Console, archive: Path) -> set[str]:
    return {a["digest"] for a in cli.ok("inspect", archive).json()["artifacts"]}


# ------------------------------------------------------------------------------ 1: options mean what they say


def test_export_option_include_referrers_exports_signatures_like_the_flag(
    cli: Console, source_registry: RegistryServer, signed: tuple[PushedArtifact, PushedArtifact]
) -> None:
    image, signature = signed
    by_option = cli.home / "by-option.tar"
    by_flag = cli.home / "by-flag.tar"
    base = ["export", "--source-registry", source_registry.url, "-a", image.reference]
    cli.ok(*base, "--target", by_option, "--options", "IncludeReferrers")
    cli.ok(*base, "--target", by_flag, "--include-referrers")
    assert signature.digest in _artifacts(cli, by_option)
    assert _artifacts(cli, by_option) == _artifacts(cli, by_flag)
    plain = cli.home / "plain.tar"
    cli.ok(*base, "--target", plain)
    assert signature.digest not in _artifacts(cli, plain)


def test_export_pipeline_option_include_referrers_exports_signatures(
    cli: Console, source_registry: RegistryServer, signed: tuple[PushedArtifact, PushedArtifact], tmp_path: Path
) -> None:
    image, signature = signed
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    cli.ok("acr", "create", "-g", RG, "-n", "refsreg1", "--login-server", source_registry.url)
    pipeline: list[str | Path] = [
        "acr", "export-pipeline", "create", "-g", RG, "-r", "refsreg1", "-n", "refsexport", "-c", outbox
    ]  # fmt: skip
    cli.ok(*pipeline, "--options", "IncludeReferrers")
    run = ["acr", "pipeline-run", "create", "-g", RG, "-r", "refsreg1", "-p", "refsexport", "-t", "export"]
    cli.ok(*run, "-n", "refsrun1", "-b", "signed.tar", "-a", image.reference)
    assert {image.digest, signature.digest} <= _artifacts(cli, outbox / "signed.tar")


def test_every_option_a_pipeline_help_lists_is_accepted_and_kept(cli: Console, tmp_path: Path) -> None:
    container = tmp_path / "transfer"
    container.mkdir()
    cli.ok("acr", "create", "-g", RG, "-n", "optionsreg", "--login-server", "http://127.0.0.1:9")
    doc = cli.ok(
        "acr", "export-pipeline", "create", "-g", RG, "-r", "optionsreg", "-n", "optionsexport", "-c", container,
        "--options", "OverwriteBlobs", "ContinueOnErrors", "IncludeReferrers",
    ).json()  # fmt: skip
    assert doc["properties"]["options"] == ["OverwriteBlobs", "ContinueOnErrors", "IncludeReferrers"]
    assert "warnings" not in doc["properties"]


# ------------------------------------------------------------------------------ 2: examples run as written


def _commands() -> list[tuple[list[str], object]]:
    root = typer.main.get_command(app)
    out: list[tuple[list[str], object]] = []
    stack: list[tuple[list[str], object]] = [([], root)]
    while stack:
        path, command = stack.pop()
        out.append((path, command))
        for name, sub in (getattr(command, "commands", None) or {}).items():
            stack.append(([*path, name], sub))
    return out


_NAME_FLAGS = {"-r", "--registry", "-p", "--pipeline"}


def _check_values(path: list[str], args: list[str]) -> None:
    """The values a server or engine would refuse, checked with the same functions they use."""
    for flag, value in zip(args, [*args[1:], ""], strict=True):
        if flag in ("-g", "--resource-group"):
            check_resource_group(value)
        elif flag == "--registry" and path[0] == "inventory":  # a registry URL there, not an ACR name
            RegistryURL.parse(value)
        elif flag in _NAME_FLAGS or (flag in ("-n", "--name") and path[0] == "acr"):
            check_name(value, f"{' '.join(path)} {flag}")
        elif flag in ("-c", "--storage-container-uri"):
            parse_container_uri(value)
        elif flag in ("--target", "--source") and path[0] in ("export", "import"):
            parse_blob_uri(value)
        elif flag in ("--source-registry", "--target-registry", "--login-server"):
            RegistryURL.parse(value)
        elif flag == "--catalog-digest" and not value.startswith("$"):  # "$DIGEST": a documented variable
            Digest.parse(value)
        elif flag == "--expiry":
            datetime.fromisoformat(value.replace("Z", "+00:00"))
    if path and path[-1] == "create" and path[:2] == ["acr", "pipeline-run"]:
        artifacts = args[args.index("-a") + 1 :] if "-a" in args else []
        for artifact in [a for a in artifacts if not a.startswith("-")]:
            ArtifactReference.parse(artifact)
    if path[0] in ("export", "import") or (path[-1:] == ["create"] and "pipeline" in " ".join(path)):
        kinds = {"export": EXPORT_OPTIONS, "import": IMPORT_OPTIONS}
        kind = "export" if "export" in " ".join(path) else "import"
        if "--options" in args:
            values = args[args.index("--options") + 1 :]
            words = [v for v in values[: next((i for i, v in enumerate(values) if v.startswith("-")), None)]]
            parse_options([w for w in words if w != "DisableSourceTrigger"], kinds[kind], kind=kind)


def test_every_help_example_parses_with_valid_names_and_values() -> None:
    """Each example in every --help: its flags exist, required ones are there, and every name,
    URI, artifact and option passes the checks the server and engine apply (the README test runs
    the README's commands for real)."""
    seen = 0
    root = typer.main.get_command(app)
    for _, command in _commands():
        for line in examples(getattr(command, "help", None) or ""):
            line = line[line.index("airlock ") :].split(" > ", 1)[0].removesuffix(" &")
            words = shlex.split(line)[1:]
            args = expand_multi(hoist_global_args(words, root))
            path: list[str] = []
            target = root
            while isinstance(target, typer.core.TyperGroup) and args and args[0] in target.commands:
                path.append(args[0])
                target = target.commands[args.pop(0)]
            assert not getattr(target, "commands", None), f"{line!r} names no command"
            target.make_context(" ".join(path), args)  # unknown or missing options raise here
            _check_values(path, words[len(path) :])
            seen += 1
    assert seen >= 20, f"only {seen} examples found"


def test_help_fits_80_columns_shows_examples_verbatim_and_no_type_metavars(cli: Console) -> None:
    commands = list(_commands())
    # Four at a time: a hundred console-script starts one after another take minutes on a busy machine.
    with ThreadPoolExecutor(4) as pool:
        helps = list(pool.map(lambda pc: cli.ok(*pc[0], "--help").stdout, commands))
    for (path, command), text in zip(commands, helps, strict=True):
        assert all(len(line) <= 80 for line in text.splitlines()), f"airlock {' '.join(path)} --help is too wide"
        assert "<bool>" not in text and "<str>" not in text, text
        shown = {line.strip() for line in text.splitlines()}
        for paragraph in inspect.cleandoc(getattr(command, "help", None) or "").split("\n\n"):
            if paragraph.lstrip().startswith("airlock "):
                for line in paragraph.splitlines():
                    assert line.strip() in shown, f"airlock {' '.join(path)} --help rewrapped {line.strip()!r}"


def test_assign_identity_help_shows_the_system_keyword(cli: Console) -> None:
    text = " ".join(cli.ok("acr", "export-pipeline", "create", "--help").stdout.split())
    assert "or use [system] to provision" in text


def test_copy_and_inspect_help_have_examples(cli: Console) -> None:
    for command in ("copy", "inspect"):
        text = cli.ok(command, "--help").stdout
        _, _, after = text.partition("\n  Examples:\n")
        shown = [line for line in after.split("\nOptions:")[0].splitlines() if line.startswith(f"  airlock {command} ")]
        assert len(shown) >= 2, text


# ------------------------------------------------------------------------------ 4: a stored result says so


def test_rerun_of_failed_run_says_it_is_the_stored_result_and_names_force_redeploy(
    cli: Console, source_registry: RegistryServer, tmp_path: Path
) -> None:
    container = tmp_path / "outbox"
    container.mkdir()
    cli.ok("acr", "create", "-g", RG, "-n", "rerunreg", "--login-server", source_registry.url)
    cli.ok("acr", "export-pipeline", "create", "-g", RG, "-r", "rerunreg", "-n", "rerunexport", "-c", container)
    run = ["acr", "pipeline-run", "create", "-g", RG, "-r", "rerunreg", "-p", "rerunexport", "-t", "export"]
    run += ["-n", "rerunrun1", "-b", "b.tar", "-a", "newcomer/later:1.0"]
    first = cli(*run).error(1)
    assert "newcomer/later" in first and "stored" not in first
    push_oci_image(source_registry.url, "newcomer/later", "1.0", seed=93)  # the user fixes the cause

    again = cli(*run)
    message = again.error(1)
    assert "not run again" in message and "--force-redeploy" in message
    assert "stored result" in again.stderr  # the note before the printed record
    assert "executes in this process" not in cli(*run, "--no-wait").stderr  # nothing executes at all
    assert json.loads(again.stdout)["properties"]["provisioningState"] == "Failed"

    forced = cli.ok(*run, "--force-redeploy").json()
    assert forced["properties"]["provisioningState"] == "Succeeded"
    assert (container / "b.tar").is_file()


# ------------------------------------------------------------------------------ 5: no '?' secrets


@pytest.mark.parametrize("value", ["", "?", "  "])
def test_secret_set_refuses_empty_or_lone_question_mark(cli: Console, value: str) -> None:
    cli.ok("keyvault", "create", "-g", RG, "-n", "emptysecretkv")
    message = cli("keyvault", "secret", "set", "--vault-name", "emptysecretkv", "-n", "sas", "--value", value).error(2)
    assert "Nothing was stored" in message and "unset" in message
    assert cli.ok("keyvault", "secret", "list", "--vault-name", "emptysecretkv").json() == []


def test_secret_set_warns_when_a_question_mark_value_is_no_sas(cli: Console) -> None:
    cli.ok("keyvault", "create", "-g", RG, "-n", "warnsecretkv")
    run = cli.ok("keyvault", "secret", "set", "--vault-name", "warnsecretkv", "-n", "sas", "--value", "?oops")
    assert "warning:" in run.stderr and "sig=" in run.stderr
    quiet = cli.ok("keyvault", "secret", "set", "--vault-name", "warnsecretkv", "-n", "sas", "--value", "?sv=1&sig=abc")
    assert "warning" not in quiet.stderr


def test_readme_walkthrough_starts_with_strict_shell_options() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    first_block = readme.split("```bash\n")[2]  # [1] is the set-up block
    assert first_block.startswith("set -euo pipefail\n")
    assert "EXPORT_SAS=?$(airlock storage container generate-sas" in readme  # an assignment: set -e sees it


# ------------------------------------------------------------------------------ 6: plain paths


def test_plain_relative_and_absolute_paths_work_as_file_uris(
    tmp_path: Path, source_registry: RegistryServer, target_registry: RegistryServer
) -> None:
    cli = Console(home=tmp_path, cwd=tmp_path)
    (tmp_path / "out").mkdir()
    image = push_oci_image(source_registry.url, "newcomer/paths", "1.0", seed=94)
    exported = cli.ok(
        "export", "--source-registry", source_registry.url, "-a", image.reference, "--target", "out/x.tar"
    ).json()
    assert exported["target"]["uri"] == (tmp_path / "out" / "x.tar").as_uri()
    copied = cli.ok("copy", "out/x.tar", tmp_path / "y.tar").json()
    assert copied["catalogDigest"] == exported["catalogDigest"]
    assert cli.ok("inspect", "./out/x.tar").json()["catalogDigest"] == exported["catalogDigest"]
    cli.ok("import", "--source", tmp_path / "y.tar", "--target-registry", target_registry.url)
    assert content.get_manifest(target_registry.url, "newcomer/paths", "1.0")[2] == image.digest


def test_file_uri_with_two_slashes_gets_a_one_line_hint(cli: Console) -> None:
    message = cli("inspect", "file://out/x.tar").error(2)
    assert "file:///" in message and "plain path (out/x.tar)" in message


def test_storage_host_without_scheme_gets_a_hint(cli: Console, tmp_path: Path) -> None:
    message = cli("inspect", "127.0.0.1:10000/acct/transfer/x.tar").error(2)
    assert "http://127.0.0.1:10000/acct/transfer/x.tar" in message
    message = cli("inspect", "srcacct.blob.core.windows.net/transfer/x.tar").error(2)
    assert "https://srcacct.blob.core.windows.net/transfer/x.tar" in message and "./srcacct" in message
    cli.ok("acr", "create", "-g", RG, "-n", "hostreg1", "--login-server", "http://127.0.0.1:9")
    pipeline = ["acr", "export-pipeline", "create", "-g", RG, "-r", "hostreg1", "-n", "hostexport"]
    message = cli(*pipeline, "-c", "127.0.0.1:10000/acct/transfer").error(2)
    assert "no scheme" in message and "--secret-uri" not in message


def test_relative_container_path_is_refused_through_airlock_endpoint(tmp_path: Path) -> None:
    """The server reads paths on its own machine: a path relative to the client's directory would
    name something else there."""
    remote = Console(home=tmp_path, env={"AIRLOCK_ENDPOINT": "http://127.0.0.1:9", "AIRLOCK_TOKEN": "x"})
    pipeline = ["acr", "import-pipeline", "create", "-g", RG, "-r", "remotereg1", "-n", "remoteimport"]
    message = remote(*pipeline, "-c", "inbox").error(2)
    assert "absolute path" in message


def test_pipeline_container_may_be_a_plain_path(cli: Console, tmp_path: Path) -> None:
    cli.ok("acr", "create", "-g", RG, "-n", "pathreg1", "--login-server", "http://127.0.0.1:9")
    (tmp_path / "Inbox").mkdir()
    cli.cwd = tmp_path
    doc = cli.ok(
        "acr", "import-pipeline", "create", "-g", RG, "-r", "pathreg1", "-n", "pathimport", "-c", "Inbox"
    ).json()
    assert doc["properties"]["source"]["uri"] == (tmp_path / "Inbox").as_uri()  # absolute, case kept


# ------------------------------------------------------------------------------ 10, 12: az's global arguments


def test_verbose_after_the_subcommand_works_like_before_it(cli: Console) -> None:
    before = cli.ok("-v", "acr", "create", "-g", RG, "-n", "verbosereg1", "--sku", "Premium")
    after = cli.ok("acr", "create", "-g", RG, "-n", "verbosereg1", "--sku", "Premium", "--verbose")
    for run in (before, after):
        assert "--sku is accepted for az compatibility" in run.stderr
    quiet = cli.ok("acr", "create", "-g", RG, "-n", "verbosereg1", "--sku", "Premium")
    assert "az compatibility" not in quiet.stderr


def test_az_walkthrough_flags_are_accepted(cli: Console) -> None:
    sub = "11111111-2222-3333-4444-555555555555"
    reg = cli.ok(
        "acr", "create", "-g", RG, "-n", "azflagsreg", "--sku", "premium", "--subscription", sub, "--only-show-errors"
    ).json()  # fmt: skip
    assert reg["sku"] == {"name": "Premium", "tier": "Premium"}
    assert reg["id"].startswith(f"/subscriptions/{sub}/")
    vault = cli.ok("keyvault", "create", "-g", RG, "-n", "azflagskv", "--enable-rbac-authorization", "false").json()
    assert vault["name"] == "azflagskv"
    # az's three-state booleans also stand alone, before another option or at the end.
    cli.ok("keyvault", "create", "-g", RG, "-n", "azflagskv2", "--enable-rbac-authorization", "-o", "none")
    cli.ok("acr", "create", "-g", RG, "-n", "azflagsreg3", "--admin-enabled")
    sas = cli.ok(
        "storage", "container", "generate-sas", "--name", "transfer", "--account-name", "acct",
        "--account-key", "a2V5", "--expiry", "2030-01-01", "--permissions", "r", "--auth-mode", "key", "-o", "tsv",
    ).stdout  # fmt: skip
    assert "sig=" in sas
    login = cli(
        "storage", "container", "generate-sas", "--name", "transfer", "--account-name", "acct",
        "--expiry", "2030-01-01", "--permissions", "r", "--auth-mode", "login",
    ).error(2)  # fmt: skip
    assert "--auth-mode login" in login and "ManagedIdentity" in login
    assert cli("acr", "create", "-g", RG, "-n", "azflagsreg2", "--sku", "Gold").error(2).startswith("registry")


def test_only_show_errors_drops_hints(cli: Console, tmp_path: Path) -> None:
    cli.ok("acr", "create", "-g", RG, "-n", "quietreg1", "--login-server", "http://127.0.0.1:9")
    args = ["acr", "export-pipeline", "create", "-g", RG, "-r", "quietreg1", "-n", "quietexport"]
    args += [
        "-m",
        "SasToken",
        "-s",
        "https://nokv.vault.azure.net/secrets/x",
        "-c",
        "https://acct.blob.core.windows.net/transfer",
    ]
    assert "set-policy" in cli.ok(*args).stderr
    assert cli.ok(*args, "--only-show-errors").stderr == ""


# ------------------------------------------------------------------------------ 11: hints name the right flags


def test_copy_refuses_an_empty_source_and_warns_on_stderr_for_a_non_airlock_blob(cli: Console, tmp_path: Path) -> None:
    (tmp_path / "empty.tar").write_bytes(b"")
    assert "empty" in cli("copy", tmp_path / "empty.tar", tmp_path / "out.tar").error(1)
    assert not (tmp_path / "out.tar").exists()
    (tmp_path / "notes.txt").write_bytes(b"plain text, no archive")
    run = cli.ok("copy", tmp_path / "notes.txt", tmp_path / "notes-copy.txt", "-o", "none")
    assert "warning: not an airlock transfer blob" in run.stderr and "unverified" in run.stderr


def test_copy_onto_existing_file_names_the_overwrite_flag(cli: Console, tmp_path: Path) -> None:
    (tmp_path / "a.tar").write_bytes(b"x")
    (tmp_path / "b.tar").write_bytes(b"y")
    message = cli("copy", tmp_path / "a.tar", tmp_path / "b.tar").error(1)
    assert "--overwrite" in message and "OverwriteBlobs" not in message


def test_copy_to_azure_without_target_sas_names_the_target_sas_flag(
    cli: Console, tmp_path: Path, azurite: AzuriteServer
) -> None:
    (tmp_path / "a.tar").write_bytes(b"x")
    target = f"{azurite.blob_endpoint('dstacct')}/transfer/a.tar"
    message = cli("copy", tmp_path / "a.tar", target).error(2)
    assert "--target-sas-token-file" in message and " --sas-token-file" not in message
    message = cli("copy", target, tmp_path / "c.tar").error(2)
    assert "--source-sas-token-file" in message


def test_import_pipeline_accepts_disable_source_trigger(cli: Console, tmp_path: Path) -> None:
    cli.ok("acr", "create", "-g", RG, "-n", "triggerreg", "--login-server", "http://127.0.0.1:9")
    (tmp_path / "in").mkdir()
    args: list[str | Path] = [
        "acr", "import-pipeline", "create", "-g", RG, "-r", "triggerreg", "-n", "noauto", "-c", tmp_path / "in"
    ]  # fmt: skip
    doc = cli.ok(*args, "--options", "OverwriteTags", "DisableSourceTrigger").json()
    assert doc["properties"]["trigger"]["sourceTrigger"]["status"] == "Disabled"
    assert doc["properties"]["options"] == ["OverwriteTags"]
    assert "contradicts" in cli(*args, "--options", "DisableSourceTrigger", "-e", "True").error(2)


def test_pipeline_option_errors_list_only_that_kind_of_option(cli: Console, tmp_path: Path) -> None:
    cli.ok("acr", "create", "-g", RG, "-n", "kindreg1", "--login-server", "http://127.0.0.1:9")
    (tmp_path / "in").mkdir()
    args: list[str | Path] = [
        "acr", "import-pipeline", "create", "-g", RG, "-r", "kindreg1", "-n", "kindimport", "-c", tmp_path / "in"
    ]  # fmt: skip
    message = cli(*args, "--options", "OverwriteBlobs").error(2)
    assert "OverwriteTags" in message and "allowed" in message
    assert "OverwriteBlobs" not in message.split("allowed", 1)[1]
