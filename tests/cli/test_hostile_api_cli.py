"""Hostile input to the API never gets a 5xx (issue 10, section 4): every case below is answered
with a 4xx ARM error envelope, nothing is stored, and the server's log holds no traceback.

The server is a real `airlock serve` (airlock.testing.airlock_server.AirlockServer); the body-limit and
disconnect cases speak raw HTTP over a socket so that the test controls when bytes are sent. The
local CLI path (`airlock rest`, `airlock acr create`) is checked through the console script.
"""

from __future__ import annotations

import json
import select
import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from airlock.testing.airlock_server import AirlockServer
from airlock.testing.console import Console
from airlock.testing.polling import wait_until

SUB = "00000000-0000-0000-0000-000000000000"
ARM = f"/subscriptions/{SUB}/resourceGroups/rg/providers"
REG = ARM + "/Microsoft.ContainerRegistry/registries/"
KV = ARM + "/Microsoft.KeyVault/vaults/"
IDS = ARM + "/Microsoft.ManagedIdentity/userAssignedIdentities/"
API = "?api-version=2025-06-01-preview"
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirlockServer]:
    home = tmp_path_factory.mktemp("hostile-api") / "home"
    home.mkdir()
    srv = AirlockServer(home).start()
    try:
        srv.put(REG + "hostilereg", {"properties": {"loginServer": "https://r.example"}})
        srv.put(KV + "hostilekv", {})
        yield srv
    finally:
        srv.stop()


def stored(server: AirlockServer) -> dict[str, int]:
    """Rows in every table that holds what the API stores (resources, vaults, secrets, tokens)."""
    uri = f"file:{server.home / 'airlock.db'}?mode=ro"
    with sqlite3.connect(uri, uri=True) as db:
        tables = ("resources", "embedded_vaults", "embedded_vault_secrets", "api_tokens")
        return {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in tables}


def server_log(server: AirlockServer) -> str:
    return (server.home.parent / f"serve-{server.port}.log").read_text(errors="replace")


def envelope(r: httpx.Response, status: int = 400) -> str:
    assert r.status_code == status, (r.status_code, r.text[:300])
    error = r.json()["error"]
    assert error["code"] and isinstance(error["message"], str), error
    assert "\n" not in error["message"] and len(error["message"]) < 1000, error
    message: str = error["message"]
    return message


# Every route that takes a body, with the kind of resource it writes.
ROUTES = {
    "tokens": ("POST", "/airlock/tokens"),
    "secrets": ("PUT", KV + "hostilekv/secrets/newsecret"),
    "access-policies": ("PUT", KV + "hostilekv/accessPolicies/add"),
    "vaults": ("PUT", KV + "newvault1"),
    "identities": ("PUT", IDS + "newidentity1"),
    "registries": ("PUT", REG + "newregistry1"),
    "export-pipelines": ("PUT", REG + "hostilereg/exportPipelines/newexport1"),
    "import-pipelines": ("PUT", REG + "hostilereg/importPipelines/newimport1"),
    "pipeline-runs": ("PUT", REG + "hostilereg/pipelineRuns/newrun1"),
}
WRONGLY_TYPED = [
    b"1",
    b"[1]",
    b"null",
    b'"text"',
    b'{"properties": [1]}',
    b'{"properties": "x"}',
    b'{"properties": {"accessPolicies": [{"objectId": "x", "permissions": ["get"]}]}}',
    b'{"properties": {"accessPolicies": [{"objectId": "x", "permissions": {"secrets": "get"}}]}}',
    b'{"properties": {"accessPolicies": [1]}}',
    b'{"properties": {"value": ["v"]}}',
    b'{"properties": {"clientId": [1]}}',
    b'{"location": ["x"]}',
    b'{"name": 1, "role": []}',
]
NOT_RENDERABLE = [
    b'{"properties": {"loginServer": "https://r.example", "x": NaN}}',
    b'{"properties": {"loginServer": "https://r.example", "x": Infinity}, "location": "x"}',
    b'{"properties": {"loginServer": "https://r.example", "x": -Infinity}}',
    b'{"properties": {"loginServer": "https://r.example", "x": 1e999}}',
    b'{"location": NaN}',
    b'{"name": "nan1", "role": NaN}',
    b'{"properties": {"loginServer": "https://r.example", "x": "\\ud800"}}',
    b'{"location": "\\udfff"}',
    b'{"properties": {"loginServer": "https://r.example", "x": ' + b"9" * 5000 + b"}}",
]
DEEP = [
    b"[" * 100_000 + b"]" * 100_000,
    b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    b'{"properties": {"loginServer": "https://r.example", "x": ' + b"[" * 65 + b"]" * 65 + b"}}",
]


