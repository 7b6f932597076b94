"""RegistryClient's authentication against the real distribution 2.8 registry: htpasswd (explicit
credentials, docker config files, credential helpers and stores) and token auth from a local token server.

Every error a test provokes goes through :func:`no_secrets`: no password, Basic pair or Bearer token
may appear in it.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from airlock.errors import AuthenticationError
from airlock.oci.digest import Digest
from airlock.registry.credentials import Credentials
from airlock.testing import content
from airlock.testing.content import PushedArtifact
from airlock.testing.fault_proxy import Fault, FaultProxy
from airlock.testing.images import push_oci_image
from airlock.testing.leaks import unleaked
from airlock.testing.registry_clients import RegistryClients
from airlock.testing.registry_server import RegistryServer
from airlock.testing.token_server import TokenServer

USER, PASSWORD = "alice", "pw-basic-7f3a9c1e"
TOKEN_USER, TOKEN_PASSWORD = "bob", "pw-token-41d2e8aa"
WRONG_PASSWORD = "pw-wrong-c0ffee55"
PASSWORDS = (PASSWORD, TOKEN_PASSWORD, WRONG_PASSWORD)
SECRETS = (
    *PASSWORDS,
    *(base64.b64encode(f"{user}:{pw}".encode()).decode() for user in (USER, TOKEN_USER) for pw in PASSWORDS),
    "eyJ0eXAi",  # how every JWT from TokenServer begins: a Bearer token must never be shown
)
KiB = 1024


def no_secrets(exc: BaseException) -> str:
    return unleaked(exc, SECRETS)


@pytest.fixture(scope="module")
def basic_registry(workdir: Path) -> Iterator[RegistryServer]:
    with RegistryServer.start(workdir, name="basic", htpasswd=(USER, PASSWORD)) as server:
        yield server


@pytest.fixture(scope="module")
def token_server(workdir: Path) -> Iterator[TokenServer]:
    with TokenServer.start(workdir, credentials=(TOKEN_USER, TOKEN_PASSWORD)) as server:
        yield server


@pytest.fixture(scope="module")
def token_registry(workdir: Path, token_server: TokenServer) -> Iterator[RegistryServer]:
    with RegistryServer.start(workdir, name="tokenreg", token_auth=token_server) as server:
        yield server


@pytest.fixture(scope="module")
def basic_image(basic_registry: RegistryServer) -> PushedArtifact:
    return push_oci_image(basic_registry.url, "basic/app", "v1", layer_size=4 * KiB, auth=(USER, PASSWORD))


@pytest.fixture(scope="module")
def token_image(token_registry: RegistryServer) -> PushedArtifact:
    return push_oci_image(token_registry.url, "tok/app", "v1", layer_size=4 * KiB, auth=(TOKEN_USER, TOKEN_PASSWORD))


# ------------------------------------------------------------------------------------------ basic auth


def test_basic_auth_explicit_credentials(
    basic_registry: RegistryServer, basic_image: PushedArtifact, make_client: RegistryClients
) -> None:
    creds = Credentials(USER, PASSWORD)
    assert PASSWORD not in repr(creds)
    client = make_client(basic_registry.url, creds)
    client.ping()
    assert client.auth.scheme == "basic"
    assert client.get_manifest("basic/app", "v1").raw == basic_image.manifest
    layer = client.get_manifest("basic/app", "v1").blobs[1]
    data = b"".join(client.iter_blob("basic/app", layer))
    assert data == content.get_blob(basic_registry.url, "basic/app", str(layer.digest), auth=(USER, PASSWORD))


def test_basic_auth_wrong_password(
    basic_registry: RegistryServer, basic_image: PushedArtifact, make_client: RegistryClients
) -> None:
    client = make_client(basic_registry.url, Credentials(USER, WRONG_PASSWORD))
    for call in (client.ping, lambda: client.get_manifest("basic/app", "v1")):
        with pytest.raises(AuthenticationError) as info:
            call()
        message = no_secrets(info.value)
        assert basic_registry.host in message
        assert repr(USER) in message
        assert info.value.status == 401
        assert not info.value.transient


def test_basic_auth_without_credentials_hints(
    basic_registry: RegistryServer, basic_image: PushedArtifact, make_client: RegistryClients
) -> None:
    client = make_client(basic_registry.url)
    assert client.auth.credentials is None  # the isolated HOME has no auth files
    with pytest.raises(AuthenticationError) as info:
        client.get_manifest("basic/app", "v1")
    message = no_secrets(info.value)
    assert basic_registry.host in message
    assert "docker login" in message and "--password-stdin" in message


def _write_docker_config(directory: Path, doc: dict[str, object]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(doc))


def test_credentials_from_docker_config(
    basic_registry: RegistryServer,
    basic_image: PushedArtifact,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    make_client: RegistryClients,
) -> None:
    config_dir = tmp_path / "docker-config"
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    _write_docker_config(config_dir, {"auths": {basic_registry.host: {"auth": auth}}})
    monkeypatch.setenv("DOCKER_CONFIG", str(config_dir))
    client = make_client(basic_registry.url)
    assert client.auth.credentials == Credentials(USER, PASSWORD)
    client.ping()
    assert client.get_manifest("basic/app", "v1").digest == Digest.parse(basic_image.digest)

    # A stale password in the file: the error names the user, never the password.
    stale = base64.b64encode(f"{USER}:{WRONG_PASSWORD}".encode()).decode()
    _write_docker_config(config_dir, {"auths": {basic_registry.host: {"auth": stale}}})
    with pytest.raises(AuthenticationError) as info:
        make_client(basic_registry.url).ping()
    assert repr(USER) in no_secrets(info.value)


def test_credentials_from_credential_helper(
    basic_registry: RegistryServer,
    basic_image: PushedArtifact,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    make_client: RegistryClients,
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    seen = tmp_path / "helper-calls.txt"
    helper = bin_dir / "docker-credential-test"
    helper.write_text(
        "#!/bin/sh\n"
        f'echo "$1 $(cat)" >> "{seen}"\n'
        f"printf '%s' '{json.dumps({'Username': USER, 'Secret': PASSWORD})}'\n"
    )
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    config_dir = tmp_path / "docker-config"
    wrong = base64.b64encode(f"{USER}:{WRONG_PASSWORD}".encode()).decode()
    # credHelpers wins over an auths entry for the same host, as in docker.
    _write_docker_config(
        config_dir,
        {"credHelpers": {basic_registry.host: "test"}, "auths": {basic_registry.host: {"auth": wrong}}},
    )
    monkeypatch.setenv("DOCKER_CONFIG", str(config_dir))
    client = make_client(basic_registry.url)
    client.ping()
    assert client.get_manifest("basic/app", "v1").raw == basic_image.manifest
    assert seen.read_text() == f"get {basic_registry.host}\n"


def test_credentials_from_creds_store(
    basic_registry: RegistryServer,
    basic_image: PushedArtifact,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    make_client: RegistryClients,
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-store"
    helper.write_text(f"#!/bin/sh\nprintf '%s' '{json.dumps({'Username': USER, 'Secret': PASSWORD})}'\n")
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    config_dir = tmp_path / "docker-config"
    _write_docker_config(config_dir, {"credsStore": "store"})
    monkeypatch.setenv("DOCKER_CONFIG", str(config_dir))
    client = make_client(basic_registry.url)
    assert client.auth.credentials == Credentials(USER, PASSWORD)
    assert client.get_manifest("basic/app", "v1").raw == basic_image.manifest


# ------------------------------------------------------------------------------------------ token auth


# Regression: token responses were once read after urllib3 had preloaded them, so Bearer auth
# (ACR, Docker Hub, Harbor) always failed with "unreadable response".
def _assert_repository_scopes(token_server: TokenServer, *expected: str) -> None:
    """The token server was asked for repository scopes only, never registry-wide (catalog) access."""
    assert token_server.requests
    for scope in token_server.requests:
        assert re.fullmatch(r"repository:tok/[a-z]+:(pull|pull,push|push,pull)", scope), scope
    assert set(expected) <= set(token_server.requests)


def test_token_auth_pull(
    token_registry: RegistryServer,
    token_server: TokenServer,
    token_image: PushedArtifact,
    make_client: RegistryClients,
) -> None:
    client = make_client(token_registry.url, Credentials(TOKEN_USER, TOKEN_PASSWORD))
    client.ping()
    assert client.auth.scheme == "bearer"
    manifest = client.get_manifest("tok/app", "v1")
    assert manifest.raw == token_image.manifest
    assert client.head_manifest("tok/app", token_image.digest) is not None
    layer = manifest.blobs[1]
    data = b"".join(client.iter_blob("tok/app", layer))
    assert data == content.get_blob(token_registry.url, "tok/app", str(layer.digest), auth=(TOKEN_USER, TOKEN_PASSWORD))
    assert client.list_tags("tok/app") == ["v1"]
    _assert_repository_scopes(token_server, "repository:tok/app:pull")


def test_token_auth_push_and_mount(
    token_registry: RegistryServer,
    token_server: TokenServer,
    token_image: PushedArtifact,
    make_client: RegistryClients,
) -> None:
    auth = (TOKEN_USER, TOKEN_PASSWORD)
    client = make_client(token_registry.url, Credentials(*auth))
    manifest = client.get_manifest("tok/app", "v1")
    for desc in manifest.blobs:
        data = b"".join(client.iter_blob("tok/app", desc))
        client.push_blob("tok/copy", desc, [data])
    client.put_manifest("tok/copy", "v1", manifest)
    assert content.get_manifest(token_registry.url, "tok/copy", "v1", auth=auth)[0] == token_image.manifest
    for digest, _ in token_image.blobs:
        assert content.blob_exists(token_registry.url, "tok/copy", digest, auth=auth)
    layer = manifest.blobs[1]
    assert client.mount_blob("tok/mounted", layer.digest, "tok/app") is True
    assert content.blob_exists(token_registry.url, "tok/mounted", str(layer.digest), auth=auth)
    _assert_repository_scopes(
        token_server, "repository:tok/app:pull", "repository:tok/copy:pull,push", "repository:tok/mounted:pull,push"
    )


def test_token_auth_refetches_a_rejected_token(
    token_registry: RegistryServer,
    token_server: TokenServer,
    token_image: PushedArtifact,
    make_client: RegistryClients,
) -> None:
    """A cached token the registry no longer accepts is dropped and a fresh one fetched, once.

    Fails with the token bug above (Authenticator._fetch_token) until it is fixed.
    """
    with FaultProxy(token_registry.url) as proxy:
        client = make_client(proxy.url, Credentials(TOKEN_USER, TOKEN_PASSWORD))
        assert client.get_manifest("tok/app", "v1").raw == token_image.manifest
        before = token_server.requests.count("repository:tok/app:pull")
        challenge = (
            f'Bearer realm="{token_server.realm}",service="{token_server.service}",'
            'scope="repository:tok/app:pull",error="invalid_token"'
        )
        proxy.add(Fault("GET", "/v2/tok/app/manifests/v1", status=401, headers={"WWW-Authenticate": challenge}))
        assert client.get_manifest("tok/app", "v1").raw == token_image.manifest
        assert token_server.requests.count("repository:tok/app:pull") == before + 1
        sent = [s.headers.get("authorization", "") for s in proxy.seen("GET", "/manifests/v1")]
        # Anonymous (learns the challenge), token A, token A again (refused by the proxy), token B.
        assert len(sent) == 4 and sent[0] == "" and all(h.startswith("Bearer ") for h in sent[1:])
        assert sent[1] == sent[2] and sent[3] != sent[2]  # cached, then the rejected one was dropped


def test_token_auth_wrong_credentials(
    token_registry: RegistryServer, token_image: PushedArtifact, make_client: RegistryClients
) -> None:
    client = make_client(token_registry.url, Credentials(TOKEN_USER, WRONG_PASSWORD))
    with pytest.raises(AuthenticationError) as info:
        client.get_manifest("tok/app", "v1")
    message = no_secrets(info.value)
    assert token_registry.host in message and repr(TOKEN_USER) in message
    assert "repository:tok/app:pull" in message
    with pytest.raises(AuthenticationError) as info:
        client.ping()
    no_secrets(info.value)
    # Anonymous: the token server refuses too, and the message says we had no credentials.
    with pytest.raises(AuthenticationError) as info:
        make_client(token_registry.url).get_manifest("tok/app", "v1")
    assert "anonymously" in no_secrets(info.value)
