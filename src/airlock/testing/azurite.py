"""Direct azure-storage-blob helpers against an :class:`~airlock.testing.services.AzuriteServer`.

They use the SDK with the account key, independently of airlock's storage layer, so tests can set up
containers, mint SAS tokens and read back what airlock wrote. Every client is closed before return.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import (
    BlobProperties,
    BlobServiceClient,
    ContainerSasPermissions,
    generate_container_sas,
)

from airlock.testing.services import AzuriteServer

__all__ = [
    "blob_properties",
    "container_sas",
    "container_url",
    "create_container",
    "download_blob",
    "list_blob_names",
    "service_client",
    "upload_blob",
]

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
