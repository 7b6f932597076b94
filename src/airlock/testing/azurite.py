"""Azurite, the Azure Blob Storage emulator: the server, and direct SDK helpers against it.

:class:`AzuriteServer` runs Azurite's blob service with named accounts, over http or https. The
helpers use the SDK with the account key, independently of airlock's storage layer, so tests can set
up containers, mint SAS tokens and read back what airlock wrote; every client is closed before
return. :class:`StorageTokenCredential` stands in for a managed identity in Azurite's OAuth mode.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import ipaddress
import json
import os
import secrets
import ssl
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from azure.core.credentials import AccessToken
from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import (
    BlobProperties,
    BlobServiceClient,
    ContainerSasPermissions,
    generate_container_sas,
)
from cryptography import x509

from airlock.testing.certificates import self_signed, write_key_and_cert
from airlock.testing.processes import ManagedProcess, free_port, http_answers, on_a_free_port, require_executable

__all__ = [
    "AzuriteServer",
    "StorageTokenCredential",
    "blob_properties",
    "container_sas",
    "container_url",
    "create_container",
    "download_blob",
    "list_blob_names",
    "service_client",
    "upload_blob",
]

REPO_ROOT = Path(__file__).resolve().parents[3]
AZURITE_BIN_ENV = "AIRLOCK_AZURITE_BIN"

AZURITE_READY_TIMEOUT = 20.0


def _azurite_bin() -> Path:
    override = os.environ.get(AZURITE_BIN_ENV)
    path = Path(override) if override else REPO_ROOT / ".tools" / "node_modules" / ".bin" / "azurite-blob"
    return require_executable(path, f"azurite-blob (Azurite; override with ${AZURITE_BIN_ENV})")


class AzuriteServer(ManagedProcess):
    """Azurite's blob service on ``127.0.0.1:<port>`` with the given accounts, data in ``workdir/<name>``.

    Accounts are addressed path-style: ``<scheme>://127.0.0.1:<port>/<account>``. Keys are random
    per server and kept across :meth:`restart`. With ``https`` a self-signed certificate for
    127.0.0.1/localhost is created; clients must trust ``ca_cert``.

    Azurite keeps metadata in memory and saves it to ``location`` periodically and on SIGTERM, so
    :meth:`stop` then :meth:`restart` keeps all data, while :meth:`kill` loses recent writes
    (containers and blobs created in the last seconds), as a real crash of the emulator would.
    """

    _ready_timeout = AZURITE_READY_TIMEOUT

    def __init__(
        self, workdir: Path, *, name: str, port: int, accounts: Sequence[str], https: bool, oauth: bool = False
    ) -> None:
        super().__init__(workdir, name, port)
        # --oauth basic: Azurite accepts any well-formed JWT for https://storage.azure.com (needs https)
        self.oauth = oauth
        if oauth and not https:
            raise ValueError("Azurite's OAuth mode needs https")
        if not accounts:
            raise ValueError("at least one account is needed")
        for account in accounts:
            # Azure account names: 3-24 lowercase letters and digits; anything else breaks URL parsing.
            if not (3 <= len(account) <= 24 and account.isascii() and account.isalnum() and account.islower()):
                raise ValueError(f"invalid storage account name {account!r}")
        if len(set(accounts)) != len(accounts):
            raise ValueError(f"duplicate account names in {list(accounts)}")
        self._keys = {account: base64.b64encode(secrets.token_bytes(64)).decode("ascii") for account in accounts}
        self.location = workdir / name
        self.ca_cert: Path | None = None
        self._key_path: Path | None = None
        if https:
            self.ca_cert = workdir / f"{name}-cert.pem"
            self._key_path = workdir / f"{name}-key.pem"
            key, cert = self_signed(
                "127.0.0.1",
                san=[
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.DNSName("localhost"),
                ],
            )
            write_key_and_cert(key, cert, self._key_path, self.ca_cert)

    @classmethod
    def start(
        cls,
        workdir: Path,
        *,
        accounts: Sequence[str] = ("srcacct", "dstacct"),
        https: bool = False,
        name: str = "azurite",
        oauth: bool = False,
    ) -> AzuriteServer:
        """Start Azurite and wait (20 s at most) until it answers HTTP.

        Raises RuntimeError when the binary is missing or it does not come up (with the log tail).
        """
        _azurite_bin()
        workdir = Path(workdir).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        made: list[AzuriteServer] = []

        def start() -> AzuriteServer:
            made.append(cls(workdir, name=name, port=free_port(), accounts=accounts, https=https, oauth=oauth))
            made[-1].location.mkdir(parents=True, exist_ok=True)
            made[-1]._launch()
            return made[-1]

        return on_a_free_port(start, log=lambda: made[-1].log_path, busy="EADDRINUSE")

    @property
    def https(self) -> bool:
        return self.ca_cert is not None

    @property
    def scheme(self) -> str:
        return "https" if self.https else "http"

    @property
    def accounts(self) -> list[str]:
        return list(self._keys)

    def account_key(self, name: str) -> str:
        """The base64 shared key of account ``name`` (KeyError for an unknown account)."""
        return self._keys[name]

    @property
    def storage_host(self) -> str:
        """This server's ``AIRLOCK_STORAGE_HOSTS`` entry (``127.0.0.1:<port>``): a control plane sends
        pipeline credentials only to storage it lists (see :mod:`airlock.storage.hosts`)."""
        return f"127.0.0.1:{self._port}"

    def blob_endpoint(self, name: str) -> str:
        """``<scheme>://127.0.0.1:<port>/<account>``, no trailing slash."""
        if name not in self._keys:
            raise KeyError(name)
        return f"{self.scheme}://127.0.0.1:{self._port}/{name}"

    def connection_string(self, name: str) -> str:
        """An Azure Storage connection string for account ``name`` with its explicit BlobEndpoint."""
        return (
            f"DefaultEndpointsProtocol={self.scheme};AccountName={name};"
            f"AccountKey={self.account_key(name)};BlobEndpoint={self.blob_endpoint(name)};"
        )

    def ssl_context(self) -> ssl.SSLContext | None:
        """An SSL context trusting ``ca_cert``, or None for plain http."""
        if self.ca_cert is None:
            return None
        return ssl.create_default_context(cafile=str(self.ca_cert))

    def _argv(self) -> list[str]:
        argv = [
            str(_azurite_bin()),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(self._port),
            "--location",
            str(self.location),
            # The SDK in the venv may speak a newer API version than this Azurite knows.
            "--skipApiVersionCheck",
            "--loose",
            "--disableTelemetry",
            "--silent",
        ]
        if self.ca_cert is not None and self._key_path is not None:
            argv += ["--cert", str(self.ca_cert), "--key", str(self._key_path)]
        if self.oauth:
            argv += ["--oauth", "basic"]
        return argv

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["AZURITE_ACCOUNTS"] = ";".join(f"{name}:{key}" for name, key in self._keys.items())
        return env

    def _probe(self) -> bool:
        return http_answers(f"{self.scheme}://127.0.0.1:{self._port}/", self.ssl_context())


