"""A fake of Azure Key Vault's secrets data plane, for tests of code that uses the real SDK.

Key Vault is the one component with no runnable form here, so this speaks just enough of its
protocol for ``azure-keyvault-secrets``' ``SecretClient``, over HTTPS on a free loopback port:

* ``GET /secrets/{name}[/{version}]`` (the SDK asks for the latest as ``/secrets/{name}/``),
  ``PUT /secrets/{name}`` (body ``{"value": ...}``) and ``GET /secrets``, each with ``?api-version=``;
* the challenge protocol: a request without ``Authorization: Bearer`` gets ``401`` with
  ``WWW-Authenticate: Bearer authorization="https://login.microsoftonline.com/<tenant>",
  resource="https://vault.azure.net"``;
* access policies: tokens are ``principal:<principal_id>`` (minted by :class:`FakeCredential`), and
  the principal needs ``get``/``set``/``list`` for the operation, else ``403`` with the service's
  error body; a missing secret is ``404 SecretNotFound``. As in the real service, authentication is
  checked first, then permission, then existence.

Not modelled: token signatures and expiry, tenants, soft delete, disabled versions, paging.
"""

from __future__ import annotations

import http.server
import ipaddress
import json
import re
import ssl
import sys
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from azure.core.credentials import AccessToken
from cryptography import x509

from airlock.testing.certificates import self_signed, write_key_and_cert
from airlock.testing.processes import InProcessHTTPServer

__all__ = ["FakeCredential", "FakeKeyVault"]

TOKEN_PREFIX = "principal:"
_NAME = re.compile(r"[0-9A-Za-z-]{1,127}")
_VERSION = re.compile(r"[0-9A-Za-z]{1,64}")
_MAX_BODY = 1024 * 1024


class FakeCredential:
    """A TokenCredential whose tokens say which principal holds them: ``principal:<principal_id>``.

    ``calls`` records ``(scopes, tenant_id)`` of each token request, to check what the SDK asked for.
    """

    def __init__(self, principal_id: str, *, lifetime: int = 3600) -> None:
        self.principal_id = principal_id
        self.lifetime = lifetime
        self.calls: list[tuple[tuple[str, ...], str | None]] = []

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        self.calls.append((scopes, tenant_id))
        return AccessToken(f"{TOKEN_PREFIX}{self.principal_id}", int(time.time()) + self.lifetime)

    def close(self) -> None:
        pass


@dataclass
class _Version:
    version: str
    value: str
    created: int
    content_type: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


