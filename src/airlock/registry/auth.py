"""Registry authentication: the WWW-Authenticate challenge, Basic, and Bearer tokens per scope.

The handshake follows the distribution token spec (docs/spec/auth/token.md): a request answered
with ``401`` and ``WWW-Authenticate: Bearer realm=…,service=…,scope=…`` is retried with a token
fetched from ``realm`` for that scope. Tokens are cached per scope set, so pulls from one
repository never use a token minted for another.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode

import urllib3

from airlock.errors import AuthenticationError, RegistryError
from airlock.registry.credentials import Credentials
from airlock.registry.tls import tls_answer

_PARAM_RE = re.compile(r'([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')
# Token responses are small JSON; a cap keeps a hostile token server from exhausting memory.
_MAX_TOKEN_RESPONSE = 1024 * 1024
# Refresh a little before the server's expiry so a long transfer never sends a stale token.
_EXPIRY_MARGIN = 30.0
_DEFAULT_TOKEN_LIFETIME = 60.0  # the token spec's default when expires_in is absent


@dataclass(frozen=True)
class Challenge:
    scheme: str  # "basic" or "bearer", lower-case
    params: dict[str, str]


def parse_challenge(header: str) -> Challenge | None:
    """Parse one ``WWW-Authenticate`` header value; None when it is empty or unparseable."""
    header = header.strip()
    if not header:
        return None
    scheme, _, rest = header.partition(" ")
    params = {
        m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3)) for m in _PARAM_RE.finditer(rest)
    }
    return Challenge(scheme.lower(), params)


def basic_header(creds: Credentials) -> str:
    return "Basic " + base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()


@dataclass
class _Token:
    value: str
    expires: float


class Authenticator:
    """Adds the Authorization header a registry wants, learning the scheme from its challenges.

    Thread-safe: many transfer workers share one instance. ``request`` is the HTTP function used for
    token requests (the client's pool), so token traffic obeys the same TLS settings.
    """

    def __init__(
        self,
        host: str,
        credentials: Credentials | None,
        request: Callable[..., urllib3.BaseHTTPResponse],
        *,
        secure: bool = True,
    ) -> None:
        self.host = host
        self.secure = secure
        self.credentials = credentials
        self._request = request
        self._challenge: Challenge | None = None
        self._tokens: dict[str, _Token] = {}
        self._lock = threading.Lock()

    @property
    def scheme(self) -> str | None:
        return self._challenge.scheme if self._challenge else None

    def learn(self, header: str) -> Challenge | None:
        """Record the challenge from a 401 response; returns it (None if unusable)."""
        ch = parse_challenge(header)
        if ch and ch.scheme in ("basic", "bearer"):
            with self._lock:
                self._challenge = ch
            return ch
        return None

    def header(self, scopes: tuple[str, ...]) -> str | None:
        """The Authorization value for a request needing ``scopes``; None before any challenge.

        Raises:
            AuthenticationError: the token server refused us or answered garbage.
        """
        ch = self._challenge
        if ch is None:
            return None
        if ch.scheme == "basic":
            if not self.credentials or not self.credentials.username:
                raise AuthenticationError(
                    f"registry {self.host} requires a username and password; none were found "
                    "(docker login, a config.json entry, or --username with --password-stdin)",
                    status=401,
                )
            return basic_header(self.credentials)
        key = " ".join(sorted(scopes))
        with self._lock:
            tok = self._tokens.get(key)
            if tok and tok.expires > time.monotonic():
                return f"Bearer {tok.value}"
        tok = self._fetch_token(ch, scopes)
        with self._lock:
            self._tokens[key] = tok
        return f"Bearer {tok.value}"

    def invalidate(self, scopes: tuple[str, ...]) -> None:
        with self._lock:
            self._tokens.pop(" ".join(sorted(scopes)), None)

    def _fetch_token(self, ch: Challenge, scopes: tuple[str, ...]) -> _Token:
        realm = ch.params.get("realm")
        if not realm or not realm.startswith(("https://", "http://")):
            raise AuthenticationError(f"registry {self.host} sent a Bearer challenge without a usable realm")
        service = ch.params.get("service", "")
        creds = self.credentials
        if self.secure and realm.startswith("http://") and creds:
            raise AuthenticationError(
                f"registry {self.host} names a plain-http token server; refusing to send credentials to it"
            )
        headers: dict[str, str] = {}
        if creds and creds.identity_token:
            # OAuth2 refresh-token grant (docker's identitytoken; what ACR hands out).
            form = {
                "grant_type": "refresh_token",
                "refresh_token": creds.identity_token,
                "service": service,
                "client_id": "airlock",
                "scope": " ".join(scopes),
            }
            resp = self._request(
                "POST",
                realm,
                body=urlencode(form),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                preload_content=False,
            )
        else:
            query = [("service", service)] if service else []
            query += [("scope", s) for s in scopes]
            if creds and creds.username:
                headers["Authorization"] = basic_header(creds)
            sep = "&" if "?" in realm else "?"
            resp = self._request(
                "GET", realm + (sep + urlencode(query) if query else ""), headers=headers, preload_content=False
            )
        try:
            body = resp.read(_MAX_TOKEN_RESPONSE + 1)
        except urllib3.exceptions.HTTPError as exc:
            raise RegistryError(
                f"token server for {self.host}: connection broke while reading ({type(exc).__name__})", transient=True
            ) from None
        finally:
            resp.release_conn()
        if resp.status in (401, 403):
            who = f"as {creds.username!r}" if creds and creds.username else "anonymously"
            raise AuthenticationError(
                f"token server for {self.host} refused to issue a token {who} for {' '.join(scopes) or 'the registry'}"
                f" (HTTP {resp.status}): check the credentials",
                status=resp.status,
            )
        tls = tls_answer(resp.status, realm, body, label=f"the token server of registry {self.host}", advise=False)
        if tls is not None:
            raise tls
        if resp.status != 200 or len(body) > _MAX_TOKEN_RESPONSE:
            raise RegistryError(
                f"token server for {self.host} answered HTTP {resp.status}",
                status=resp.status,
                transient=resp.status >= 500 or resp.status == 429,
            )
        try:
            doc = json.loads(body)
            value = doc.get("token") or doc.get("access_token")
            lifetime = float(doc.get("expires_in") or _DEFAULT_TOKEN_LIFETIME)
        except (ValueError, AttributeError, TypeError):
            raise AuthenticationError(f"token server for {self.host} returned an unreadable response") from None
        if not isinstance(value, str) or not value:
            raise AuthenticationError(f"token server for {self.host} returned no token")
        return _Token(value, time.monotonic() + max(lifetime - _EXPIRY_MARGIN, 5.0))
