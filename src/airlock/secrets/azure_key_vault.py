"""Azure Key Vault secrets, read with the ``azure-keyvault-secrets`` SDK as a managed identity.

URIs are Key Vault secret identifiers: ``https://<host>/secrets/<name>[/<version>]`` (no query, no
fragment). The host may be any vault endpoint; the embedded vault claims its own URIs before this
backend is asked (see :mod:`airlock.secrets.resolver`).

Each principal reads with its own credential (by default a ``ManagedIdentityCredential`` for its
client id), and one ``SecretClient`` is kept per (vault, principal) so tokens and the vault's
authentication challenge are reused between reads.
"""

from __future__ import annotations

import ipaddress
import re
import threading
from collections.abc import Callable
from urllib.parse import urlsplit

from azure.core.credentials import TokenCredential
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.identity import DefaultAzureCredential, ManagedIdentityCredential
from azure.keyvault.secrets import SecretClient

from airlock.errors import SecretError
from airlock.secrets.base import Principal, SecretAccessDenied, SecretNotFound

__all__ = ["AzureKeyVaultStore", "default_credential_for"]

# Key Vault object names: 1-127 alphanumerics and hyphens; versions are 32 hex digits in practice.
_PATH = re.compile(r"/secrets/(?P<name>[0-9A-Za-z-]{1,127})(?:/(?P<version>[0-9A-Za-z]{1,64}))?/?")

# DNS suffixes of Azure's own vault endpoints (public and sovereign clouds, managed HSM). Only for
# these may the SDK insist that the challenge's resource matches the vault's domain.
_AZURE_VAULT_SUFFIXES = (
    ".vault.azure.net",
    ".vault.azure.cn",
    ".vault.usgovcloudapi.net",
    ".vault.microsoftazure.de",
    ".managedhsm.azure.net",
    ".managedhsm.azure.cn",
    ".managedhsm.usgovcloudapi.net",
)

_MAX_REASON = 200


def default_credential_for(principal: Principal | None) -> TokenCredential:
    """The credential a principal reads with when none is injected.

    A principal with a client id is that managed identity; otherwise (no principal, or a
    system-assigned identity without a client id) the environment's default chain without the
    interactive browser, so a headless pipeline never blocks on a login prompt.
    """
    if principal is not None and principal.client_id:
        return ManagedIdentityCredential(client_id=principal.client_id)
    return DefaultAzureCredential(exclude_interactive_browser_credential=True)


def _is_azure_vault_host(host: str) -> bool:
    return host.lower().endswith(_AZURE_VAULT_SUFFIXES)


def _vault_name(host: str) -> str:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host.split(".", 1)[0]
    return host


def _who(principal: Principal | None) -> str:
    return principal.describe() if principal is not None else "this process's identity"


def _one_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= _MAX_REASON else line[: _MAX_REASON - 3] + "..."


def _network_reason(exc: BaseException) -> str:
    """A short, value-free reason for a transport failure (the SDK's text carries whole URLs)."""
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text or "SSLError" in text:
        return "TLS certificate not trusted (set REQUESTS_CA_BUNDLE to its CA bundle)"
    if "Connection refused" in text:
        return "connection refused"
    if "Name or service not known" in text or "nodename nor servname" in text or "getaddrinfo" in text:
        return "host name does not resolve"
    if "timed out" in text.lower():
        return "timed out"
    return type(exc).__name__


def _redact(uri: str) -> str:
    """``uri`` without user info, query and fragment, which may hold credentials."""
    try:
        parts = urlsplit(uri)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparseable URI>"
    return f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}"


class _SecretRef:
    __slots__ = ("host", "name", "netloc", "vault_url", "version")

    def __init__(self, uri: str) -> None:
        parts = urlsplit(uri)
        match = _PATH.fullmatch(parts.path)
        if (
            parts.scheme != "https"
            or not parts.hostname
            or parts.username is not None
            or parts.query
            or parts.fragment
            or match is None
        ):
            raise ValueError(uri)
        self.host: str = parts.hostname
        # netloc, not hostname: a port (a test vault, a private endpoint) is part of the vault's address.
        self.netloc = parts.netloc.lower()
        self.vault_url = f"https://{self.netloc}"
        self.name: str = match["name"]
        self.version: str | None = match["version"]

    def describe(self) -> str:
        return f"'{self.name}'" + (f" version {self.version}" if self.version else "")