class StorageTokenCredential:
    """A TokenCredential for Azurite's ``--oauth basic`` mode: an unsigned JWT for Azure Storage.

    Stands in for a managed identity in tests of the ManagedIdentity storage access mode;
    ``principal_id`` becomes the token's ``oid`` so calls can be told apart.
    """

    def __init__(self, principal_id: str) -> None:
        self.principal_id = principal_id

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        def b64(obj: dict[str, Any]) -> str:
            return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

        now = int(time.time())
        claims = {
            "aud": "https://storage.azure.com",
            "iss": "https://sts.windows.net/test/",
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "oid": self.principal_id,
            "tid": "test",
        }
        token = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."
        return AccessToken(token, now + 3600)


_SAS_PERMISSION_LETTERS = frozenset("racwdxyltmeopi")


def service_client(server: AzuriteServer, account: str) -> BlobServiceClient:
    """A BlobServiceClient for ``account`` with its shared key; the caller must close it (use ``with``).

    For an https server the client trusts ``server.ca_cert``.
    """
    kwargs: dict[str, Any] = {}
    if server.ca_cert is not None:
        kwargs["connection_verify"] = str(server.ca_cert)
    return BlobServiceClient.from_connection_string(server.connection_string(account), **kwargs)


def create_container(server: AzuriteServer, account: str, container: str) -> None:
    """Create ``container`` in ``account``; succeeds if it exists already."""
    with service_client(server, account) as client, contextlib.suppress(ResourceExistsError):
        client.create_container(container)