@pytest.mark.parametrize("route", list(ROUTES))
def test_wrongly_typed_bodies_get_400_envelopes_and_store_nothing(server: AirlockServer, route: str) -> None:
    method, path = ROUTES[route]
    before = stored(server)
    for body in WRONGLY_TYPED:
        r = server.http.request(method, path + API, content=body, headers={"Content-Type": "application/json"})
        envelope(r)
    assert stored(server) == before


@pytest.mark.parametrize("route", list(ROUTES))
def test_deeply_nested_json_gets_400_not_a_recursion_error(server: AirlockServer, route: str) -> None:
    method, path = ROUTES[route]
    before = stored(server)
    for body in DEEP:
        message = envelope(server.http.request(method, path + API, content=body))
        assert "nested deeper than 64" in message, message
    assert stored(server) == before
    assert "RecursionError" not in server_log(server)


@pytest.mark.parametrize("route", list(ROUTES))
def test_nan_infinity_and_lone_surrogates_are_refused_before_anything_is_stored(
    server: AirlockServer, route: str
) -> None:
    method, path = ROUTES[route]
    before = stored(server)
    for body in NOT_RENDERABLE:
        message = envelope(server.http.request(method, path + API, content=body))
        assert "not valid JSON" in message or "Unicode" in message, message
    assert stored(server) == before
    assert server.http.get(REG + "newregistry1" + API).status_code == 404


BAD_IDS = {
    "subscription-not-a-guid": f"/subscriptions/s/resourceGroups/rg/providers/{'Microsoft.ContainerRegistry'}"
    "/registries/goodname1",
    "subscription-non-ascii": "/subscriptions/0000000\u00e9-0000-0000-0000-000000000000/resourceGroups/rg/providers"
    "/Microsoft.ContainerRegistry/registries/goodname1",
    "subscription-newline": f"/subscriptions/{SUB}\n/resourceGroups/rg/providers/Microsoft.ContainerRegistry"
    "/registries/goodname1",
    "group-non-ascii": f"/subscriptions/{SUB}/resourceGroups/gr\u00fcppe/providers/Microsoft.ContainerRegistry"
    "/registries/goodname1",
    "group-control": f"/subscriptions/{SUB}/resourceGroups/rg\x01x/providers/Microsoft.KeyVault/vaults/goodkv1",
    "group-rtl-override": f"/subscriptions/{SUB}/resourceGroups/rg\u202ex/providers/Microsoft.ManagedIdentity"
    "/userAssignedIdentities/goodid1",
    "group-trailing-dot": f"/subscriptions/{SUB}/resourceGroups/rg./providers/Microsoft.KeyVault/vaults/goodkv1",
    "group-too-long": f"/subscriptions/{SUB}/resourceGroups/{'g' * 91}/providers/Microsoft.KeyVault/vaults/goodkv1",
    "registry-non-ascii": REG + "regi\u00f1stry",
    "registry-arabic-digits": REG + "reg\u0661\u0662\u0663",
    "pipeline-control": REG + "hostilereg/exportPipelines/pipe\x7fline",
    "run-non-ascii": REG + "hostilereg/pipelineRuns/r\u00fcn12345",
    "identity-line-separator": IDS + "id\u2028x",
    "vault-nul": KV + "kv\x00abc",
    "secret-non-ascii": KV + "hostilekv/secrets/s\u00e9cret",
}
VALID_BODY = {
    "registries": {"properties": {"loginServer": "https://r.example"}},
    "exportPipelines": {"properties": {"target": {"uri": "https://a.blob.core.windows.net/t", "keyVaultUri": "x"}}},
    "pipelineRuns": {"properties": {"request": {"pipelineResourceId": "x"}}},
    "secrets": {"properties": {"value": "v"}},
}


def _encoded(path: str) -> str:
    return "/".join(quote(segment, safe="") for segment in path.split("/"))


@pytest.mark.parametrize("case", list(BAD_IDS))
def test_ids_with_non_ascii_or_control_characters_get_400_on_every_method(server: AirlockServer, case: str) -> None:
    path = BAD_IDS[case]
    kind = next((k for k in VALID_BODY if f"/{k}/" in path), "registries")
    before = stored(server)
    for method in ("PUT", "GET", "DELETE"):
        body = json.dumps(VALID_BODY[kind]).encode() if method == "PUT" else None
        message = envelope(server.http.request(method, _encoded(path) + API, content=body))
        assert "invalid" in message, message
    assert stored(server) == before
    assert server.http.get("/healthz").status_code == 200


