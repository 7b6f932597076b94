"""Account-key operations on Azure Blob Storage for ``airlock storage container ...`` (az storage's
counterparts): read a connection string, sign a container SAS, create a container.

They sign with the account key, unlike the data path (:mod:`airlock.storage.azure_blob`, SAS or
identity), and share its error translation. Only the CLI imports this module, lazily.
"""

from __future__ import annotations

import base64
from datetime import datetime

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ServiceRequestError, ServiceResponseError
from azure.storage.blob import ContainerClient, generate_container_sas

from airlock.errors import UsageError
from airlock.storage.azure_sdk import RETRY, fail

_SAS_PERMISSIONS = "racwdxyltfmei"  # what ContainerSasPermissions knows, in the service's order


def connection_string_account(connection_string: str) -> tuple[str, str | None, str]:
    """(account name, account key or None, blob endpoint URL) of a storage connection string.

    ``UseDevelopmentStorage=true`` (Azurite's well-known account) and ``BlobEndpoint=`` are honoured.

    Raises:
        UsageError: the string does not parse (the message never repeats it: it holds a key).
    """
    try:
        client = ContainerClient.from_connection_string(connection_string, "x")
    except (ValueError, KeyError, TypeError):
        raise UsageError(
            "invalid storage connection string: expected AccountName=...;AccountKey=...[;BlobEndpoint=...]"
        ) from None
    account = str(client.account_name or "")
    if not account:
        raise UsageError("invalid storage connection string: no AccountName")
    key = getattr(client.credential, "account_key", None)
    endpoint = client.url.rsplit("/", 1)[0]
    return account, str(key) if key else None, endpoint


def container_sas(
    account: str,
    container: str,
    key: str,
    permissions: str,
    expiry: datetime,
    start: datetime | None,
    https_only: bool,
) -> str:
    """A service SAS for ``container`` signed with the account key (no leading '?').

    Raises:
        UsageError: an unknown permission letter, or a key that is not base64.
    """
    unknown = sorted(set(permissions) - set(_SAS_PERMISSIONS))
    if unknown or not permissions:
        raise UsageError(
            f"invalid --permissions {permissions!r}: combine letters of {_SAS_PERMISSIONS} "
            "(r)ead (a)dd (c)reate (w)rite (d)elete ... (l)ist"
        )
    ordered = "".join(p for p in _SAS_PERMISSIONS if p in permissions)
    try:
        base64.b64decode(key, validate=True)
    except ValueError:
        raise UsageError("invalid account key: not base64") from None
    return str(
        generate_container_sas(
            account,
            container,
            account_key=key,
            permission=ordered,
            expiry=expiry,
            start=start,
            protocol="https" if https_only else None,
        )
    )


def create_container(endpoint: str, container: str, *, account: str, key: str) -> bool:
    """Create ``container`` at ``endpoint`` (``https://acct.blob.core.windows.net`` or Azurite's
    ``http://host:port/acct``) with the account key; False when it already exists.

    Raises:
        StorageError (StorageAuthError for a wrong key).
    """
    display = f"{endpoint}/{container}"
    client = ContainerClient(
        endpoint,
        container,
        credential={"account_name": account, "account_key": key},
        retry_policy=RETRY,
        connection_timeout=10,
    )
    try:
        client.create_container()
    except ResourceExistsError:
        return False
    except (HttpResponseError, ServiceRequestError, ServiceResponseError) as exc:
        fail(exc, op="create", display=display)
    finally:
        client.close()
    return True
