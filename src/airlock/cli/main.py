"""The ``airlock`` command line: thin commands that parse and call the engine; the kernel prints.

Output contract: stdout carries one JSON object (or the ``-o`` format); progress and errors go to
stderr. A failure prints one line ``error: <what failed and why>`` and exits non-zero: 1 for
operational failures, 2 for usage errors, 130 when interrupted. Never a traceback (set
``AIRLOCK_DEBUG=1`` to get one), never a secret.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from airlock import __version__
from airlock.cli import common, results, sync, transfer
from airlock.cli.argv import expand_multi, fill_optional_booleans, hoist_global_args
from airlock.cli.arm import set_subscription
from airlock.cli.audit import audit_app
from airlock.cli.db import db_app
from airlock.cli.endpoints import console
from airlock.cli.helptext import polish as polish_help
from airlock.cli.identities import identity_app
from airlock.cli.kernel import command
from airlock.cli.keyvault import keyvault_app
from airlock.cli.process import tune_malloc
from airlock.cli.registries import acr_app
from airlock.cli.server import configure, rest, serve
from airlock.cli.storage import storage_app
from airlock.cli.tokens import token_app
from airlock.cli.worker import worker
from airlock.errors import (
    AirlockError,
    UsageError,
)
from airlock.observability import logs
from airlock.observability.redaction import redact

app = typer.Typer(
    rich_markup_mode=None,
    name="airlock",
    help=(
        "Move OCI artifacts (images, indexes, Helm charts, signatures, SBOMs) between registries "
        "across an air gap, through one transfer blob in storage.\n\n"
        "Typical flow: `airlock export` on the connected side, carry or `airlock copy` the blob, "
        "`airlock import` on the disconnected side.\n\n"
        "Examples:\n\n"
        "airlock export --source-registry localhost:5000 -a app:1.0 --target b.tar\n\n"
        "airlock copy b.tar /media/usb/b.tar\n\n"
        "airlock import --source /media/usb/b.tar --target-registry localhost:5001"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# -- the transfer commands (the engine, with no server) --

command(app, "export", table=results.export_rows, note=results.catalog_note)(transfer.export_cmd)
command(app, "import", table=results.import_rows, note=results.catalog_note)(transfer.import_cmd)
command(app, "copy", table=results.copy_rows, note=results.catalog_note)(transfer.copy_cmd)
command(app, "inspect", table=results.inspect_rows, note=results.catalog_note)(transfer.inspect_cmd)

# -- the control plane (az-style): resources over the ARM REST API, in-process or AIRLOCK_ENDPOINT --

app.command("serve")(serve)
app.command("worker")(worker)
command(app, "configure")(configure)
command(app, "rest")(rest)
command(app, "inventory")(sync.inventory_cmd)
app.add_typer(acr_app, name="acr")
app.add_typer(identity_app, name="identity")
app.add_typer(keyvault_app, name="keyvault")
app.add_typer(storage_app, name="storage")
app.add_typer(token_app, name="token")
app.add_typer(db_app, name="db")
app.add_typer(audit_app, name="audit")


def _version(value: bool) -> None:
    if value:
        print(f"airlock {__version__}")  # noqa: T201
        raise typer.Exit()


@app.callback()
def main(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log progress details to stderr (anywhere on the line, as in az).")
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Log everything, with tracebacks for internal errors (as in az).")
    ] = False,
    only_show_errors: Annotated[
        bool, typer.Option("--only-show-errors", help="Only print errors: no hints or warnings (as in az).")
    ] = False,
    subscription: Annotated[
        str | None,
        typer.Option(
            "--subscription",
            help="Subscription id of the ARM resources (default: AIRLOCK_SUBSCRIPTION, the configured "
            "default, or all zeros).",
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """airlock: OCI artifact transfer across air gaps.

    The global arguments (--verbose/-v, --debug, --only-show-errors, --subscription) may come before or
    after the command, as in az.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logs.formatter())  # AIRLOCK_LOG_FORMAT: text, or one JSON object per line
    root = logging.getLogger()
    root.handlers[:] = [handler]
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    root.setLevel(logging.ERROR if only_show_errors and not (debug or verbose) else level)
    # The Azure SDK logs every request at INFO; keep it to warnings even with -v.
    logging.getLogger("azure").setLevel(logging.DEBUG if debug else logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.DEBUG if debug else logging.WARNING)  # its INFO narrates DDL
    common.set_only_errors(only_show_errors)
    set_subscription(subscription)
    if debug:
        os.environ["AIRLOCK_DEBUG"] = "1"


def _fail(message: str, code: int) -> int:
    # The message is data (paths, registry text), never markup: "[/x]" in a path must print as is.
    text = Text("error: ", style="bold red")
    text.append(redact(" ".join(message.split())))
    Console(stderr=True, highlight=False, soft_wrap=True).print(text)
    return code


def run(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns (and exits with) the exit code."""
    tune_malloc()
    command = typer.main.get_command(app)
    given = list(sys.argv[1:] if argv is None else argv)
    args = expand_multi(fill_optional_booleans(hoist_global_args(given, command)))
    polish_help(command)
    try:
        rv = command.main(args=args, prog_name="airlock", standalone_mode=False)
        code = rv if isinstance(rv, int) else 0
    except typer.Exit as exc:
        code = exc.exit_code
    except typer.TyperException as exc:  # click's usage errors (unknown option, missing value, ...)
        if type(exc).__name__ == "NoArgsIsHelpError":
            console().print(exc.format_message())
            code = 2
        else:
            code = _fail(exc.format_message(), 2)
    except typer.Abort:
        code = _fail("interrupted", 130)
    except AirlockError as exc:
        code = 2 if isinstance(exc, UsageError) else 1
        # --debug names the class: the same with or without the REST hop (AIRLOCK_ENDPOINT).
        logging.getLogger(__name__).debug("%s.%s (exit %d)", type(exc).__module__, type(exc).__qualname__, code)
        code = _fail(str(exc), code)
    except KeyboardInterrupt:
        code = _fail("interrupted", 130)
    except Exception as exc:
        if os.environ.get("AIRLOCK_DEBUG") == "1":
            raise
        code = _fail(f"internal error ({type(exc).__name__}): {exc}", 70)
    if argv is None:
        sys.exit(code)
    return code