def _raw_request(server: AirlockServer, head: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    sock.sendall(head.encode())
    return sock


def _send_until_answered(sock: socket.socket, chunks: Iterator[bytes]) -> tuple[bytes, int]:
    """Send ``chunks`` while reading; returns (the reply, bytes sent) once the server has answered."""
    sock.setblocking(False)
    reply, sent, pending = b"", 0, b""
    deadline = time.monotonic() + 60
    while b"\r\n\r\n" not in reply or len(reply) < reply.find(b"\r\n\r\n") + 40:
        assert time.monotonic() < deadline, f"no answer after {sent} bytes"
        if not pending:
            pending = next(chunks, b"")
        readable, writable, _ = select.select([sock], [sock] if pending else [], [], 1)
        if readable:
            data = sock.recv(65536)
            if not data:
                break
            reply += data
        elif writable:
            try:
                n = sock.send(pending)
            except (BlockingIOError, InterruptedError):
                continue
            except (BrokenPipeError, ConnectionResetError):
                pending = b""
                continue
            sent += n
            pending = pending[n:]
    return reply, sent


def _rss_kib(server: AirlockServer) -> int:
    assert server.proc is not None
    for line in Path(f"/proc/{server.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _token(server: AirlockServer) -> str:
    return (server.home / "api-token").read_text().strip()


def _body_of(reply: bytes) -> Any:
    return json.loads(reply.split(b"\r\n\r\n", 1)[1])


def test_a_50_mb_body_is_refused_with_413_while_the_client_is_still_sending(server: AirlockServer) -> None:
    total = 50 * MiB
    for _ in range(2):  # warm: the first large request of a process allocates its buffers once
        server.http.put(REG + "warmreg1" + API, content=b"{" + b" " * MiB + b"}")
    rss_before = _rss_kib(server)
    sock = _raw_request(
        server,
        f"PUT {REG}bigreg1{API} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {_token(server)}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {total}\r\n\r\n",
    )
    with sock:
        reply, sent = _send_until_answered(sock, iter([b"[" + b"0," * (MiB // 2)] * 50))
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert sent < total // 2, f"the server let {sent} of {total} bytes in before answering"
    error = _body_of(reply)["error"]
    assert error["code"] == "RequestEntityTooLarge" and "AIRLOCK_MAX_BODY_BYTES" in error["message"]
    growth = (_rss_kib(server) - rss_before) / 1024
    assert growth < 8, f"the server's RSS grew by {growth:.1f} MiB for a refused body"
    assert server.http.get(REG + "bigreg1" + API).status_code == 404
    assert "Traceback" not in server_log(server)


def test_a_chunked_body_over_the_limit_is_refused_as_it_streams(server: AirlockServer) -> None:
    chunk = b"0," * (MiB // 2)
    framed = (f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" for _ in range(50))
    rss_before = _rss_kib(server)
    sock = _raw_request(
        server,
        f"PUT {REG}chunkreg1{API} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {_token(server)}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
    )
    with sock:
        reply, sent = _send_until_answered(sock, framed)
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert sent < 25 * MiB, f"the server read {sent} bytes of a 50 MiB body before refusing it"
    growth = (_rss_kib(server) - rss_before) / 1024
    assert growth < 12, f"the server's RSS grew by {growth:.1f} MiB: it held more than the 4 MiB limit"
    assert server.http.get(REG + "chunkreg1" + API).status_code == 404
    assert "Traceback" not in server_log(server)


def test_a_client_disconnecting_mid_body_leaves_one_log_line_and_no_traceback(server: AirlockServer) -> None:
    sock = _raw_request(
        server,
        f"PUT {REG}cutreg1{API} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {_token(server)}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {MiB}\r\n\r\n",
    )
    sock.sendall(b'{"properties": {"loginServer": "' + b"x" * 100_000)
    sock.close()
    wait_until(
        lambda: "disconnected before sending its whole request body" in server_log(server),
        what="the server's log line about the disconnected client",
    )
    log = server_log(server)
    assert "Traceback" not in log and "ClientDisconnect" not in log, log[-2000:]
    assert server.http.get(REG + "cutreg1" + API).status_code == 404


def test_the_local_cli_refuses_hostile_json_and_ids_with_one_error_line(tmp_path: Path) -> None:
    cli = Console(home=tmp_path)
    url = "/subscriptions/{subscriptionId}/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/restreg1"
    for body, expect in (
        ("[" * 5000 + "]" * 5000, "nested deeper than 64"),
        ('{"properties": {"loginServer": "https://r.example", "x": NaN}}', "NaN"),
        ('{"properties": {"loginServer": "https://r.example", "x": "\\ud800"}}', "Unicode"),
        ("[1]", "JSON object"),
    ):
        message = cli("rest", "--method", "put", "--url", url, "--body", body).only_error(2)
        assert expect in message, message
    refused = cli("acr", "create", "-g", "gr\u00fcppe", "-n", "cliregistry1", "--login-server", "https://r.example")
    assert "invalid resource group name" in refused.only_error(2)
    refused = cli("acr", "create", "-g", "rg", "-n", "cliregistry1", "--login-server", "https://r.example",
                  "--subscription", "not-a-guid")  # fmt: skip
    assert "invalid subscription id" in refused.only_error(2)
    assert cli("acr", "list", "-g", "rg").json() == []
