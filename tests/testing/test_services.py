"""The real-component harness: registry (plain, htpasswd, token auth), token server, Azurite, skopeo."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from email.message import Message
from pathlib import Path

import pytest

from airlock.testing import azurite, content, registry_server, skopeo
from airlock.testing.azurite import AzuriteServer
from airlock.testing.images import push_oci_image, push_oci_index
from airlock.testing.processes import free_port, refusing_port
from airlock.testing.registry_server import RegistryServer
from airlock.testing.skopeo import run_skopeo
from airlock.testing.token_server import TokenServer

USER, PASSWORD = "alice", "s3cret-pass"


def http(
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    data: bytes | None = None,
    context: ssl.SSLContext | None = None,
) -> tuple[int, Message, bytes]:
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers, exc.read()


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def curl(*args: str) -> tuple[int, str]:
    """curl -si; returns (status, full response text), an independent HTTP client for auth flows."""
    done = subprocess.run(["/usr/bin/curl", "-si", "--max-time", "10", *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    status_line = done.stdout.splitlines()[0]  # text mode has turned CRLF into LF
    return int(status_line.split()[1]), done.stdout


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("services")


@pytest.fixture(scope="module")
def registry(workdir: Path) -> Iterator[RegistryServer]:
    with RegistryServer.start(workdir) as server:
        yield server


@pytest.fixture(scope="module")
def basic_registry(workdir: Path) -> Iterator[RegistryServer]:
    with RegistryServer.start(workdir, name="basic", htpasswd=(USER, PASSWORD)) as server:
        yield server


@pytest.fixture(scope="module")
def token_server(workdir: Path) -> Iterator[TokenServer]:
    with TokenServer.start(workdir, credentials=(USER, PASSWORD)) as server:
        yield server


@pytest.fixture(scope="module")
def token_registry(workdir: Path, token_server: TokenServer) -> Iterator[RegistryServer]:
    with RegistryServer.start(workdir, name="tokenreg", token_auth=token_server) as server:
        yield server


@pytest.fixture(scope="module")
def azurite_http(workdir: Path) -> Iterator[AzuriteServer]:
    with AzuriteServer.start(workdir) as server:
        yield server


@pytest.fixture(scope="module")
def azurite_https(workdir: Path) -> Iterator[AzuriteServer]:
    with AzuriteServer.start(workdir, name="azurite-tls", https=True) as server:
        yield server


def test_free_port_is_bindable() -> None:
    port = free_port()
    assert 1024 <= port <= 65535
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


# ---------------------------------------------------------------------------------------------- registry


def test_registry_answers_v2(registry: RegistryServer, workdir: Path) -> None:
    status, headers, body = http("GET", f"{registry.url}/v2/")
    assert status == 200
    assert headers["Docker-Distribution-Api-Version"] == "registry/2.0"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert json.loads(body) == {}
    assert registry.url == f"http://127.0.0.1:{registry.port}"
    assert registry.host == f"127.0.0.1:{registry.port}"
    assert registry.log_path == workdir / "registry.log"
    assert registry.data_dir.is_relative_to(workdir)


def test_registry_with_tls_serves_https_to_clients_trusting_its_ca(workdir: Path) -> None:
    with RegistryServer.start(workdir / "tls", name="tls", tls=True) as server:
        assert server.url == f"https://127.0.0.1:{server.port}"
        assert server.ca_cert is not None and server.ca_cert.is_file()
        status, headers, _ = http("GET", f"{server.url}/v2/", context=server.ssl_context())
        assert status == 200 and headers["Docker-Distribution-Api-Version"] == "registry/2.0"
        with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
            http("GET", f"{server.url}/v2/")


def test_registry_htpasswd(basic_registry: RegistryServer) -> None:
    status, headers, _ = http("GET", f"{basic_registry.url}/v2/")
    assert status == 401
    assert headers["WWW-Authenticate"] == 'Basic realm="basic-realm"'
    assert http("GET", f"{basic_registry.url}/v2/", headers=basic(USER, "wrong"))[0] == 401
    assert http("GET", f"{basic_registry.url}/v2/", headers=basic(USER, PASSWORD))[0] == 200
    htpasswd_line = (basic_registry.workdir / "basic.htpasswd").read_text()
    assert htpasswd_line.startswith(f"{USER}:$2y$")  # bcrypt: the only scheme distribution accepts


def test_token_auth_end_to_end(token_registry: RegistryServer, token_server: TokenServer) -> None:
    status, text = curl(f"{token_registry.url}/v2/")
    assert status == 401
    assert f'Www-Authenticate: Bearer realm="{token_server.realm}",service="{token_server.service}"' in text

    assert curl(f"{token_server.realm}?service={token_server.service}&scope=repository:tok/app:pull")[0] == 401
    assert curl("-u", f"{USER}:nope", f"{token_server.realm}?service={token_server.service}")[0] == 401

    # The content helpers follow the Bearer challenge like any client, scoped to the repository.
    pushed = push_oci_image(token_registry.url, "tok/app", "v1", layer_size=1024, auth=(USER, PASSWORD))
    # distribution's challenge lists the actions in no fixed order ("push,pull" or "pull,push").
    granted = [scope.rpartition(":") for scope in token_server.requests]
    assert {prefix for prefix, _, _ in granted} == {"repository:tok/app"}
    assert any(set(actions.split(",")) == {"pull", "push"} for _, _, actions in granted)

    query = f"service={token_server.service}&scope=repository:tok/app:pull"
    status, text = curl("-u", f"{USER}:{PASSWORD}", f"{token_server.realm}?{query}")
    assert status == 200
    answer = json.loads(text.split("\n\n", 1)[1])
    assert answer["token"] == answer["access_token"]
    assert answer["expires_in"] == 300
    token = answer["token"]
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header["alg"] == "RS256" and len(header["x5c"]) == 1

    bearer = f"Authorization: Bearer {token}"
    assert curl("-H", bearer, f"{token_registry.url}/v2/")[0] == 200
    status, text = curl("-H", bearer, f"{token_registry.url}/v2/tok/app/tags/list")
    assert status == 200 and '"tags":["v1"]' in text
    status, text = curl(
        "-H", bearer, "-H", f"Accept: {content.OCI_MANIFEST}", f"{token_registry.url}/v2/tok/app/manifests/v1"
    )
    assert status == 200 and f"Docker-Content-Digest: {pushed.digest}" in text
    # A token is good for its repository only.
    status, text = curl("-H", bearer, f"{token_registry.url}/v2/other/tags/list")
    assert status == 401 and 'error="insufficient_scope"' in text
    # A token from another issuer key is refused: the registry really checks the x5c chain.
    with TokenServer.start(
        token_server.workdir, credentials=(USER, PASSWORD), name="rogue", service=token_server.service
    ) as rogue:
        forged = rogue.issue(USER, [{"type": "repository", "name": "tok/app", "actions": ["pull"]}])
    assert curl("-H", f"Authorization: Bearer {forged}", f"{token_registry.url}/v2/tok/app/tags/list")[0] == 401


def test_registry_restart_keeps_content_and_port(workdir: Path) -> None:
    with RegistryServer.start(workdir, name="restartable") as server:
        port = server.port
        pushed = push_oci_image(server.url, "keep/me", "1", layer_size=512)
        server.kill()
        assert not server.running
        assert not port_open(port)
        server.restart()
        assert server.port == port
        assert content.get_manifest(server.url, "keep/me", "1")[2] == pushed.digest
        server.restart()
        assert content.list_tags(server.url, "keep/me") == ["1"]
        pid = server.pid or -1
    assert not server.running
    assert not pid_alive(pid)
    assert not port_open(port)


# ----------------------------------------------------------------------------------------------- azurite


def test_azurite_serves_two_accounts(azurite_http: AzuriteServer) -> None:
    assert azurite_http.scheme == "http" and azurite_http.ca_cert is None
    assert azurite_http.accounts == ["srcacct", "dstacct"]
    assert azurite_http.blob_endpoint("srcacct") == f"http://127.0.0.1:{azurite_http.port}/srcacct"
    assert azurite_http.account_key("srcacct") != azurite_http.account_key("dstacct")
    assert len(base64.b64decode(azurite_http.account_key("dstacct"))) == 64
    for account in ("srcacct", "dstacct"):
        azurite.create_container(azurite_http, account, "shared")
        azurite.create_container(azurite_http, account, "shared")  # idempotent
        azurite.upload_blob(azurite_http, account, "shared", f"from/{account}", account.encode())
    assert azurite.list_blob_names(azurite_http, "srcacct", "shared") == ["from/srcacct"]
    assert azurite.list_blob_names(azurite_http, "dstacct", "shared", prefix="from/") == ["from/dstacct"]
    assert azurite.download_blob(azurite_http, "dstacct", "shared", "from/dstacct") == b"dstacct"
    assert azurite.blob_properties(azurite_http, "srcacct", "shared", "from/srcacct").size == len(b"srcacct")


def test_azurite_sas_permissions(azurite_http: AzuriteServer) -> None:
    azurite.create_container(azurite_http, "srcacct", "sas")
    base = azurite.container_url(azurite_http, "srcacct", "sas")
    assert base == f"http://127.0.0.1:{azurite_http.port}/srcacct/sas"
    put_headers = {"x-ms-blob-type": "BlockBlob", "x-ms-version": "2021-08-06"}

    writer = azurite.container_sas(azurite_http, "srcacct", "sas")
    assert not writer.startswith("?") and "sp=racwdl" in writer
    assert http("PUT", f"{base}/a.bin?{writer}", headers=put_headers, data=b"abc")[0] == 201

    reader = azurite.container_sas(azurite_http, "srcacct", "sas", permissions="rl")
    status, _, body = http("PUT", f"{base}/b.bin?{reader}", headers=put_headers, data=b"abc")
    assert status == 403, body
    status, _, body = http("GET", f"{base}/a.bin?{reader}")
    assert (status, body) == (200, b"abc")
    assert azurite.list_blob_names(azurite_http, "srcacct", "sas") == ["a.bin"]

    # A SAS for one account means nothing to the other.
    other = f"http://127.0.0.1:{azurite_http.port}/dstacct/sas/a.bin?{reader}"
    assert http("GET", other)[0] == 403

    with pytest.raises(ValueError, match="unknown SAS permission"):
        azurite.container_sas(azurite_http, "srcacct", "sas", permissions="rq")


def test_azurite_https(azurite_https: AzuriteServer) -> None:
    assert azurite_https.scheme == "https"
    assert azurite_https.ca_cert is not None and azurite_https.ca_cert.is_file()
    assert "DefaultEndpointsProtocol=https;" in azurite_https.connection_string("srcacct")
    azurite.create_container(azurite_https, "dstacct", "tls")
    azurite.upload_blob(azurite_https, "dstacct", "tls", "x", b"secure")
    sas = azurite.container_sas(azurite_https, "dstacct", "tls", permissions="r", https_only=True)
    url = f"{azurite.container_url(azurite_https, 'dstacct', 'tls')}/x?{sas}"
    assert url.startswith("https://127.0.0.1:")
    status, _, body = http("GET", url, context=azurite_https.ssl_context())
    assert (status, body) == (200, b"secure")
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        http("GET", url, context=ssl.create_default_context())


def test_azurite_restart_keeps_data_after_graceful_stop(workdir: Path) -> None:
    with AzuriteServer.start(workdir, name="azurite-restart", accounts=["onlyone"]) as server:
        key, port = server.account_key("onlyone"), server.port
        azurite.create_container(server, "onlyone", "keep")
        azurite.upload_blob(server, "onlyone", "keep", "blob", b"kept")
        server.restart()
        assert (server.port, server.account_key("onlyone")) == (port, key)
        assert azurite.download_blob(server, "onlyone", "keep", "blob") == b"kept"
        pid = server.pid or -1
    assert not pid_alive(pid)
    assert not port_open(port)


def test_azurite_rejects_bad_account_names(workdir: Path) -> None:
    with pytest.raises(ValueError, match="invalid storage account name"):
        AzuriteServer.start(workdir, accounts=["Bad_Name"])


# ---------------------------------------------------------------------------------------- missing parts


def test_missing_components_fail_loudly(workdir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(azurite.AZURITE_BIN_ENV, str(tmp_path / "no-azurite"))
    with pytest.raises(RuntimeError, match=r"make test.*bootstrap\.sh"):
        AzuriteServer.start(workdir)
    monkeypatch.setattr(registry_server, "REGISTRY_BIN", tmp_path / "no-registry")
    with pytest.raises(RuntimeError, match="make test"):
        RegistryServer.start(workdir)
    monkeypatch.setattr(skopeo, "SKOPEO_BIN", tmp_path / "no-skopeo")
    with pytest.raises(RuntimeError, match="make test"):
        run_skopeo("--version")


# ------------------------------------------------------------------------------------------------ skopeo


def test_skopeo_reads_pushed_index(registry: RegistryServer) -> None:
    pushed = push_oci_index(registry.url, "samples/multi", "latest", layer_size=2048)
    done = run_skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{registry.host}/samples/multi:latest")
    raw = done.stdout.encode()
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == pushed.digest
    assert json.loads(raw)["mediaType"] == content.OCI_INDEX

    failed = run_skopeo("inspect", "--tls-verify=false", f"docker://{registry.host}/nope:x", check=False)
    assert failed.returncode != 0
    with pytest.raises(RuntimeError, match="skopeo inspect"):
        run_skopeo("inspect", "--tls-verify=false", f"docker://{registry.host}/nope:x")


def test_a_refusing_port_refuses_connections_and_no_server_can_take_it() -> None:
    with refusing_port() as port:
        with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        with socket.socket() as sock, pytest.raises(OSError, match="in use"):
            sock.bind(("127.0.0.1", port))
