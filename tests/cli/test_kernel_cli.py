"""Issue 10: one CLI kernel for every command, and errors that keep their class across the REST hop.

The kernel (``airlock.cli.kernel``) gives every command ``-o``/``--query`` (and ``-g`` where it is
resource-scoped), checks them before the command runs, and prints the result. The API names each
error's class in the ARM envelope, and the CLI raises that class again: a command fails with the
same message, class and exit code in local mode, through ``airlock serve`` (AIRLOCK_ENDPOINT), and,
for a secret, when the data plane reads it itself. ``--debug`` names the class on stderr.
"""

from __future__ import annotations

import base64
import importlib
import json
import os
import pkgutil
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer

import airlock
from airlock import errors
from airlock.api.envelope import envelope as api_error
from airlock.cli.arm import _error as arm_error
from airlock.cli.main import app
from airlock.errors import AirlockError, error_class
from airlock.secrets import base as secrets_base
from airlock.testing.airlock_server import AirlockServer
from airlock.testing.console import Console, Result
from airlock.testing.processes import free_port, refusing_port

RG = "kernelrg"
VAULT = "kernelvault1"
SECRET = "exportsas"
CLI = Path(airlock.__file__).parent / "cli"
_CLASS_LINE = re.compile(r"^DEBUG airlock\.cli\.main: (\S+) \(exit (\d+)\)$", re.MULTILINE)


@dataclass(frozen=True)
class Case:
    argv: tuple[str, ...]
    error_class: str
    exit_code: int


# Each fails on the server's side of the REST hop (the CLI checks nothing of it before sending).
CASES = {
    "usage-error-exits-2": Case(
        ("acr", "create", "-g", RG, "-n", "bad_name", "--login-server", "http://127.0.0.1:1"), "UsageError", 2
    ),
    "resource-not-found-exits-1": Case(("acr", "show", "-g", RG, "-n", "nosuchreg1"), "ResourceNotFound", 1),
    "resource-conflict-exits-1": Case(
        ("acr", "export-pipeline", "create", "-g", RG, "-r", "noexportreg1", "-n", "exportpipe1", "-c", "/srv/x"),
        "ResourceConflict",
        1,
    ),
    # Both were mapped from their HTTP status before: SecretNotFound became ResourceNotFound, and a
    # secret that does not decrypt became a UsageError (exit 2).
    "secret-not-found-exits-1": Case(
        ("keyvault", "secret", "show", "--vault-name", VAULT, "-n", "nosuchsecret", "-g", RG), "SecretNotFound", 1
    ),
    "secret-error-exits-1": Case(
        ("keyvault", "secret", "show", "--vault-name", VAULT, "-n", SECRET, "-g", RG), "SecretError", 1
    ),
}


def _class_and_message(run: Result, code: int) -> tuple[str, int, str]:
    """(error class named by --debug, exit code, the one error line) of a failed run."""
    message = run.error(code)
    found = _CLASS_LINE.findall(run.stderr)
    assert len(found) == 1, run.where()
    name, logged_code = found[0]
    assert int(logged_code) == code, run.where()
    return name, code, message


