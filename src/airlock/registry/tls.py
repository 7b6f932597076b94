"""Telling a wrong URL scheme and an untrusted certificate apart from network faults.

None of these is transient: a TLS handshake with a server that speaks plain HTTP, a plain request
to a TLS port, or a certificate nobody here trusts fails the same way on every attempt. So they are
raised at once (never retried), as one line that says what to change.

What servers answer, as checked against Debian's distribution registry (Go's net/http) with TLS:

- ``https://`` to a plain-HTTP server: the server answers the ClientHello with an HTTP 400, which
  OpenSSL reports as ``WRONG_VERSION_NUMBER`` (newer OpenSSL releases may say ``packet length too
  long`` or ``record layer failure``).
- ``http://`` to a TLS server: Go answers ``HTTP/1.0 400`` with the body "Client sent an HTTP
  request to an HTTPS server."; nginx a 400 page "The plain HTTP request was sent to HTTPS port";
  other TLS stacks answer with a TLS alert record (bytes ``15 03 ..``), which is no HTTP status line.

Lost connections during a handshake (EOF, reset) stay ordinary transient failures: a registry
restarting behind a TLS proxy looks like that, and a retry helps.
"""

from __future__ import annotations

import http.client
import ssl
from typing import TypeVar
from urllib.parse import urlsplit

from urllib3.util.ssl_match_hostname import CertificateError

from airlock.errors import RegistryError

# OpenSSL's reasons when the bytes after a ClientHello are not TLS at all.
_NOT_TLS_REASONS = frozenset({"WRONG_VERSION_NUMBER", "PACKET_LENGTH_TOO_LONG", "RECORD_LAYER_FAILURE", "HTTP_REQUEST"})
# Handshake failures that are connection faults, not a property of the server.
_TRANSIENT_REASONS = frozenset({"UNEXPECTED_EOF_WHILE_READING", "EOF"})
# Bodies of the 400 a TLS server sends to a plain HTTP request (Go, nginx).
_TLS_PORT_MARKERS = (b"HTTP request to an HTTPS server", b"plain HTTP request was sent to HTTPS port")
# X509_V_ERR_*: the issuer is not trusted here (self-signed, missing CA), as opposed to a wrong host
# name or an expired certificate, which no CA bundle fixes.
_UNTRUSTED_ISSUER = frozenset({18, 19, 20, 21})

_E = TypeVar("_E", bound=BaseException)


def tls_failure(
    exc: BaseException, url: str, *, label: str = "the registry", advise: bool = True
) -> RegistryError | None:
    """The non-transient error for a request to ``url`` that failed with ``exc``, or None.

    None means ``exc`` is not a TLS problem (or a transient one): the caller handles it as a
    network fault. ``label`` names the server ("the registry", "the token server of …");
    ``advise`` adds "use http://…"/"use https://…" (only the registry's own URL is the user's to change).
    """
    scheme, hostport = _origin(url)
    ssl_exc = _find(exc, ssl.SSLError)
    if scheme == "https" and isinstance(ssl_exc, ssl.SSLCertVerificationError):
        reason = ssl_exc.verify_message or ssl_exc.reason or "certificate verify failed"
        hint = ""
        if ssl_exc.verify_code in _UNTRUSTED_ISSUER:
            hint = "; to trust its CA, set SSL_CERT_FILE to a PEM bundle that includes it"
        return RegistryError(
            f"{label} at https://{hostport} presented a certificate that is not trusted ({reason}){hint}"
        )
    mismatch = _find(exc, CertificateError)  # urllib3's own host name check (with assert_hostname)
    if scheme == "https" and mismatch is not None:
        return RegistryError(f"{label} at https://{hostport} presented a certificate that is not trusted ({mismatch})")
    if scheme == "https" and ssl_exc is not None:
        reason = str(ssl_exc.reason or type(ssl_exc).__name__)
        if isinstance(ssl_exc, ssl.SSLEOFError | ssl.SSLZeroReturnError) or reason in _TRANSIENT_REASONS:
            return None
        if reason in _NOT_TLS_REASONS:
            return _plain_on_https(label, hostport, advise)
        return RegistryError(
            f"TLS handshake with {label} at https://{hostport} failed ({reason.lower().replace('_', ' ')})"
        )
    bad = _find(exc, http.client.BadStatusLine)
    line = str(bad.args[0]) if bad is not None and bad.args else ""
    if scheme == "http" and line.startswith(("\x15\x03", "\x16\x03")):  # a TLS alert or handshake record
        return _tls_on_http(label, hostport, advise)
    return None


def tls_answer(
    status: int, url: str, body: bytes, *, label: str = "the registry", advise: bool = True
) -> RegistryError | None:
    """The error when a plain-HTTP request to ``url`` was answered by a TLS server (its 400), or None."""
    scheme, hostport = _origin(url)
    if scheme == "http" and status == 400 and any(m in body[:1024] for m in _TLS_PORT_MARKERS):
        return _tls_on_http(label, hostport, advise)
    return None


def _plain_on_https(label: str, hostport: str, advise: bool) -> RegistryError:
    fix = f"; use http://{hostport}" if advise else " on an https:// URL"
    return RegistryError(f"{label} at https://{hostport} answered plain HTTP{fix}")


def _tls_on_http(label: str, hostport: str, advise: bool) -> RegistryError:
    fix = f"; use https://{hostport}" if advise else " on an http:// URL"
    return RegistryError(f"{label} at http://{hostport} answered with TLS{fix}")


def _origin(url: str) -> tuple[str, str]:
    """(scheme, host[:port]) of ``url``, without userinfo, path or query (they may hold secrets)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    return parts.scheme, host if port is None else f"{host}:{port}"


def _find(exc: BaseException, kind: type[_E]) -> _E | None:
    """The first exception of ``kind`` in ``exc``'s chain: urllib3 wraps the ssl/http.client error in
    ``reason`` and ``args`` (MaxRetryError → SSLError → ssl.SSLError), Python in __cause__/__context__."""
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        cur = pending.pop(0)
        if id(cur) in seen or len(seen) > 32:
            continue
        seen.add(id(cur))
        if isinstance(cur, kind):
            return cur
        nested = [getattr(cur, "reason", None), *cur.args, cur.__cause__, cur.__context__]
        pending += [e for e in nested if isinstance(e, BaseException)]
    return None
