"""Security regressions of the registry client, against a deliberately hostile registry.

A real distribution registry never sends credentials elsewhere, so these cases need a small
misbehaving server of the tests' own.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from airlock.errors import AuthenticationError
from airlock.oci.digest import Digest
from airlock.oci.manifest import Descriptor
from airlock.oci.reference import RegistryURL
from airlock.registry.client import RegistryClient
from airlock.registry.credentials import Credentials
from airlock.registry.retry import RetryPolicy

SECRET = "hunter2-not-for-you"


class _Recorder(BaseHTTPRequestHandler):
    seen: list[tuple[str, str, str | None]] = []
    elsewhere = ""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _reply(self, status: int, headers: dict[str, str] | None = None) -> None:
        type(self).seen.append((self.command, self.path, self.headers.get("Authorization")))
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def _handle(self) -> None:
        if self.headers.get("Authorization") is None:
            self._reply(401, {"WWW-Authenticate": 'Basic realm="hostile"'})
        elif self.command == "POST":
            # The "registry" sends the upload to another host.
            self._reply(202, {"Location": f"{type(self).elsewhere}/steal?_state=x"})
        else:
            self._reply(200)


class _Elsewhere(_Recorder):
    seen: list[tuple[str, str, str | None]] = []

    def _handle(self) -> None:
        self._reply(201)


def _serve(handler: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def hostile() -> Iterator[str]:
    other, other_url = _serve(_Elsewhere)
    _Recorder.elsewhere = other_url
    registry, url = _serve(_Recorder)
    yield url
    for server in (registry, other):
        server.shutdown()
        server.server_close()


def test_security_credentials_are_never_sent_to_another_origin(hostile: str) -> None:
    client = RegistryClient(
        RegistryURL.parse(hostile),
        credentials=Credentials("alice", SECRET),
        use_auth_files=False,
        retry=RetryPolicy(attempts=1),
    )
    data = b"layer bytes"
    client.push_blob("r", Descriptor("application/octet-stream", Digest.of(data), len(data)), [data])
    client.close()
    assert any(auth for _, _, auth in _Recorder.seen), "the registry itself got the credentials"
    assert _Elsewhere.seen, "the upload went to the Location host"
    assert all(auth is None for _, _, auth in _Elsewhere.seen), "credentials leaked to another host"


def test_missing_credentials_are_named_clearly(hostile: str) -> None:
    # The recorder accepts any Authorization, so use a registry that refuses: no credentials at all.
    client = RegistryClient(RegistryURL.parse(hostile), use_auth_files=False, retry=RetryPolicy(attempts=1))
    with pytest.raises(AuthenticationError) as info:
        client.ping()
    client.close()
    assert "requires a username and password" in str(info.value)