@dataclass
class Outcomes:
    local: dict[str, Result]
    served: dict[str, Result]
    data_plane: Result
    envelope: dict[str, object]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outcomes]:
    """One AIRLOCK_HOME: each case run in local mode, then the same cases through `airlock serve` on
    that home. Its vault holds a secret that no longer decrypts (the vault key was replaced)."""
    base = tmp_path_factory.mktemp("kernel")
    local = Console(home=base)
    local.ok("keyvault", "create", "-g", RG, "-n", VAULT, "-o", "none")
    local.ok("keyvault", "secret", "set", "--vault-name", VAULT, "-n", SECRET, "--value", "sv=1&sig=x", "-o", "none")
    local.ok("acr", "create", "-g", RG, "-n", "noexportreg1", "--export-policy", "disabled", "-o", "none")
    home = base / ".airlock"
    (home / "vault.key").write_bytes(base64.urlsafe_b64encode(os.urandom(32)))  # another home's key, in effect
    mine = {name: local("--debug", *case.argv) for name, case in CASES.items()}
    with refusing_port() as port:
        data_plane = local(
            "--debug", "export", "--source-registry", f"http://127.0.0.1:{port}", "-a", "app:1",
            "--target", base / "batch1.tar", "--secret-uri", f"https://{VAULT}.vault.azure.net/secrets/{SECRET}",
        )  # fmt: skip
    server = AirlockServer(home).start()
    try:
        token = (home / "api-token").read_text().strip()
        remote = Console(home=base, env={"AIRLOCK_ENDPOINT": server.url, "AIRLOCK_TOKEN": token})
        served = {name: remote("--debug", *case.argv) for name, case in CASES.items()}
        path = f"/subscriptions/{'0' * 8}-0000-0000-0000-{'0' * 12}/resourceGroups/{RG}/providers/"
        answer = server.http.get(
            f"{path}Microsoft.KeyVault/vaults/{VAULT}/secrets/nosuchsecret?api-version=2025-06-01-preview"
        )
        envelope = answer.json()
    finally:
        server.stop()
    yield Outcomes(mine, served, data_plane, envelope)


# ------------------------------------------------------------------------- errors across the REST hop


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_failing_command_keeps_its_error_class_and_exit_code_through_airlock_endpoint(
    outcomes: Outcomes, case: str
) -> None:
    expected = CASES[case]
    local = _class_and_message(outcomes.local[case], expected.exit_code)
    served = _class_and_message(outcomes.served[case], expected.exit_code)
    assert local == served
    assert local[0] == f"airlock.errors.{expected.error_class}"


def test_undecryptable_secret_fails_alike_in_the_data_plane_and_through_the_api(outcomes: Outcomes) -> None:
    # `export --secret-uri` reads the vault itself; `keyvault secret show` asks the API for it.
    direct = _class_and_message(outcomes.data_plane, 1)
    assert direct == _class_and_message(outcomes.served["secret-error-exits-1"], 1)
    assert direct[0] == "airlock.errors.SecretError" and "cannot be decrypted" in direct[2]


def test_api_names_the_error_class_in_the_arm_envelope(outcomes: Outcomes) -> None:
    error = outcomes.envelope["error"]
    assert isinstance(error, dict)
    assert error["code"] == "ResourceNotFound" and "nosuchsecret" in error["message"]
    assert error["additionalInfo"] == [{"type": "AirlockError", "info": {"class": "SecretNotFound"}}]


def _every_error_class() -> list[type[AirlockError]]:
    for module in pkgutil.walk_packages(airlock.__path__, "airlock."):
        # Alembic's migration scripts run only inside Alembic (airlock.db.migrate), never on import.
        skipped = ("airlock.testing", "airlock.db.migrations")
        if not module.name.startswith(skipped) and not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    found: list[type[AirlockError]] = [AirlockError]
    for cls in found:
        found += [sub for sub in cls.__subclasses__() if sub not in found]
    return found


def test_every_error_class_is_rebuilt_from_the_arm_envelope() -> None:
    classes = _every_error_class()
    assert secrets_base.SecretAccessDenied in classes and secrets_base.SecretNotFound in classes
    for cls in classes:
        assert error_class(cls.__name__) is cls
        # The API's own envelope for it, at a status that alone would mean another class.
        envelope = json.loads(bytes(api_error(400, "BadRequest", f"{cls.__name__} happened", cls.__name__).body))
        rebuilt = arm_error(400, envelope, "GET", "/x")
        assert type(rebuilt) is cls and str(rebuilt) == f"{cls.__name__} happened"
        assert arm_error(503, envelope, "GET", "/x").transient  # the status still says "try again"


