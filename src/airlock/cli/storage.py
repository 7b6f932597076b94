"""``airlock storage container generate-sas|create``: the two ``az storage`` commands an ACR transfer
walkthrough needs (a SAS token for the pipeline's key-vault secret; a container to transfer through).

Credentials as az takes them: ``--connection-string`` or ``--account-name`` with ``--account-key``,
else the environment's ``AZURE_STORAGE_CONNECTION_STRING``, ``AZURE_STORAGE_ACCOUNT`` and
``AZURE_STORAGE_KEY``. A connection string's ``BlobEndpoint`` (Azurite's) is honoured.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Annotated

import typer

from airlock.cli.kernel import command
from airlock.errors import UsageError

storage_app = typer.Typer(
    rich_markup_mode=None,
    help="Storage helpers (as `az storage`): container SAS tokens and containers, by account key.",
    no_args_is_help=True,
)
container_app = typer.Typer(rich_markup_mode=None, help="Blob containers.", no_args_is_help=True)
storage_app.add_typer(container_app, name="container")

ContainerNameOpt = Annotated[str, typer.Option("--name", "-n", help="The container name.")]
AccountOpt = Annotated[
    str | None,
    typer.Option("--account-name", help="Storage account name. Environment variable: AZURE_STORAGE_ACCOUNT."),
]
KeyOpt = Annotated[
    str | None,
    typer.Option("--account-key", help="Storage account key. Environment variable: AZURE_STORAGE_KEY."),
]
ConnOpt = Annotated[
    str | None,
    typer.Option(
        "--connection-string",
        help="Storage account connection string. Environment variable: AZURE_STORAGE_CONNECTION_STRING.",
    ),
]
EndpointOpt = Annotated[
    str | None,
    typer.Option(
        "--blob-endpoint",
        help="Blob service endpoint, e.g. http://127.0.0.1:10000/devstoreaccount1 (Azurite). "
        "Default: https://<account>.blob.core.windows.net.",
    ),
]

AuthModeOpt = Annotated[
    str | None,
    typer.Option(
        "--auth-mode",
        help="key (the default, and the only mode here): sign with the account key. az's login mode (a user "
        "delegation SAS) is not supported.",
        show_default=False,
    ),
]


def _auth_mode(value: str | None) -> None:
    """Raises UsageError unless ``value`` is None or ``key``."""
    if value is None or value.lower() == "key":
        return
    if value.lower() == "login":
        raise UsageError(
            "--auth-mode login: airlock signs with the account key only (no user delegation SAS); use --auth-mode "
            "key with --account-key or a connection string, or give the pipeline --storage-access-mode "
            "ManagedIdentity, which needs no SAS"
        )
    raise UsageError(f"--auth-mode {value!r}: must be key or login")


_DATE_FORMATS = ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%MZ", "%Y-%m-%dZ", "%Y-%m-%d")


def _when(value: str, flag: str) -> datetime:
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=UTC)
        except ValueError:
            pass
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{flag} {value!r}: expected a UTC date-time like 2030-01-31T12:00Z or 2030-01-31") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _account(
    account_name: str | None, account_key: str | None, connection_string: str | None, blob_endpoint: str | None
) -> tuple[str, str, str]:
    """(account, key, blob endpoint) from the flags, then the environment, as az resolves them."""
    from airlock.storage import azure_account  # the SDK loads only for these commands

    env = os.environ
    conn = connection_string
    if conn is None and not account_name and not account_key:
        conn = env.get("AZURE_STORAGE_CONNECTION_STRING") or None
    if conn:
        if account_name or account_key:
            raise UsageError("give --connection-string or --account-name/--account-key, not both")
        account, key, endpoint = azure_account.connection_string_account(conn)
        if not key:
            raise UsageError("the connection string has no AccountKey: this command signs with the account key")
        return account, key, blob_endpoint or endpoint
    account = account_name or env.get("AZURE_STORAGE_ACCOUNT") or ""
    if not account:
        raise UsageError(
            "no storage account: give --account-name (or --connection-string), or set AZURE_STORAGE_ACCOUNT "
            "or AZURE_STORAGE_CONNECTION_STRING"
        )
    key = account_key or env.get("AZURE_STORAGE_KEY") or ""
    if not key and env.get("AZURE_STORAGE_CONNECTION_STRING"):
        env_account, env_key, env_endpoint = azure_account.connection_string_account(
            env["AZURE_STORAGE_CONNECTION_STRING"]
        )
        if env_account == account and env_key:
            key, blob_endpoint = env_key, blob_endpoint or env_endpoint
    if not key:
        raise UsageError(
            f"no account key for storage account {account}: give --account-key or --connection-string, or set "
            "AZURE_STORAGE_KEY or AZURE_STORAGE_CONNECTION_STRING"
        )
    return account, key, (blob_endpoint or f"https://{account}.blob.core.windows.net").rstrip("/")


@command(container_app, "generate-sas")
def generate_sas(
    name: ContainerNameOpt,
    expiry: Annotated[
        str,
        typer.Option("--expiry", help="When the SAS stops working, UTC: 2030-01-31T12:00Z (or a date: 2030-01-31)."),
    ],
    permissions: Annotated[
        str,
        typer.Option(
            "--permissions",
            help="Letters of (r)ead (a)dd (c)reate (w)rite (d)elete (x)delete-version (y)permanent-delete (l)ist "
            "(t)ags (f)ilter (m)ove (e)xecute (i)mmutability. Export pipelines need acwl (or racwdl); import "
            "pipelines rl, plus d with DeleteSourceBlobOnSuccess.",
        ),
    ],
    account_name: AccountOpt = None,
    account_key: KeyOpt = None,
    connection_string: ConnOpt = None,
    start: Annotated[
        str | None, typer.Option("--start", help="When the SAS starts working, UTC (default: at once).")
    ] = None,
    https_only: Annotated[bool, typer.Option("--https-only", help="Only permit requests made with HTTPS.")] = False,
    auth_mode: AuthModeOpt = None,
) -> str:
    """Generate a SAS token for a container, signed with the account key (as `az storage container generate-sas`).

    Prints the token without the leading '?' (with -o tsv: the bare token, ready for a file or a secret).

    Example:

        airlock storage container generate-sas --name transfer \\
            --account-name srcacct --account-key "$SOURCE_KEY" \\
            --expiry 2030-01-31T12:00Z --permissions alrw --https-only \\
            -o tsv > export.sas
    """
    _auth_mode(auth_mode)
    expires = _when(expiry, "--expiry")
    starts = _when(start, "--start") if start else None
    if starts and starts >= expires:
        raise UsageError("--start must be before --expiry")
    from airlock.storage import azure_account

    account, key, _ = _account(account_name, account_key, connection_string, None)
    return azure_account.container_sas(account, name, key, permissions, expires, starts, https_only)


@command(container_app, "create")
def create(
    name: ContainerNameOpt,
    account_name: AccountOpt = None,
    account_key: KeyOpt = None,
    connection_string: ConnOpt = None,
    blob_endpoint: EndpointOpt = None,
    auth_mode: AuthModeOpt = None,
) -> dict[str, bool]:
    """Create a blob container; prints {"created": false} when it already exists.

    Example (Azurite):

        airlock storage container create --name transfer \\
            --connection-string "UseDevelopmentStorage=true"
    """
    _auth_mode(auth_mode)
    from airlock.storage import azure_account

    account, key, endpoint = _account(account_name, account_key, connection_string, blob_endpoint)
    return {"created": azure_account.create_container(endpoint, name, account=account, key=key)}
