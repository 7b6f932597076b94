"""An in-process Bearer token issuer for distribution's ``token`` auth (RS256 JWTs), in a thread."""

from __future__ import annotations

import base64
import datetime as dt
import http.server
import json
import secrets
import threading
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from airlock.testing.certificates import self_signed, write_key_and_cert
from airlock.testing.processes import InProcessHTTPServer

__all__ = ["TokenServer"]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _parse_scope(scope: str) -> dict[str, Any] | None:
    """``type:name:a,b`` to a distribution access entry; None when malformed.

    The name is everything between the first and the last colon, so names with a port stay intact.
    """
    kind, sep, rest = scope.partition(":")
    name, sep2, actions = rest.rpartition(":")
    if not (sep and sep2 and kind and name):
        return None
    return {"type": kind, "name": name, "actions": [a for a in actions.split(",") if a]}


class TokenServer(InProcessHTTPServer):
    """Bearer token issuer for distribution's ``token`` auth, in a background thread.

    ``GET /token?service=S&scope=repository:R:pull,push[&scope=...]`` with HTTP Basic credentials
    equal to ``credentials`` answers ``{"token", "access_token", "expires_in"}``; the token is an
    RS256 JWT granting exactly the requested scopes. Anything else (no or wrong credentials, another
    service) answers 401. ``requests`` records each scope string served, in order.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        credentials: tuple[str, str],
        service: str,
        issuer: str,
        name: str,
        expires_in: int,
    ) -> None:
        self.workdir = workdir
        self.credentials = credentials
        self.service = service
        self.issuer = issuer
        self.expires_in = expires_in
        self.key_path = workdir / f"{name}-key.pem"
        self.cert_path = workdir / f"{name}-cert.pem"
        self._key, self._cert = self_signed(f"airlock test token issuer {name}")
        write_key_and_cert(self._key, self._cert, self.key_path, self.cert_path)
        self._x5c = base64.b64encode(self._cert.public_bytes(serialization.Encoding.DER)).decode("ascii")
        self._lock = threading.Lock()
        self.requests: list[str] = []
        self.denied = 0
        self._httpd: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def start(
        cls,
        workdir: Path,
        *,
        credentials: tuple[str, str] = ("tokenuser", "tokenpass"),
        service: str = "airlock-test-registry",
        issuer: str = "airlock-test-issuer",
        name: str = "token",
        expires_in: int = 300,
    ) -> TokenServer:
        """Create key and certificate under ``workdir`` and serve on a free loopback port."""
        workdir = Path(workdir).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        server = cls(workdir, credentials=credentials, service=service, issuer=issuer, name=name, expires_in=expires_in)
        server._serve()
        return server

    @property
    def port(self) -> int:
        assert self._httpd is not None, "token server not running"
        port: int = self._httpd.server_address[1]
        return port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def realm(self) -> str:
        """The token endpoint, as configured in the registry's ``auth.token.realm``."""
        return f"{self.url}/token"

    def _serve(self) -> None:
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name=f"token-server-{self.port}", daemon=True)
        self._thread.start()

    def _authorized(self, header: str | None) -> str | None:
        if not header or not header.startswith("Basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        want_user, want_password = self.credentials
        ok = secrets.compare_digest(user.encode(), want_user.encode()) and secrets.compare_digest(
            password.encode(), want_password.encode()
        )
        return user if ok else None

    def _handle(self, req: http.server.BaseHTTPRequestHandler) -> None:
        parsed = urllib.parse.urlsplit(req.path)
        query = urllib.parse.parse_qs(parsed.query)
        if parsed.path != "/token":
            self._reply(req, 404, {"errors": [{"code": "NOT_FOUND", "message": parsed.path}]})
            return
        user = self._authorized(req.headers.get("Authorization"))
        if user is None:
            with self._lock:
                self.denied += 1
            self._reply(
                req,
                401,
                {"errors": [{"code": "UNAUTHORIZED", "message": "bad or missing credentials"}]},
                {"WWW-Authenticate": 'Basic realm="airlock-test-token"'},
            )
            return
        if query.get("service", [self.service]) != [self.service]:
            self._reply(req, 401, {"errors": [{"code": "UNAUTHORIZED", "message": "unknown service"}]})
            return
        scopes = [s for value in query.get("scope", []) for s in value.split(" ") if s]
        access = [entry for entry in map(_parse_scope, scopes) if entry is not None]
        token = self.issue(user, access)
        with self._lock:
            self.requests.extend(scopes)
        now = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
        body = {"token": token, "access_token": token, "expires_in": self.expires_in, "issued_at": now}
        self._reply(req, 200, body)

    @staticmethod
    def _reply(
        req: http.server.BaseHTTPRequestHandler,
        status: int,
        body: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> None:
        data = json.dumps(body).encode()
        req.send_response(status)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            req.send_header(key, value)
        req.end_headers()
        req.wfile.write(data)

    def issue(self, subject: str, access: list[dict[str, Any]]) -> str:
        """Sign a JWT for ``subject`` granting ``access`` (distribution's access-claim entries).

        Exposed so tests can mint tokens directly (e.g. expired or mis-scoped ones via ``access``).
        """
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self._x5c]}
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,
            "exp": now + self.expires_in,
            # Distribution allows only a small leeway, so backdate nbf against clock jitter.
            "nbf": now - 30,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        signing_input = (
            _b64url(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + _b64url(json.dumps(claims, separators=(",", ":")).encode())
        )
        signature = self._key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64url(signature)}"