def container_sas(
    server: AzuriteServer,
    account: str,
    container: str,
    *,
    permissions: str = "racwdl",
    expiry: dt.datetime | None = None,
    https_only: bool = False,
    start: dt.datetime | None = None,
) -> str:
    """A service SAS for ``container``, as a query string without the leading ``?``.

    ``permissions`` uses the Azure letters (r, a, c, w, d, l, ...); an unknown letter is a ValueError
    rather than silently dropped. ``expiry`` defaults to one hour from now. ``https_only`` sets
    ``spr=https`` (an http request with such a SAS is refused, which tests of transport policy need).
    """
    unknown = set(permissions) - _SAS_PERMISSION_LETTERS
    if unknown:
        raise ValueError(f"unknown SAS permission letters {sorted(unknown)} in {permissions!r}")
    if expiry is None:
        expiry = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    sas: str = generate_container_sas(
        account_name=account,
        container_name=container,
        account_key=server.account_key(account),
        permission=ContainerSasPermissions.from_string(permissions),
        expiry=expiry,
        start=start,
        protocol="https" if https_only else "https,http",
    )
    return sas.lstrip("?")


def container_url(server: AzuriteServer, account: str, container: str) -> str:
    """Path-style container URL: ``<scheme>://127.0.0.1:<port>/<account>/<container>``."""
    return f"{server.blob_endpoint(account)}/{container}"


def blob_properties(server: AzuriteServer, account: str, container: str, blob: str) -> BlobProperties:
    """The SDK's properties of one blob (size, content settings, metadata, etag, ...).

    Raises azure.core.exceptions.ResourceNotFoundError when the blob does not exist.
    """
    with service_client(server, account) as client:
        props: BlobProperties = client.get_blob_client(container, blob).get_blob_properties()
        return props


def list_blob_names(server: AzuriteServer, account: str, container: str, *, prefix: str | None = None) -> list[str]:
    """Names of the blobs in ``container`` (optionally under ``prefix``), sorted."""
    with service_client(server, account) as client:
        container_client = client.get_container_client(container)
        return sorted(blob.name for blob in container_client.list_blobs(name_starts_with=prefix))


def download_blob(server: AzuriteServer, account: str, container: str, blob: str) -> bytes:
    """The whole content of one blob."""
    with service_client(server, account) as client:
        data: bytes = client.get_blob_client(container, blob).download_blob().readall()
        return data


def delete_blob(server: AzuriteServer, account: str, container: str, blob: str) -> None:
    with service_client(server, account) as client:
        client.get_blob_client(container, blob).delete_blob()


def upload_blob(
    server: AzuriteServer,
    account: str,
    container: str,
    blob: str,
    data: bytes,
    *,
    metadata: dict[str, str] | None = None,
    overwrite: bool = True,
) -> None:
    """Write ``data`` as a block blob, e.g. to plant a corrupt or foreign object for a test."""
    with service_client(server, account) as client:
        client.get_blob_client(container, blob).upload_blob(data, metadata=metadata, overwrite=overwrite)
