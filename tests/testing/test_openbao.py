"""The OpenBao harness waits out the KV v2 mount's upgrade after start-up (a CI flake, 2026-12-02)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from airlock.testing.openbao import OpenBaoServer

UPGRADING = (
    "Upgrading from non-versioned to versioned data. This backend will be unavailable for a brief "
    "period and will resume service shortly."
)


class _Upgrading(BaseHTTPRequestHandler):
    """KV v2 as OpenBao answers it while its mount upgrades: refused twice, then written."""

    refusals = 2
    writes: list[str] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        cls = type(self)
        if cls.refusals:
            cls.refusals -= 1
            self._answer(400, {"errors": [UPGRADING]})
        else:
            cls.writes.append(self.path)
            self._answer(200, {"data": {"version": len(cls.writes)}})

    def _answer(self, status: int, doc: object) -> None:
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def upgrading_bao() -> Iterator[int]:
    _Upgrading.refusals, _Upgrading.writes = 2, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Upgrading)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_put_secret_waits_while_the_kv_mount_is_upgrading(upgrading_bao: int, tmp_path: Path) -> None:
    bao = OpenBaoServer(tmp_path, name="stub", port=upgrading_bao)  # not launched: the stub answers
    assert bao.put_secret("pipelines/acr-sas", value="v") == 1
    assert _Upgrading.refusals == 0
    assert _Upgrading.writes == ["/v1/secret/data/pipelines/acr-sas"]