def test_an_envelope_without_a_class_of_ours_is_mapped_by_its_status() -> None:
    assert error_class("KeyError") is None and error_class("Exception") is None
    foreign = {"error": {"code": "NotFound", "message": "gone", "additionalInfo": [{"type": "PolicyViolation"}]}}
    assert type(arm_error(404, foreign, "GET", "/x")) is errors.ResourceNotFound
    unknown = json.loads(bytes(api_error(400, "BadRequest", "no such class", "NoSuchErrorClass").body))
    assert type(arm_error(400, unknown, "GET", "/x")) is errors.UsageError
    assert type(arm_error(403, {"error": {"message": "no"}}, "GET", "/x")) is errors.AccessDenied


def test_error_classes_defined_outside_errors_py_are_known_by_name() -> None:
    class KernelTestOnlyError(errors.StorageError):
        pass

    assert error_class("KernelTestOnlyError") is KernelTestOnlyError


# ------------------------------------------------------------------------------------------ the kernel


def _commands(command: object, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], object]]:
    subcommands = getattr(command, "commands", None)
    if subcommands is None:
        yield path, command
    for name, sub in (subcommands or {}).items():
        yield from _commands(sub, (*path, name))


RESOURCE_SCOPED = ("acr", "identity", "keyvault")


def test_every_command_takes_output_query_and_group_from_the_kernel() -> None:
    seen = 0
    for path, command in _commands(typer.main.get_command(app)):
        options = [p.opts for p in getattr(command, "params", []) if getattr(p, "param_type_name", "") == "option"]
        # They print nothing, or (audit export) JSON lines of their own.
        if path in (("serve",), ("worker",), ("token", "revoke"), ("audit", "export")):
            assert ["--output"] not in options and ["--query"] not in options, path
            continue
        seen += 1
        assert options[-2:] == [["--output", "-o"], ["--query"]], f"airlock {' '.join(path)}: {options}"
        assert (["--resource-group", "-g"] in options) == (path[0] in RESOURCE_SCOPED), path
    assert seen >= 40  # every command of every group was looked at


@pytest.mark.parametrize(
    "argv",
    [
        ("export", "--source-registry", "http://127.0.0.1:1", "-a", "app:1", "--target", "out.tar"),
        ("inspect", "nosuch.tar"),
        ("acr", "show", "-n", "nosuchreg1"),  # no -g and no default: -o/--query are checked first still
        ("acr", "pipeline-run", "list", "-r", "nosuchreg1"),
        ("token", "list"),
        ("storage", "container", "create", "--name", "transfer"),
        ("configure", "--list-defaults"),
        ("rest", "--url", "/subscriptions/{subscriptionId}/providers/Microsoft.KeyVault/vaults"),
    ],
    ids=lambda argv: "-".join(argv[:2]),
)
def test_bad_output_or_query_is_refused_before_the_command_runs(tmp_path: Path, argv: tuple[str, ...]) -> None:
    cli = Console(home=tmp_path, env={"AIRLOCK_ENDPOINT": f"http://127.0.0.1:{free_port()}", "AIRLOCK_TOKEN": "t"})
    assert "unknown output format 'yaml'" in cli(*argv, "-o", "yaml").only_error(2)
    assert "invalid --query '[['" in cli(*argv, "--query", "[[").only_error(2)
    assert not (tmp_path / ".airlock").exists()  # nothing was opened, not even the home


def test_no_command_module_repeats_the_kernel_boilerplate() -> None:
    # What the kernel does, no command does again: check -o/--query, resolve -g, open the client, print.
    kernel = {"kernel.py", "arm.py", "output.py"}
    for path in sorted(CLI.glob("*.py")):
        if path.name in kernel:
            continue
        source = path.read_text()
        for boilerplate in ("check_output(", "ArmClient()", "resource_group(", "render(", "OutputOpt", "QueryOpt"):
            assert boilerplate not in source, f"{path.name} repeats the kernel's {boilerplate}"
