"""What the transfer commands connect to: blobs and registries, with the credentials their flags
give (SAS files, key-vault secret URIs, a password on stdin), the progress display, and the error
of a partial success. Shared by ``export``, ``import``, ``copy``, ``inspect`` and ``inventory``."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Annotated

import typer
from rich.console import Console

from airlock.cli.progress import RichProgress, show_progress
from airlock.errors import (
    BlobExists,
    MissingCredential,
    SecretError,
    TransferFailed,
    UsageError,
)
from airlock.oci.reference import RegistryURL
from airlock.registry.client import RegistryClient
from airlock.registry.credentials import Credentials
from airlock.secrets.store import normalize_sas, read_secret_file
from airlock.storage.base import Blob
from airlock.storage.location import open_blob, parse_blob_uri
from airlock.transfer.concurrent_map import GETS_IN_FLIGHT, REQUESTS_IN_FLIGHT
from airlock.transfer.options import (
    NoProgress,
    Progress,
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


def console() -> Console:
    return Console(stderr=True)


@contextlib.contextmanager
def progress_display() -> Iterator[Progress]:
    if show_progress():
        with RichProgress(console()) as p:
            yield p
    else:
        yield NoProgress()


def sas_token(sas_file: str | None, secret_uri: str | None, *, what: str) -> str | None:
    if sas_file and secret_uri:
        raise UsageError(f"{what}: give --sas-token-file or --secret-uri, not both")
    if sas_file:
        return normalize_sas(read_secret_file(sas_file, what=f"{what} SAS token"))
    if secret_uri:
        from airlock.wiring import user_secret_resolver

        return normalize_sas(user_secret_resolver().get(secret_uri, principal=None, what=f"{what} SAS token"))
    return None


def blob_at(uri: str, sas: str | None, flag: str) -> Blob:
    """The blob at ``uri``; ``flag`` is the option that gives its SAS token (named if one is needed)."""
    with flag_hints({"": flag}):
        return open_blob(parse_blob_uri(uri), sas_token=sas)


@contextlib.contextmanager
def flag_hints(credentials: dict[str, str], overwrite: str | None = None) -> Iterator[None]:
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
        if overwrite is None or overwrite in str(exc):  # the message names it already
            raise
        raise BlobExists(f"{exc} (use {overwrite} to replace it)", blob=exc.blob) from None


def registry_client(url: str, username: str | None, password_stdin: bool, concurrency: int) -> RegistryClient:
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
        RegistryURL.parse(url),
        credentials=creds,
        max_connections=concurrency + max(GETS_IN_FLIGHT, REQUESTS_IN_FLIGHT) + 4,
    )


def failures_error(failures: dict[str, str], what: str) -> TransferFailed | None:
    """After a partial success (ContinueOnErrors) the result is printed, then this fails the command."""
    if not failures:
        return None
    detail = "; ".join(f"{ref}: {msg}" for ref, msg in failures.items())
    return TransferFailed(f"{len(failures)} artifact(s) {what}: {detail}", failures=failures)


# -o table shows a result's artifacts, digests shortened; the catalogDigest is said in full on stderr.
