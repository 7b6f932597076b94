"""One registry's HTTP session over urllib3: connection pool, authentication, retries, and the
error that an unexpected answer becomes. :class:`airlock.registry.client.RegistryClient` states the
contracts (errors, retries, wrong scheme and untrusted certificate); they are kept here.

urllib3 was chosen by measurement: a streamed GET + SHA-256 of a 100 MiB blob from the local
distribution registry ran at ~920 MiB/s with urllib3 and ~280 MiB/s with httpx on this machine.

A session is thread-safe: one is shared by all transfer workers; urllib3's pool holds up to
``max_connections`` connections per host.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import urllib3
from urllib3.exceptions import HTTPError as Urllib3Error

from airlock.errors import AuthenticationError, NotFound, PermissionDenied, RegistryError
from airlock.oci.reference import RegistryURL
from airlock.registry.auth import Authenticator
from airlock.registry.credentials import Credentials, credentials_for
from airlock.registry.retry import RETRY_STATUSES, RetryPolicy
from airlock.registry.tls import tls_answer, tls_failure

log = logging.getLogger(__name__)

_MAX_ERROR_BODY = 64 * 1024  # as go-containerregistry: error bodies are read at most this far


def _redact(url: str) -> str:
    """The URL without query or userinfo: upload locations carry state tokens in the query."""
    p = urlsplit(url)
    host = p.hostname or ""
    if p.port:
        host = f"{host}:{p.port}"
    return urlunsplit((p.scheme, host, p.path, "", ""))


def _oci_errors(body: bytes) -> tuple[list[str], str]:
    """The error codes and first message of a distribution-spec error body (may be empty)."""
    try:
        doc = json.loads(body)
        errs = doc.get("errors") or []
        codes = [str(e.get("code", "")) for e in errs if isinstance(e, dict)]
        msgs = [str(e.get("message", "")) for e in errs if isinstance(e, dict) and e.get("message")]
        return codes, (msgs[0] if msgs else "")
    except (ValueError, AttributeError):
        return [], ""


class Session:
    """Requests to one registry, with its credentials and retry policy. See the module docstring."""

    def __init__(
        self,
        url: RegistryURL,
        *,
        credentials: Credentials | None = None,
        use_auth_files: bool = True,
        retry: RetryPolicy | None = None,
        max_connections: int = 8,
        connect_timeout: float = 10.0,
        read_timeout: float = 120.0,
    ) -> None:
        self.url = url
        self.base = str(url)
        self._origin = _origin(self.base)
        self.retry = retry or RetryPolicy()
        self.pool = urllib3.PoolManager(
            num_pools=8,
            maxsize=max_connections,
            timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
            # Redirects (blob GETs are often sent to a CDN) are followed; urllib3 drops the
            # Authorization header when the host changes. Everything else is retried by us.
            retries=urllib3.Retry(total=None, connect=0, read=0, status=0, other=0, redirect=5),
        )
        if credentials is None and use_auth_files:
            credentials = credentials_for(url.host)
        self.auth = Authenticator(url.host, credentials, self.raw, secure=url.scheme == "https")

    def close(self) -> None:
        self.pool.clear()

    def raw(self, method: str, url: str, **kw: Any) -> urllib3.BaseHTTPResponse:
        """One request, no auth, no retry (the token server's); connection failures become a
        transient RegistryError, a wrong scheme or an untrusted certificate a permanent one."""
        try:
            return self.pool.request(method, url, **kw)
        except Urllib3Error as exc:
            tls = tls_failure(exc, url, label=f"the token server of registry {self.url.host}", advise=False)
            if tls is not None:
                raise tls from None
            raise RegistryError(
                f"{method} {_redact(url)}: cannot reach the registry ({reason(exc)})",
                transient=True,
            ) from None

    def resolve(self, path: str) -> str:
        """The absolute URL of a registry path; an absolute URL (a Location, a Link) as it is."""
        return path if path.startswith(("http://", "https://")) else self.base + path

    def send(
        self,
        method: str,
        path: str,
        *,
        scopes: tuple[str, ...],
        headers: dict[str, str] | None = None,
        body: bytes | Callable[[], Any] | None = None,
        retry: bool = True,
    ) -> urllib3.BaseHTTPResponse:
        """Send with auth and retries; return the first non-retryable response (any status).

        ``body`` is bytes, or a factory called once per attempt (a generator for a streamed
        upload: then ``retry`` must be False because the stream cannot be replayed).
        """
        url = self.resolve(path)
        # Credentials go to the registry's own origin only: an upload Location or a Link may point
        # elsewhere (a CDN, object storage), and must never receive them, nor be plain http when the
        # registry is https. A path ("/v2/...") is the registry's own: no URL to parse.
        same_origin = path.startswith("/") or _origin(url) == self._origin
        if self.url.scheme == "https" and url.startswith("http://"):
            raise RegistryError(f"{method} {_redact(url)}: registry {self.url.host} redirected from https to http")
        attempt = 0
        auth_refreshed = False
        while True:
            attempt += 1
            hdrs = dict(headers or {})
            try:
                auth_value = self.auth.header(scopes) if same_origin else None
            except RegistryError as exc:
                if exc.transient and retry and attempt < self.retry.attempts:
                    self.retry.sleep(attempt)
                    continue
                raise
            if auth_value:
                hdrs["Authorization"] = auth_value
            payload = body() if callable(body) else body
            try:
                resp = self.pool.request(
                    method, url, body=payload, headers=hdrs, preload_content=False, decode_content=False
                )
            except Urllib3Error as exc:
                tls = tls_failure(exc, url, **self._label(same_origin))
                if tls is not None:
                    raise tls from None  # a wrong scheme or an untrusted certificate: no retry helps
                if retry and attempt < self.retry.attempts:
                    log.info("%s %s failed (%s), retrying", method, _redact(url), type(exc).__name__)
                    self.retry.sleep(attempt)
                    continue
                raise RegistryError(
                    f"{method} {_redact(url)}: cannot reach the registry ({reason(exc)})",
                    transient=True,
                ) from None
            replayable = retry or not callable(body)
            if resp.status == 401 and not auth_refreshed and replayable and same_origin:
                challenge = resp.headers.get("WWW-Authenticate", "")
                if self.auth.learn(challenge):
                    discard(resp)
                    auth_refreshed = True
                    if auth_value is not None:
                        self.auth.invalidate(scopes)
                    attempt -= 1  # an auth round-trip is not a failed attempt
                    continue
            if resp.status == 401:
                # No usable challenge, refused again after refreshing, or a streamed body that
                # cannot be sent twice: the caller reports it (with the body's error codes).
                return resp
            if resp.status in RETRY_STATUSES and retry and attempt < self.retry.attempts:
                retry_after = resp.headers.get("Retry-After")
                discard(resp)
                log.info("%s %s answered %d, retrying", method, _redact(url), resp.status)
                self.retry.sleep(attempt, retry_after)
                continue
            return resp

    def _label(self, same_origin: bool) -> dict[str, Any]:
        """How ``registry.tls`` names the server: the registry (whose URL the user can fix) or another."""
        if same_origin:
            return {"label": "the registry", "advise": True}
        return {"label": f"a server that registry {self.url.host} sent us to", "advise": False}

    def fail(self, resp: urllib3.BaseHTTPResponse, method: str, url: str, what: str) -> RegistryError:
        """Build the error for an unexpected response (reads at most 64 KiB of its body)."""
        try:
            body = resp.read(_MAX_ERROR_BODY) if not resp.closed else b""
        except Urllib3Error:
            body = b""
        finally:
            discard(resp)
        full_url = self.resolve(url)
        tls = tls_answer(resp.status, full_url, body or b"", **self._label(_origin(full_url) == self._origin))
        if tls is not None:
            return tls
        codes, message = _oci_errors(body or b"")
        detail = f"HTTP {resp.status}" + (f" {','.join(codes)}" if codes else "") + (f": {message}" if message else "")
        text = f"{what}: {detail} ({method} {_redact(self.resolve(url))})"
        status = resp.status
        if status == 401:
            who = self.auth.credentials.username if self.auth.credentials else ""
            hint = f" as {who!r}" if who else " (no credentials found for this registry)"
            where = f"{what}:" if what.startswith("registry ") else f"{what}: registry {self.url.host}"
            return AuthenticationError(
                f"{where} refused authentication{hint}: {detail}",
                status=status,
                codes=codes,
            )
        if status == 403:
            return PermissionDenied(
                f"{what}: permission denied by registry {self.url.host}: {detail}", status=status, codes=codes
            )
        if status == 404:
            return NotFound(text, status=status, codes=codes)
        return RegistryError(text, status=status, codes=codes, transient=status in RETRY_STATUSES)


def pull_scope(repository: str) -> str:
    """The token scope to read ``repository``."""
    return f"repository:{repository}:pull"


def push_scope(repository: str) -> str:
    """The token scope to write ``repository`` (pushing needs pull too)."""
    return f"repository:{repository}:pull,push"


def _origin(url: str) -> tuple[str, str, int | None]:
    p = urlsplit(url)
    return (p.scheme, (p.hostname or "").lower(), p.port or (443 if p.scheme == "https" else 80))


_POOL_PREFIX = re.compile(r"^\w+\(host='[^']*', port=\d+\): ")
_ERRNO = re.compile(r"\[Errno -?\d+\] ")


def reason(exc: BaseException) -> str:
    """What a urllib3 error says went wrong, in words and short enough for a one-line error
    (urllib3's text wraps the reason in its exception and pool reprs)."""
    inner = getattr(exc, "reason", None) or exc
    text = str(inner)
    if "Connection refused" in text:
        return "connection refused"
    if "Name or service not known" in text or "nodename nor servname" in text or "name resolution" in text:
        return "host name does not resolve"
    if isinstance(inner, TimeoutError) or "timed out" in text.lower():
        return "timed out"
    text = _ERRNO.sub("", _POOL_PREFIX.sub("", text).removeprefix("Failed to establish a new connection: "))
    return text.rpartition(": ")[2] if len(text) > 160 else text


def discard(resp: urllib3.BaseHTTPResponse) -> None:
    """Drop a response without reading it: close its connection if any body is left."""
    try:
        resp.drain_conn() if resp.length_remaining is not None and resp.length_remaining < 65536 else resp.close()
    except Urllib3Error:
        pass
    resp.release_conn()
