"""Wrong schemes and untrusted certificates fail at once, with what to use, at the registry and at its
token server (``airlock.registry.tls``). Real servers: Debian's registry with and without TLS, the
test token server, and two tiny servers of the tests' own for answers distribution never gives (a
Bearer realm naming the wrong scheme, a TLS stack that answers plain HTTP with an alert record).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from airlock.errors import RegistryError
from airlock.oci.reference import RegistryURL
from airlock.registry.client import RegistryClient
from airlock.registry.retry import RetryPolicy
from airlock.testing.registry_server import RegistryServer
from airlock.testing.token_server import TokenServer

# A policy whose retries would be plain to see: four sleeps of at least 1 s.
SLOW_RETRY = RetryPolicy(attempts=5, base=2.0, cap=2.0)


def _client(url: str) -> RegistryClient:
    return RegistryClient(RegistryURL.parse(url), use_auth_files=False, retry=SLOW_RETRY, connect_timeout=5)


def _fails_at_once(client: RegistryClient) -> RegistryError:
    start = time.monotonic()
    with pytest.raises(RegistryError) as info:
        client.ping()
    client.close()
    assert time.monotonic() - start < 1.0, "retried a failure that cannot heal"
    assert info.value.transient is False
    assert "\n" not in str(info.value)
    return info.value


@pytest.fixture(scope="module")
def tls_registry(workdir: Path) -> Iterator[RegistryServer]:
    with RegistryServer.start(workdir / "tls", name="tls", tls=True) as server:
        yield server


def test_https_to_a_plain_registry_is_not_retried(source_registry: RegistryServer) -> None:
    host = source_registry.host
    error = _fails_at_once(_client(f"https://{host}"))
    assert str(error) == f"the registry at https://{host} answered plain HTTP; use http://{host}"


def test_http_to_a_tls_registry_is_not_retried(tls_registry: RegistryServer) -> None:
    host = tls_registry.host
    error = _fails_at_once(_client(f"http://{host}"))
    assert str(error) == f"the registry at http://{host} answered with TLS; use https://{host}"


def test_untrusted_certificate_is_not_retried(tls_registry: RegistryServer) -> None:
    error = _fails_at_once(_client(tls_registry.url))
    assert str(error) == (
        f"the registry at {tls_registry.url} presented a certificate that is not trusted (self-signed certificate); "
        "to trust its CA, set SSL_CERT_FILE to a PEM bundle that includes it"
    )


def test_name_mismatch_is_reported_without_the_ca_hint(tls_registry: RegistryServer) -> None:
    # The certificate names 127.0.0.1 and localhost, the only names that reach the registry; so the
    # client trusts the CA and checks for another name (urllib3's assert_hostname), as if the
    # registry were reached under a name its certificate lacks. No CA bundle fixes that.
    assert tls_registry.ca_cert is not None
    client = RegistryClient(RegistryURL.parse(tls_registry.url), use_auth_files=False, retry=SLOW_RETRY)
    client._session.pool.connection_pool_kw.update(ca_certs=str(tls_registry.ca_cert), assert_hostname="other.example")
    error = _fails_at_once(client)
    assert str(error).startswith(f"the registry at {tls_registry.url} presented a certificate that is not trusted (")
    assert "SSL_CERT_FILE" not in str(error)


# ------------------------------------------------------------------------------------ token servers


def _challenger(realm: str) -> tuple[ThreadingHTTPServer, list[str]]:
    """A registry that answers every request with a Bearer challenge naming ``realm``."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            seen.append(self.path)
            self.send_response(401)
            self.send_header("WWW-Authenticate", f'Bearer realm="{realm}",service="svc"')
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, seen


@pytest.mark.parametrize("direction", ["https-to-plain", "http-to-tls"])
def test_token_server_on_the_wrong_scheme_is_named_and_not_retried(
    workdir: Path, tls_registry: RegistryServer, direction: str
) -> None:
    with TokenServer.start(workdir / "token") as token:
        if direction == "https-to-plain":
            realm, expected = (
                f"https://127.0.0.1:{token.port}/token",
                f"https://127.0.0.1:{token.port} answered plain HTTP",
            )
        else:
            # Go's TLS server answers any plain request the same way, whatever the path.
            realm, expected = f"http://{tls_registry.host}/token", f"http://{tls_registry.host} answered with TLS"
        server, seen = _challenger(realm)
        try:
            host = f"127.0.0.1:{server.server_address[1]}"
            error = _fails_at_once(_client(f"http://{host}"))
        finally:
            server.shutdown()
            server.server_close()
    assert str(error).startswith(f"the token server of registry {host} at {expected}"), str(error)
    assert seen == ["/v2/"], "the registry was asked again"


# ---------------------------------------------------------------------------- TLS alerts on plain HTTP


@pytest.fixture
def alerting_port() -> Iterator[int]:
    """A server that answers whatever it receives with a TLS alert record (as OpenSSL-based servers do)."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                conn.recv(65536)
                conn.sendall(b"\x15\x03\x01\x00\x02\x02\x46")  # alert(21), TLS 1.0, fatal protocol_version

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    listener.close()


def test_a_tls_alert_answering_plain_http_says_use_https(alerting_port: int) -> None:
    host = f"127.0.0.1:{alerting_port}"
    error = _fails_at_once(_client(f"http://{host}"))
    assert str(error) == f"the registry at http://{host} answered with TLS; use https://{host}"
