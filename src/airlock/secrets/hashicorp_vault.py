"""HashiCorp Vault / OpenBao KV v2 secrets, read with ``hvac`` using a token for the principal.

A URI is the secret's own API URL, as ``vault kv get -output-curl-string`` prints it::

    http(s)://<host>[:port]/v1/<mount>/data/<path>[?version=N][#<field>]

The mount is everything between ``/v1/`` and the first ``/data/`` (so mounts may be nested); the
field defaults to ``value``, and a secret with exactly one key answers that key when it has no
``value``. Vault Enterprise namespaces are not supported.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import hvac  # type: ignore[import-untyped]
import hvac.exceptions  # type: ignore[import-untyped]
import requests.exceptions

from airlock.errors import SecretError
from airlock.secrets.base import Principal, SecretAccessDenied, SecretNotFound

__all__ = ["HashiCorpVaultStore", "default_token_for"]

DEFAULT_FIELD = "value"
_TOKEN_ENV = ("VAULT_TOKEN", "BAO_TOKEN")
_TIMEOUT = 30


def default_token_for(principal: Principal | None) -> str | None:
    """The process's own Vault token: ``$VAULT_TOKEN``, ``$BAO_TOKEN``, then ``~/.vault-token``; None if none.

    The principal is ignored: without an injected mapping every principal reads with the same token.
    """
    for name in _TOKEN_ENV:
        token = os.environ.get(name, "").strip()
        if token:
            return token
    try:
        token = (Path.home() / ".vault-token").read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError, RuntimeError):
        return None
    return token or None


def _who(principal: Principal | None) -> str:
    return principal.describe() if principal is not None else "this process"


def _network_reason(exc: BaseException) -> str:
    """A short, value-free reason for a transport failure (requests' text carries whole URLs)."""
    text = str(exc)
    if isinstance(exc, requests.exceptions.SSLError) or "CERTIFICATE_VERIFY_FAILED" in text:
        return "TLS certificate not trusted (pass its CA bundle as verify, or set REQUESTS_CA_BUNDLE)"
    if isinstance(exc, requests.exceptions.Timeout):
        return "timed out"
    if "Connection refused" in text:
        return "connection refused"
    if "Name or service not known" in text or "nodename nor servname" in text or "getaddrinfo" in text:
        return "host name does not resolve"
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
    __slots__ = ("address", "field", "field_given", "mount", "path", "version")

    def __init__(self, uri: str) -> None:
        parts = urlsplit(uri)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.username is not None:
            raise ValueError(uri)
        if not parts.path.startswith("/v1/"):
            raise ValueError(uri)
        mount, sep, path = parts.path[len("/v1/") :].partition("/data/")
        mount, path = mount.strip("/"), path.strip("/")
        if not (sep and mount and path) or "//" in path or "//" in mount:
            raise ValueError(uri)
        query = parse_qs(parts.query, keep_blank_values=True)
        if set(query) - {"version"}:
            raise ValueError(uri)
        version: int | None = None
        if "version" in query:
            (text,) = query["version"]  # ValueError on a repeated version
            if not text.isdigit():
                raise ValueError(uri)
            version = int(text)
        self.address = f"{parts.scheme}://{parts.netloc.lower()}"
        self.mount = unquote(mount)
        self.path = unquote(path)
        self.version = version
        self.field_given = bool(parts.fragment)
        self.field = unquote(parts.fragment) if parts.fragment else DEFAULT_FIELD

    @property
    def api_path(self) -> str:
        return f"{self.mount}/data/{self.path}"

    def describe(self) -> str:
        return f"'{self.api_path}'" + (f" version {self.version}" if self.version is not None else "")


class HashiCorpVaultStore:
    """SecretStore for KV v2 secrets in HashiCorp Vault or OpenBao.

    ``token_for`` maps a principal (None: the process itself) to the Vault token it reads with, or
    None when it has none (default: :func:`default_token_for`). ``verify`` is True, False or a CA
    bundle path for https vaults. Thread-safe.
    """

    def __init__(
        self,
        *,
        token_for: Callable[[Principal | None], str | None] = default_token_for,
        verify: str | bool = True,
    ) -> None:
        self._token_for = token_for
        self._verify = verify
        self._lock = threading.Lock()
        self._clients: dict[tuple[str, str], hvac.Client] = {}

    def handles(self, uri: str) -> bool:
        """True for ``http(s)://<host>[:port]/v1/<mount>/data/<path>[?version=N][#<field>]``."""
        try:
            _SecretRef(uri)
        except ValueError:
            return False
        return True

    def get_secret(self, uri: str, *, principal: Principal | None) -> str:
        """The field's value in the secret at ``uri``, read with the principal's token.

        Raises:
            SecretNotFound: no such secret, version (or the version is deleted or destroyed), or field.
            SecretAccessDenied: the token's policies lack the ``read`` capability on the path; the
                message names the vault, path, principal and capability.
            SecretError: the URI is not one this store handles; the principal has no token, or the
                vault rejects it; the vault cannot be reached (transient) or answers anything else.
                Never includes the value.
        """
        try:
            ref = _SecretRef(uri)
        except ValueError:
            raise SecretError(
                f"not a Vault KV v2 secret URI: {_redact(uri)} "
                "(expected http(s)://<host>/v1/<mount>/data/<path>[?version=N][#<field>])"
            ) from None
        token = self._token_for(principal)
        if not token:
            raise SecretError(
                f"vault {ref.address}: no Vault token for {_who(principal)} "
                f"to read secret {ref.describe()} "
                "(set VAULT_TOKEN or BAO_TOKEN, or log in so that ~/.vault-token exists)"
            )
        client = self._client(ref.address, token)
        try:
            response = client.secrets.kv.v2.read_secret_version(
                path=ref.path,
                version=ref.version,
                mount_point=ref.mount,
                # A deleted version is "not found" rather than an empty answer (also hvac 3's default).
                raise_on_deleted_version=True,
            )
        except hvac.exceptions.Forbidden:
            raise self._forbidden(client, ref, principal) from None
        except hvac.exceptions.VaultError as exc:
            raise self._translate(exc, ref, principal) from None
        except requests.exceptions.RequestException as exc:
            raise SecretError(f"cannot reach vault {ref.address}: {_network_reason(exc)}", transient=True) from None
        return _field(response, ref)

    def close(self) -> None:
        """Close the HTTP sessions of every client this store created."""
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.adapter.close()

    def _client(self, address: str, token: str) -> hvac.Client:
        # Keyed by token, not principal: a renewed token gets a fresh client, and no client ever
        # holds a token that token_for no longer returns.
        with self._lock:
            client = self._clients.get((address, token))
            if client is None:
                client = hvac.Client(url=address, token=token, verify=self._verify, timeout=_TIMEOUT)
                self._clients[(address, token)] = client
            return client

    @staticmethod
    def _forbidden(client: hvac.Client, ref: _SecretRef, principal: Principal | None) -> SecretError:
        vault = f"vault {ref.address}"
        # Vault answers a bare 403 "permission denied" for an unknown, expired or revoked token as
        # well; every live token may look itself up (the default policy), so that tells them apart.
        try:
            client.auth.token.lookup_self()
        except hvac.exceptions.Forbidden:
            return SecretError(
                f"{vault}: the vault does not accept the token of {_who(principal)} (unknown, expired or revoked; "
                f"reading secret {ref.describe()})"
            )
        except (hvac.exceptions.VaultError, requests.exceptions.RequestException):
            pass  # no better diagnosis; report the denial itself
        return SecretAccessDenied(
            f"{vault}: {_who(principal)} lacks the 'read' capability on secret {ref.describe()} "
            f'(grant it with a policy: path "{ref.api_path}" {{ capabilities = ["read"] }})'
        )

    @staticmethod
    def _translate(exc: Exception, ref: _SecretRef, principal: Principal | None) -> SecretError:
        vault = f"vault {ref.address}"
        if isinstance(exc, hvac.exceptions.InvalidPath):
            return SecretNotFound(f"{vault}: secret {ref.describe()} not found")
        if isinstance(exc, hvac.exceptions.Unauthorized):
            return SecretError(f"{vault}: {_who(principal)} could not authenticate (reading secret {ref.describe()})")
        if isinstance(exc, hvac.exceptions.VaultDown):
            return SecretError(
                f"{vault}: the vault is sealed or down (reading secret {ref.describe()})", transient=True
            )
        transient = isinstance(
            exc,
            hvac.exceptions.InternalServerError | hvac.exceptions.BadGateway | hvac.exceptions.RateLimitExceeded,
        )
        return SecretError(
            f"{vault}: reading secret {ref.describe()} failed ({type(exc).__name__})", transient=transient
        )


def _field(response: object, ref: _SecretRef) -> str:
    data = response.get("data") if isinstance(response, Mapping) else None
    fields = data.get("data") if isinstance(data, Mapping) else None
    if not isinstance(fields, Mapping):
        raise SecretError(f"vault {ref.address}: secret {ref.describe()} is not a KV v2 secret")
    if ref.field in fields:
        value = fields[ref.field]
    elif not ref.field_given and len(fields) == 1:
        (value,) = fields.values()
    else:
        # Field names are not secret; listing them tells the user what to put after '#'.
        names = ", ".join(sorted(str(k) for k in fields)) or "none"
        raise SecretNotFound(
            f"vault {ref.address}: secret {ref.describe()} has no field '{ref.field}' (fields: {names})"
        )
    if not isinstance(value, str):
        raise SecretError(
            f"vault {ref.address}: field '{ref.field}' of secret {ref.describe()} is a {type(value).__name__}, "
            "not a string"
        )
    return value
