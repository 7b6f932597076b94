"""The fault proxy never fails a request silently: what went wrong inside it is in ``errors``.

CI on dd26dc9 saw an import re-send one upload through the proxy (a DELETE and a plain POST) while
the failed PUT was neither recorded nor in ``errors``. That is what http.server does with a socket
timeout, such as a registry slower than the proxy's upstream timeout (30 s then) on a loaded machine:
it swallows it and hangs up without an answer, which the client can only take for a dropped
connection. These tests failed that way before the proxy answered 502 and logged it.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import urllib3

from airlock.testing.fault_proxy import FaultProxy
from airlock.testing.polling import wait_until


class _Stalled(BaseHTTPRequestHandler):
    """An upstream that reads the request and then does not answer until released."""

    release = threading.Event()

    def do_PUT(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        type(self).release.wait(30)
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def stalled() -> Iterator[str]:
    _Stalled.release.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stalled)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        _Stalled.release.set()
        server.shutdown()
        server.server_close()


def test_an_upstream_slower_than_the_upstream_timeout_is_answered_502_and_named_in_errors(stalled: str) -> None:
    with FaultProxy(stalled, upstream_timeout=0.5) as proxy:
        path = "/v2/r/blobs/uploads/x?digest=d"
        resp = urllib3.request("PUT", proxy.url + path, body=b"abc", retries=False)
        assert resp.status == 502
        assert [(s.method, s.path, s.status) for s in proxy.requests] == [("PUT", path, 502)]
        assert len(proxy.errors) == 1
        assert proxy.errors[0].startswith(f"PUT {path}: upstream failed: ")
        assert "timed out" in proxy.errors[0]


def test_an_upstream_that_refuses_connections_is_answered_502_and_named_in_errors() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{unused.getsockname()[1]}"  # bound, never listening: refused
        with FaultProxy(closed) as proxy:
            resp = urllib3.request("GET", f"{proxy.url}/v2/", retries=False)
            assert resp.status == 502
            assert resp.json()["errors"][0]["code"] == "UNAVAILABLE"
            assert len(proxy.errors) == 1 and "ConnectionRefusedError" in proxy.errors[0]


def test_a_client_that_sends_less_body_than_it_announced_is_named_in_errors(stalled: str) -> None:
    with FaultProxy(stalled, client_timeout=0.5) as proxy, socket.create_connection(("127.0.0.1", proxy.port)) as s:
        s.sendall(b"PUT /v2/r/blobs/uploads/y HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
        wait_until(lambda: proxy.errors, timeout=10, what="the proxy to give up on the body")
        assert len(proxy.errors) == 1
        assert proxy.errors[0].startswith("PUT /v2/r/blobs/uploads/y: Request timed out")
        assert proxy.requests == []  # nothing was forwarded


def test_an_idle_connection_that_never_sends_a_request_is_no_error(stalled: str) -> None:
    # A client's spare connection (Go dials ahead) that the proxy closes after client_timeout.
    with FaultProxy(stalled, client_timeout=0.3) as proxy, socket.create_connection(("127.0.0.1", proxy.port)) as s:
        s.settimeout(10)
        assert s.recv(1) == b""  # the proxy hung up on it
        assert proxy.errors == [] and proxy.requests == []