class FakeKeyVault(InProcessHTTPServer):
    """The fake vault, in a background thread; use :meth:`start`, and as a context manager.

    ``requests`` records ``(method, path, principal_id or None)`` of every request, in order.
    """

    def __init__(self, workdir: Path, *, name: str, tenant_id: str) -> None:
        self.workdir = workdir
        self.name = name
        self.tenant_id = tenant_id
        self.ca_cert = workdir / f"{name}-cert.pem"
        self._key_path = workdir / f"{name}-key.pem"
        key, cert = self_signed("127.0.0.1", san=[x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
        write_key_and_cert(key, cert, self._key_path, self.ca_cert)
        self._lock = threading.Lock()
        self._secrets: dict[str, list[_Version]] = {}
        self._policies: dict[str, set[str]] = {}
        self.requests: list[tuple[str, str, str | None]] = []
        self._httpd: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def start(cls, workdir: Path, *, name: str = "keyvault", tenant_id: str | None = None) -> FakeKeyVault:
        """Write a self-signed certificate for 127.0.0.1 under ``workdir`` and serve HTTPS on a free port."""
        workdir = Path(workdir).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        vault = cls(workdir, name=name, tenant_id=tenant_id or str(uuid.uuid4()))
        vault._serve()
        return vault

    @property
    def port(self) -> int:
        assert self._httpd is not None, "fake key vault not running"
        port: int = self._httpd.server_address[1]
        return port

    @property
    def url(self) -> str:
        """``https://127.0.0.1:PORT`` (no trailing slash): the vault URL."""
        return f"https://127.0.0.1:{self.port}"

    def secret_uri(self, name: str, version: str | None = None) -> str:
        """The secret identifier ``<url>/secrets/<name>[/<version>]``."""
        return f"{self.url}/secrets/{name}" + (f"/{version}" if version else "")

    # ----------------------------------------------------------------------------------- test controls

    def set_secret(self, name: str, value: str) -> str:
        """Add a new version of secret ``name`` (bypassing access policies); return the version id."""
        if not _NAME.fullmatch(name):
            raise ValueError(f"invalid secret name {name!r}")
        return self._add_version(name, value, None, {}).version

    def grant(self, principal_id: str, *permissions: str) -> None:
        """Add secret permissions (``get``, ``list``, ``set``) to the principal's access policy."""
        with self._lock:
            self._policies.setdefault(principal_id, set()).update(p.lower() for p in permissions)

    def revoke(self, principal_id: str) -> None:
        """Remove the principal's access policy altogether."""
        with self._lock:
            self._policies.pop(principal_id, None)

    # ------------------------------------------------------------------------------------------ server

    def _serve(self) -> None:
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                owner._handle(self, "GET")

            def do_PUT(self) -> None:
                owner._handle(self, "PUT")

            def do_DELETE(self) -> None:
                owner._handle(self, "DELETE")

            def do_POST(self) -> None:
                owner._handle(self, "POST")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                # Clients that distrust the certificate (a test of exactly that) or hang up abort the
                # handshake; that is their business, not a traceback on the test's stderr.
                if isinstance(sys.exc_info()[1], OSError):
                    return
                super().handle_error(request, client_address)

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.ca_cert, self._key_path)
        httpd = Server(("127.0.0.1", 0), Handler)
        # Handshake in the handler thread, on first read, so a stalled client cannot block accept().
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True, do_handshake_on_connect=False)
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, name=f"fake-keyvault-{self.port}", daemon=True)
        self._thread.start()

    def _handle(self, req: http.server.BaseHTTPRequestHandler, method: str) -> None:
        parsed = urllib.parse.urlsplit(req.path)
        query = urllib.parse.parse_qs(parsed.query)
        body = self._read_body(req)
        principal = self._principal(req.headers.get("Authorization"))
        with self._lock:
            self.requests.append((method, parsed.path, principal))
        if principal is None:
            # The SDK's first request is deliberately unauthenticated, to elicit this challenge.
            challenge = (
                f'Bearer authorization="https://login.microsoftonline.com/{self.tenant_id}", '
                'resource="https://vault.azure.net"'
            )
            self._error(req, 401, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.", challenge)
            return
        if not query.get("api-version", [""])[0]:
            self._error(req, 400, "BadParameter", "The request URI contains an invalid parameter 'api-version'.")
            return
        segments = parsed.path.split("/")[1:]
        if segments and segments[0] == "secrets":
            segments = segments[1:]
            if len(segments) == 0 or segments == [""]:
                if method == "GET":
                    self._list(req, principal)
                    return
            elif _NAME.fullmatch(segments[0]) and len(segments) <= 2:
                name = segments[0]
                version = segments[1] if len(segments) == 2 else ""
                if method == "GET" and (not version or _VERSION.fullmatch(version)):
                    self._get(req, principal, name, version or None)
                    return
                if method == "PUT" and not version:
                    self._put(req, principal, name, body)
                    return
            elif segments and not _NAME.fullmatch(segments[0]):
                self._error(req, 400, "BadParameter", "The request URI contains an invalid secret name.")
                return
        self._error(req, 404, "NotFound", f"{method} {parsed.path} is not an operation of this fake key vault.")

    def _get(self, req: http.server.BaseHTTPRequestHandler, principal: str, name: str, version: str | None) -> None:
        if not self._allowed(req, principal, "get"):
            return
        with self._lock:
            versions = list(self._secrets.get(name, []))
        found = (
            versions[-1] if versions and version is None else next((v for v in versions if v.version == version), None)
        )
        if found is None:
            ident = f"{name}/{version}" if version else name
            self._error(
                req,
                404,
                "SecretNotFound",
                f"A secret with (name/id) {ident} was not found in this key vault. If you recently deleted this "
                "secret you may be able to recover it using the correct recovery command. For help resolving "
                "this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182",
            )
            return
        self._reply(req, 200, self._bundle(name, found, with_value=True))

    def _put(self, req: http.server.BaseHTTPRequestHandler, principal: str, name: str, body: bytes) -> None:
        if not self._allowed(req, principal, "set"):
            return
        try:
            doc = json.loads(body or b"{}")
        except ValueError:
            doc = None
        if not isinstance(doc, dict) or not isinstance(doc.get("value"), str):
            self._error(req, 400, "BadParameter", "Property 'value' is required and must be a string.")
            return
        tags = doc.get("tags") if isinstance(doc.get("tags"), dict) else {}
        content_type = doc.get("contentType") if isinstance(doc.get("contentType"), str) else None
        added = self._add_version(name, doc["value"], content_type, tags or {})
        self._reply(req, 200, self._bundle(name, added, with_value=True))

    def _list(self, req: http.server.BaseHTTPRequestHandler, principal: str) -> None:
        if not self._allowed(req, principal, "list"):
            return
        with self._lock:
            latest = {name: versions[-1] for name, versions in sorted(self._secrets.items()) if versions}
        items = []
        for name, version in latest.items():
            item = self._bundle(name, version, with_value=False)
            item["id"] = f"{self.url}/secrets/{name}"
            items.append(item)
        self._reply(req, 200, {"value": items, "nextLink": None})

    def _allowed(self, req: http.server.BaseHTTPRequestHandler, principal: str, permission: str) -> bool:
        with self._lock:
            granted = permission in self._policies.get(principal, set())
        if not granted:
            self._error(
                req,
                403,
                "Forbidden",
                f"The user, group or application 'appid={principal};oid={principal};"
                f"iss=https://sts.windows.net/{self.tenant_id}/' does not have secrets {permission} permission on "
                f"key vault '{self.name};location=local'. For help resolving this issue, please see "
                "https://go.microsoft.com/fwlink/?linkid=2125287",
                inner="AccessDenied",
            )
        return granted

    def _add_version(self, name: str, value: str, content_type: str | None, tags: dict[str, str]) -> _Version:
        added = _Version(uuid.uuid4().hex, value, int(time.time()), content_type, dict(tags))
        with self._lock:
            self._secrets.setdefault(name, []).append(added)
        return added

    def _bundle(self, name: str, version: _Version, *, with_value: bool) -> dict[str, Any]:
        bundle: dict[str, Any] = {
            "id": f"{self.url}/secrets/{name}/{version.version}",
            "attributes": {
                "enabled": True,
                "created": version.created,
                "updated": version.created,
                "recoveryLevel": "Recoverable+Purgeable",
                "recoverableDays": 90,
            },
            "tags": version.tags,
        }
        if with_value:
            bundle["value"] = version.value
        if version.content_type is not None:
            bundle["contentType"] = version.content_type
        return bundle

    @staticmethod
    def _principal(header: str | None) -> str | None:
        if not header or not header.startswith("Bearer "):
            return None
        token = header[len("Bearer ") :].strip()
        if not token.startswith(TOKEN_PREFIX) or len(token) == len(TOKEN_PREFIX):
            return None
        return token[len(TOKEN_PREFIX) :]

    @staticmethod
    def _read_body(req: http.server.BaseHTTPRequestHandler) -> bytes:
        try:
            length = int(req.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        return req.rfile.read(min(max(length, 0), _MAX_BODY)) if length > 0 else b""

    def _error(
        self,
        req: http.server.BaseHTTPRequestHandler,
        status: int,
        code: str,
        message: str,
        challenge: str | None = None,
        *,
        inner: str | None = None,
    ) -> None:
        error: dict[str, Any] = {"code": code, "message": message}
        if inner is not None:
            error["innererror"] = {"code": inner}
        self._reply(req, status, {"error": error}, {"WWW-Authenticate": challenge} if challenge else None)

    @staticmethod
    def _reply(
        req: http.server.BaseHTTPRequestHandler,
        status: int,
        body: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> None:
        data = json.dumps(body).encode()
        req.send_response(status)
        req.send_header("Content-Type", "application/json; charset=utf-8")
        req.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            req.send_header(key, value)
        req.end_headers()
        req.wfile.write(data)
