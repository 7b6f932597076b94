"""The ``airlock`` command line: thin commands that parse and call the engine; the kernel prints.

Output contract: stdout carries one JSON object (or the ``-o`` format); progress and errors go to
stderr. A failure prints one line ``error: <what failed and why>`` and exits non-zero: 1 for
operational failures, 2 for usage errors, 130 when interrupted. Never a traceback (set
``AIRLOCK_DEBUG=1`` to get one), never a secret.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from airlock import __version__
from airlock.cli import common, results
from airlock.cli.argv import expand_multi, fill_optional_booleans, hoist_global_args
from airlock.cli.arm import set_subscription
from airlock.cli.common import REGISTRY_SCHEME_RULE
from airlock.cli.db import db_app
from airlock.cli.helptext import polish as polish_help
from airlock.cli.identities import identity_app
from airlock.cli.kernel import Reply, command
from airlock.cli.keyvault import keyvault_app
from airlock.cli.process import tune_malloc
from airlock.cli.progress import RichProgress, show_progress
from airlock.cli.registries import acr_app
from airlock.cli.server import configure, rest, serve
from airlock.cli.storage import storage_app
from airlock.cli.tokens import token_app
from airlock.cli.worker import worker
from airlock.errors import (
    AirlockError,
    BlobExists,
    MissingCredential,
    SecretError,
    TransferFailed,
    UsageError,
)
from airlock.observability import logs
from airlock.observability.redaction import redact
from airlock.oci.digest import Digest
from airlock.oci.reference import ArtifactReference, RegistryURL, validate_repository
from airlock.registry.client import RegistryClient
from airlock.registry.credentials import Credentials
from airlock.secrets.store import normalize_sas, read_secret_file
from airlock.storage.base import Blob
from airlock.storage.location import open_blob, parse_blob_uri
from airlock.transfer.concurrent_map import REQUESTS_IN_FLIGHT
from airlock.transfer.export import export_artifacts
from airlock.transfer.inspection import copy_blob, inspect_archive
from airlock.transfer.layout_import import import_blob
from airlock.transfer.options import (
    EXPORT_OPTIONS,
    IMPORT_OPTIONS,
    NoProgress,
    PipelineOption,
    Progress,
    parse_options,
)

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

SasFileOpt = Annotated[
    str | None,
    typer.Option("--sas-token-file", help="File holding the storage SAS token (with or without the leading '?')."),
]
SecretUriOpt = Annotated[
    str | None, typer.Option("--secret-uri", "-s", help="Key-vault secret URI holding the SAS token.")
]
UserOpt = Annotated[
    str | None, typer.Option("--username", "-u", help="Registry username; the password is read from stdin.")
]
PasswordStdinOpt = Annotated[
    bool, typer.Option("--password-stdin", help="Read the registry password from stdin (with --username).")
]
ConcurrencyOpt = Annotated[int, typer.Option("--concurrency", min=1, max=64, help="Blobs transferred at once.")]


def _console() -> Console:
    return Console(stderr=True)


@contextlib.contextmanager
def _progress() -> Iterator[Progress]:
    if show_progress():
        with RichProgress(_console()) as p:
            yield p
    else:
        yield NoProgress()


def _sas(sas_file: str | None, secret_uri: str | None, *, what: str) -> str | None:
    if sas_file and secret_uri:
        raise UsageError(f"{what}: give --sas-token-file or --secret-uri, not both")
    if sas_file:
        return normalize_sas(read_secret_file(sas_file, what=f"{what} SAS token"))
    if secret_uri:
        from airlock.wiring import user_secret_resolver

        return normalize_sas(user_secret_resolver().get(secret_uri, principal=None, what=f"{what} SAS token"))
    return None


def _blob(uri: str, sas: str | None, flag: str) -> Blob:
    """The blob at ``uri``; ``flag`` is the option that gives its SAS token (named if one is needed)."""
    with _flag_hints({"": flag}):
        return open_blob(parse_blob_uri(uri), sas_token=sas)


@contextlib.contextmanager
def _flag_hints(credentials: dict[str, str], overwrite: str | None = None) -> Iterator[None]:
    """Name this command's own flags in storage errors: the adapters cannot know them.

    ``credentials`` maps a blob's display URI to the flag that gives its SAS token; ``overwrite`` is
    the flag that replaces an existing target.
    """
    try:
        yield
    except MissingCredential as exc:
        flag = credentials.get(exc.blob) or " or ".join(dict.fromkeys(credentials.values()))
        raise UsageError(f"{exc}: give {flag}") from None
    except BlobExists as exc:
        if overwrite is None:
            raise
        raise BlobExists(f"{exc} (use {overwrite} to replace it)", blob=exc.blob) from None


def _registry(url: str, username: str | None, password_stdin: bool, concurrency: int) -> RegistryClient:
    creds: Credentials | None = None
    if password_stdin and not username:
        raise UsageError("--password-stdin needs --username")
    if username:
        if not password_stdin:
            raise UsageError("--username needs --password-stdin (passwords are never taken as arguments)")
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise SecretError("--password-stdin: no password on standard input")
        creds = Credentials(username=username, password=password)
    # A few more connections than workers: HEADs, mounts and token requests run beside the streams.
    return RegistryClient(
        RegistryURL.parse(url), credentials=creds, max_connections=concurrency + REQUESTS_IN_FLIGHT + 4
    )


def _failures(failures: dict[str, str], what: str) -> TransferFailed | None:
    """After a partial success (ContinueOnErrors) the result is printed, then this fails the command."""
    if not failures:
        return None
    detail = "; ".join(f"{ref}: {msg}" for ref, msg in failures.items())
    return TransferFailed(f"{len(failures)} artifact(s) {what}: {detail}", failures=failures)


# -o table shows a result's artifacts, digests shortened; the catalogDigest is said in full on stderr.
@command(app, "export", table=results.export_rows, note=results.catalog_note)
def export_cmd(
    source_registry: Annotated[
        str,
        typer.Option(
            "--source-registry",
            help=f"Registry URL, e.g. https://myregistry.example.com or http://127.0.0.1:5000. {REGISTRY_SCHEME_RULE}",
        ),
    ],
    artifacts: Annotated[
        list[str],
        typer.Option(
            "--artifacts",
            "-a",
            help="Space-separated artifacts: repo (= repo:latest), repo:tag or repo@sha256:…, optionally "
            "prefixed with the source registry's host[:port] (HOST/repo:tag).",
        ),
    ],
    target: Annotated[str, typer.Option("--target", help="Blob URI to write: file:///… or https://…/container/blob.")],
    sas_token_file: SasFileOpt = None,
    secret_uri: SecretUriOpt = None,
    options: Annotated[
        list[str] | None,
        typer.Option(
            "--options",
            "-z",
            help="Space-separated: OverwriteBlobs (replace an existing target), ContinueOnErrors (leave failing "
            "artifacts out, exit 1 after writing the rest), IncludeReferrers (same as --include-referrers).",
        ),
    ] = None,
    include_referrers: Annotated[
        bool,
        typer.Option(
            "--include-referrers", help="Also export signatures, SBOMs and other referrers (= -z IncludeReferrers)."
        ),
    ] = False,
    username: UserOpt = None,
    password_stdin: PasswordStdinOpt = False,
    concurrency: ConcurrencyOpt = 4,
) -> Reply:
    """Export artifacts from a registry into one transfer blob.

    Examples:

        airlock export --source-registry https://registry.example.com \\
            --artifacts team/app:1.4 team/base:2 --include-referrers \\
            --target https://srcacct.blob.core.windows.net/transfer/batch1.tar \\
            --sas-token-file export.sas

        airlock export --source-registry localhost:5000 -a samples/app:1.0 \\
            --target ./batch1.tar --query catalogDigest -o tsv
    """
    if len(artifacts) == 0:
        raise UsageError("--artifacts needs at least one artifact")
    registry_url = RegistryURL.parse(source_registry)
    refs = [ArtifactReference.parse_for(a, registry_url, named_by="--source-registry") for a in artifacts]
    opts = parse_options(options or [], EXPORT_OPTIONS, kind="export")
    if include_referrers:
        opts |= {PipelineOption.INCLUDE_REFERRERS}
    blob = _blob(target, _sas(sas_token_file, secret_uri, what="target"), "--sas-token-file or --secret-uri")
    client = _registry(source_registry, username, password_stdin, concurrency)
    with _progress() as progress, _flag_hints({blob.display: "--sas-token-file or --secret-uri"}):
        result = export_artifacts(
            client=client,
            artifacts=refs,
            target=blob,
            options=opts,
            progress=progress,
            concurrency=concurrency,
        )
    return Reply(result.to_json(), _failures(result.failures, "failed and were left out of the archive"))


@command(app, "import", table=results.import_rows, note=results.catalog_note)
def import_cmd(
    source: Annotated[str, typer.Option("--source", help="Blob URI of the transfer blob to import.")],
    target_registry: Annotated[
        str, typer.Option("--target-registry", help=f"Registry URL to import into. {REGISTRY_SCHEME_RULE}")
    ],
    sas_token_file: SasFileOpt = None,
    secret_uri: SecretUriOpt = None,
    options: Annotated[
        list[str] | None,
        typer.Option("--options", "-z", help="OverwriteTags, DeleteSourceBlobOnSuccess, ContinueOnErrors."),
    ] = None,
    catalog_digest: Annotated[
        str | None,
        typer.Option(
            "--catalog-digest",
            help="The export's catalogDigest (sha256:…, the digest of the archive's catalog, which names every "
            "blob by digest): checked before anything is uploaded.",
        ),
    ] = None,
    repository: Annotated[
        str | None,
        typer.Option(
            "--repository",
            help="Only for an OCI layout tar written by another tool (skopeo oci-archive:, oras): the repository "
            "its artifacts go to, needed when its index.json names bare tags.",
        ),
    ] = None,
    username: UserOpt = None,
    password_stdin: PasswordStdinOpt = False,
    concurrency: ConcurrencyOpt = 4,
) -> Reply:
    """Import every artifact of a transfer blob into a registry (tags are written last).

    An OCI layout tar written by another tool (skopeo oci-archive:, oras) is imported too, every blob
    verified by its digest, but without an airlock catalog to pin the whole (no catalogDigest).

    Examples (DIGEST: the catalogDigest the export printed, carried across apart from the blob):

        airlock import --source /media/usb/batch1.tar \\
            --target-registry https://registry.internal --catalog-digest "$DIGEST"

        airlock import --source https://dstacct.blob.core.windows.net/transfer/b.tar \\
            --sas-token-file import.sas --target-registry localhost:5001 \\
            --options OverwriteTags DeleteSourceBlobOnSuccess
    """
    expected = Digest.parse(catalog_digest) if catalog_digest else None
    if repository is not None:
        validate_repository(repository)
    opts = parse_options(options or [], IMPORT_OPTIONS, kind="import")
    blob = _blob(source, _sas(sas_token_file, secret_uri, what="source"), "--sas-token-file or --secret-uri")
    client = _registry(target_registry, username, password_stdin, concurrency)
    with _progress() as progress, _flag_hints({blob.display: "--sas-token-file or --secret-uri"}):
        result = import_blob(
            source=blob,
            client=client,
            options=opts,
            catalog_digest=expected,
            repository=repository,
            progress=progress,
            concurrency=concurrency,
        )
    return Reply(result.to_json(), _failures(result.failures, "failed to import"))


@command(app, "copy", table=results.copy_rows, note=results.catalog_note)
def copy_cmd(
    source: Annotated[str, typer.Argument(help="Blob URI to read.")],
    target: Annotated[str, typer.Argument(help="Blob URI to write.")],
    source_sas_token_file: Annotated[
        str | None, typer.Option("--source-sas-token-file", help="SAS token file for the source.")
    ] = None,
    target_sas_token_file: Annotated[
        str | None, typer.Option("--target-sas-token-file", help="SAS token file for the target.")
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace the target blob if it exists.")] = False,
) -> dict[str, Any]:
    """Copy a transfer blob from any storage to any storage, streaming (no local copy).

    An airlock archive is checked against its catalog as it streams; a cut or tampered one leaves no target.
    Any other blob is copied as it is, unverified ("verified": false).

    Examples:

        airlock copy https://srcacct.blob.core.windows.net/transfer/batch1.tar \\
            /media/usb/batch1.tar --source-sas-token-file read.sas

        airlock copy /media/usb/batch1.tar \\
            https://dstacct.blob.core.windows.net/transfer/batch1.tar \\
            --target-sas-token-file write.sas --overwrite
    """
    src = _blob(source, _sas(source_sas_token_file, None, what="source"), "--source-sas-token-file")
    dst = _blob(target, _sas(target_sas_token_file, None, what="target"), "--target-sas-token-file")
    flags = {src.display: "--source-sas-token-file", dst.display: "--target-sas-token-file"}
    with _progress() as progress, _flag_hints(flags, overwrite="--overwrite"):
        result = copy_blob(src, dst, overwrite=overwrite, progress=progress)
    if result.get("note"):
        common.hint(f"warning: {result['note']}")  # on stderr too: -o none and tables do not show it
    return result


@command(app, "inspect", table=results.inspect_rows, note=results.catalog_note)
def inspect_cmd(
    blob: Annotated[str, typer.Argument(help="Blob URI of a transfer blob.")],
    sas_token_file: SasFileOpt = None,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify",
            help="Read the whole blob and check every member against the catalog (which the catalogDigest covers).",
        ),
    ] = False,
) -> dict[str, Any]:
    """Show what a transfer blob holds, and its catalogDigest, without importing it.

    Reads only its head and last bytes, and fails if its size is not what its catalog implies;
    --verify reads it all and checks every member against the catalog.

    Examples:

        airlock inspect /media/usb/batch1.tar --query "artifacts[].reference" -o tsv

        airlock inspect https://dstacct.blob.core.windows.net/transfer/batch1.tar \\
            --sas-token-file read.sas --verify
    """
    src = _blob(blob, _sas(sas_token_file, None, what="blob"), "--sas-token-file")
    with _progress() as progress, _flag_hints({src.display: "--sas-token-file"}):
        return inspect_archive(src, verify=verify, progress=progress)


# -- the control plane (az-style): resources over the ARM REST API, in-process or AIRLOCK_ENDPOINT --

app.command("serve")(serve)
app.command("worker")(worker)
command(app, "configure")(configure)
command(app, "rest")(rest)
app.add_typer(acr_app, name="acr")
app.add_typer(identity_app, name="identity")
app.add_typer(keyvault_app, name="keyvault")
app.add_typer(storage_app, name="storage")
app.add_typer(token_app, name="token")
app.add_typer(db_app, name="db")


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
            _console().print(exc.format_message())
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