class AzureKeyVaultStore:
    """SecretStore for Azure Key Vault (and anything speaking its data-plane API).

    ``credential_for`` maps a principal (None: the process itself) to the Azure credential it reads
    with; it is called once per principal. ``connection_verify`` is a CA bundle path (or False) for
    the HTTPS connection; None keeps the SDK default, which honours ``REQUESTS_CA_BUNDLE``.
    ``client_options`` are passed to every ``SecretClient`` (e.g. ``retry_total``).
    Thread-safe.
    """

    def __init__(
        self,
        *,
        credential_for: Callable[[Principal | None], TokenCredential] = default_credential_for,
        connection_verify: str | bool | None = None,
        client_options: dict[str, object] | None = None,
    ) -> None:
        self._credential_for = credential_for
        self._connection_verify = connection_verify
        self._client_options = dict(client_options or {})
        self._lock = threading.Lock()
        self._credentials: dict[Principal | None, TokenCredential] = {}
        self._clients: dict[tuple[str, Principal | None], SecretClient] = {}

    def handles(self, uri: str) -> bool:
        """True for ``https://<host>/secrets/<name>[/<version>]`` with no query or fragment."""
        try:
            _SecretRef(uri)
        except ValueError:
            return False
        return True

    def get_secret(self, uri: str, *, principal: Principal | None) -> str:
        """The secret's value, read as ``principal``.

        Raises:
            SecretNotFound: no such secret or version (HTTP 404).
            SecretAccessDenied: HTTP 403; the message names the vault, secret, principal and the
                missing ``get`` permission, with the command that grants it.
            SecretError: the URI is not one this store handles; the identity could not authenticate
                (401, no usable credential); the vault cannot be reached (transient); or it answered
                anything else. Never includes the value.
        """
        try:
            ref = _SecretRef(uri)
        except ValueError:
            raise SecretError(
                f"not an Azure Key Vault secret URI: {_redact(uri)} "
                "(expected https://<vault>/secrets/<name>[/<version>])"
            ) from None
        client = self._client(ref.vault_url, ref.host, principal)
        try:
            secret = client.get_secret(ref.name, ref.version)
        except AzureError as exc:
            raise self._translate(exc, ref, principal) from None
        except ValueError as exc:
            # Raised by the SDK's challenge policy when the vault asks for a token for a resource
            # outside its own domain: a misconfigured or impersonated vault.
            raise SecretError(
                f"key vault {ref.netloc}: refused its authentication challenge for secret {ref.describe()} "
                f"({_one_line(str(exc))})"
            ) from None
        if secret.value is None:
            raise SecretError(f"key vault {ref.netloc}: secret {ref.describe()} has no value")
        value: str = secret.value
        return value

    def close(self) -> None:
        """Close every client and credential this store created; later reads create new ones."""
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
            credentials, self._credentials = list(self._credentials.values()), {}
        for client in clients:
            client.close()
        for credential in credentials:
            close = getattr(credential, "close", None)
            if callable(close):
                close()

    def _client(self, vault_url: str, host: str, principal: Principal | None) -> SecretClient:
        with self._lock:
            client = self._clients.get((vault_url, principal))
            if client is not None:
                return client
            credential = self._credentials.get(principal)
            if credential is None:
                credential = self._credential_for(principal)
                self._credentials[principal] = credential
            options: dict[str, object] = dict(self._client_options)
            if self._connection_verify is not None:
                options["connection_verify"] = self._connection_verify
            client = SecretClient(
                vault_url,
                credential,
                # The SDK checks that the challenge's resource (vault.azure.net) is a suffix of the
                # vault's host; that can only hold for Azure's own vault domains, so elsewhere (a
                # test vault on 127.0.0.1, a private endpoint by IP) the check is switched off.
                verify_challenge_resource=_is_azure_vault_host(host),
                **options,
            )
            self._clients[(vault_url, principal)] = client
            return client

    @staticmethod
    def _translate(exc: AzureError, ref: _SecretRef, principal: Principal | None) -> SecretError:
        vault = f"key vault {ref.netloc}"
        # Order matters: ResourceNotFoundError and ClientAuthenticationError are HttpResponseErrors.
        if isinstance(exc, ResourceNotFoundError):
            return SecretNotFound(f"{vault}: secret {ref.describe()} not found")
        if isinstance(exc, ClientAuthenticationError):
            # Either the credential could not get a token (no managed identity endpoint, unknown
            # client id), or the vault rejected the token it got (401).
            reason = f"HTTP {exc.status_code}" if exc.status_code else _one_line(exc.message or type(exc).__name__)
            return SecretError(
                f"{vault}: {_who(principal)} could not authenticate to the vault to read secret {ref.describe()} "
                f"({reason})"
            )
        if isinstance(exc, HttpResponseError) and exc.status_code == 403:
            return SecretAccessDenied(_access_denied_message(exc, ref, principal))
        if isinstance(exc, ServiceRequestError | ServiceResponseError):
            return SecretError(f"cannot reach key vault {ref.netloc}: {_network_reason(exc)}", transient=True)
        if isinstance(exc, HttpResponseError) and exc.status_code:
            code = exc.error.code if exc.error is not None and exc.error.code else ""
            status = exc.status_code
            return SecretError(
                f"{vault}: HTTP {status}{f' {code}' if code else ''} reading secret {ref.describe()}",
                transient=status >= 500 or status == 429,
            )
        return SecretError(f"{vault}: reading secret {ref.describe()} failed ({type(exc).__name__})")


def _access_denied_message(exc: HttpResponseError, ref: _SecretRef, principal: Principal | None) -> str:
    code = exc.error.code if exc.error is not None and exc.error.code else ""
    vault = f"key vault {ref.netloc}"
    if code == "ForbiddenByFirewall":
        return f"{vault}: the vault's firewall refuses this client's network (reading secret '{ref.name}')"
    who = _who(principal)
    object_id = principal.principal_id if principal is not None and principal.principal_id else "<object id>"
    if code == "ForbiddenByRbac":
        # An RBAC vault ignores access policies; set-policy would not help.
        return (
            f"{vault}: {who} lacks the 'get' permission on secret '{ref.name}' (the vault uses Azure RBAC: "
            f"assign the 'Key Vault Secrets User' role to object id {object_id})"
        )
    return (
        f"{vault}: {who} lacks the 'get' permission on secret '{ref.name}' (grant it with: airlock keyvault "
        f"set-policy -n {_vault_name(ref.host)} --object-id {object_id} --secret-permissions get)"
    )
