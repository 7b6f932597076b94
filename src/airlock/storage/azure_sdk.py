"""What every Azure Storage adapter module shares: the SDK's exceptions mapped to airlock's error
tree (never with the SAS), the credential a blob client is built with, the HTTP session and the
retry policy. The SDK is imported here, in ``azure_blob.py`` and in ``azure_account.py`` only."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, NoReturn

import requests
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.storage.blob import ExponentialRetry
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from airlock.errors import BlobExists, BlobNotFound, MissingCredential, StorageAuthError, StorageError

_POOL = 64  # connections kept alive per blob client: reads, ranged reads and staged blocks in flight
# The SDK's default waits 15 s, then longer; a dead endpoint should fail within seconds.
RETRY = ExponentialRetry(initial_backoff=1, increment_base=2, retry_total=3)


def sdk_session() -> requests.Session:
    """An HTTP session for one blob's client, keeping up to ``_POOL`` connections alive.

    The SDK's own keeps 10: an import reading a large blob by a ranged read of its own beside the
    main read (4 ranges in flight each) overflowed it, and urllib3 then warned "Connection pool is
    full" on the user's terminal for every extra request. Retries stay the SDK's (its policy),
    so the adapter's own are off, as the SDK sets them.
    """
    session = requests.Session()
    adapter = HTTPAdapter(
        pool_connections=4, pool_maxsize=_POOL, max_retries=Retry(total=False, redirect=False, raise_on_status=False)
    )
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def fail(exc: Exception, *, op: str, display: str) -> NoReturn:
    """Translate an SDK exception into airlock's error tree. Never includes the SAS."""
    if isinstance(exc, ResourceNotFoundError):
        code = str(getattr(exc, "error_code", "") or "")
        if "Container" in code:
            raise BlobNotFound(f"{op} {display}: the container does not exist") from None
        raise BlobNotFound(f"{op} {display}: the blob does not exist") from None
    if isinstance(exc, ResourceExistsError):
        raise BlobExists(f"{op} {display}: the blob already exists", blob=display) from None
    if isinstance(exc, ResourceModifiedError):
        raise StorageError(f"{op} {display}: the blob changed while it was being read", transient=True) from None
    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        raise StorageError(
            f"{op} {display}: cannot reach the storage service ({type(exc).__name__})", transient=True
        ) from None
    if isinstance(exc, ClientAuthenticationError) and getattr(exc, "status_code", None) is None:
        # Raised by azure-identity before any request: no managed identity, no az login, no env.
        raise MissingCredential(
            f"{op} {display}: no SAS token was given and no Azure credential is available "
            "(managed identity, AZURE_* environment, or az login)",
            blob=display,
        ) from None
    if isinstance(exc, ClientAuthenticationError | HttpResponseError):
        status = getattr(exc, "status_code", None)
        code = str(getattr(exc, "error_code", "") or "")
        if code == "AuthorizationPermissionMismatch":
            raise StorageAuthError(
                f"{op} {display}: permission denied (HTTP 403 {code}): the SAS token does not grant the "
                f"permission this needs ({_needed(op)})"
            ) from None
        if code in ("AuthorizationProtocolMismatch", "AuthorizationSourceIPMismatch"):
            why = "over https only (spr=https)" if "Protocol" in code else "from certain IP addresses only (sip=)"
            raise StorageAuthError(
                f"{op} {display}: permission denied (HTTP 403 {code}): the SAS token is valid {why}, and this "
                "request is not"
            ) from None
        if status in (401, 403):
            raise StorageAuthError(
                f"{op} {display}: authentication failed (HTTP {status} {code or 'AuthenticationFailed'}): the SAS "
                "token is expired, not yet valid, malformed, signed with another key, or for another "
                "container or account; or the identity has no role on this storage account"
            ) from None
        raise StorageError(
            f"{op} {display}: storage answered HTTP {status} {code}".rstrip(),
            transient=bool(status and status >= 500),
        ) from None
    raise StorageError(f"{op} {display}: {type(exc).__name__}") from None


def _needed(op: str) -> str:
    return {"read": "r", "stat": "r", "write": "w and c (or a)", "delete": "d", "commit": "w", "list": "l"}.get(op, op)


def credential_for(display: str, account_url: str, sas_token: str | None, credential: object) -> Any:
    """The SDK credential: the SAS, an injected TokenCredential (a pipeline's identity), or the
    environment's Azure identity (managed identity, AZURE_* variables, az login) as az does."""
    if sas_token:
        return sas_token
    if not account_url.startswith("https://"):
        raise MissingCredential(
            f"no SAS token for {display} (an Azure identity can only be used over https)", blob=display
        )
    if credential is not None:
        return credential
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(exclude_interactive_browser_credential=True)


@contextlib.contextmanager
def mapped(op: str, display: str) -> Iterator[None]:
    try:
        yield
    except (HttpResponseError, ServiceRequestError, ServiceResponseError) as exc:
        fail(exc, op=op, display=display)
