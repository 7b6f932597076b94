"""RegistryClient against the real distribution 2.8 registry: anonymous, htpasswd and token auth.

Content is pushed and checked with :mod:`airlock.testing.content` (plain urllib3), never with the client
under test. Faults (5xx, 429, dropped and cut connections, corrupted bodies) come from a local proxy.
Every error a test provokes goes through :func:`no_secrets`.
"""

from __future__ import annotations

import base64
import json
import math
import os
import random
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import pytest

import airlock.registry.blobs as blobs_module
import airlock.registry.client as client_module
from airlock.errors import AuthenticationError, IntegrityError, NotFound, RegistryError
from airlock.oci.digest import Digest
from airlock.oci.manifest import OCI_MANIFEST, Descriptor, Manifest
from airlock.oci.reference import RegistryURL
from airlock.registry.client import ManifestInfo, RegistryClient
from airlock.registry.credentials import Credentials
from airlock.registry.retry import RetryPolicy
from airlock.testing import content
from airlock.testing.content import PushedArtifact
from airlock.testing.fault_proxy import Fault, FaultProxy, Seen, flip_middle_byte
from airlock.testing.images import push_docker_image, push_docker_manifest_list, push_oci_image, push_oci_index
from airlock.testing.referrers import push_referrer
from airlock.testing.registry_server import RegistryServer
from airlock.testing.token_server import TokenServer

USER, PASSWORD = "alice", "pw-basic-7f3a9c1e"
TOKEN_USER, TOKEN_PASSWORD = "bob", "pw-token-41d2e8aa"
HELPER_SECRET = "pw-helper-93be17dd"
WRONG_PASSWORD = "pw-wrong-c0ffee55"
PASSWORDS = (PASSWORD, TOKEN_PASSWORD, HELPER_SECRET, WRONG_PASSWORD)
SECRETS = (
    *PASSWORDS,
    *(base64.b64encode(f"{user}:{pw}".encode()).decode() for user in (USER, TOKEN_USER) for pw in PASSWORDS),
    "eyJ0eXAi",  # how every JWT from TokenServer begins: a Bearer token must never be shown
    "_state=",  # upload locations carry signed session state in the query
)
RETRY = RetryPolicy(attempts=4, base=0.01, cap=0.05)
KiB = 1024


def no_secrets(exc: BaseException) -> str:
    """``str(exc)`` after checking that neither it nor the repr carries a password or token."""
    text = f"{exc}\n{exc!r}"
    for secret in SECRETS:
        assert secret not in text, f"secret {secret[:6]}… leaked into {type(exc).__name__}: {text}"
    return str(exc)


def desc_of(data: bytes, media_type: str = "application/octet-stream") -> Descriptor:
    return Descriptor(media_type, Digest.of(data), len(data))


def pieces(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def random_bytes(n: int, seed: int | str) -> bytes:
    return random.Random(f"test_client:{seed}").randbytes(n)


def path_requests(proxy: FaultProxy, method: str, fragment: str) -> list[Seen]:
    return [s for s in proxy.requests if s.method == method and fragment in s.path]


# -------------------------------------------------------------------------------------------- fixtures


class MakeClient(Protocol):
    def __call__(self, url: str, credentials: Credentials | None = None) -> RegistryClient: ...


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("registry-client")


@pytest.fixture(scope="module")
def registry(workdir: Path) -> Iterator[RegistryServer]:
    with RegistryServer.start(workdir, name="anon") as server:
        yield server


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
def shared_proxy(registry: RegistryServer) -> Iterator[FaultProxy]:
    with FaultProxy(registry.url) as proxy:
        yield proxy


@pytest.fixture
def proxy(shared_proxy: FaultProxy) -> Iterator[FaultProxy]:
    """The proxy in front of ``registry``, without faults or recorded requests."""
    shared_proxy.reset()
    yield shared_proxy
    shared_proxy.reset()


@pytest.fixture(scope="module")
def samples(registry: RegistryServer) -> dict[str, PushedArtifact]:
    url, size = registry.url, 8 * KiB
    return {
        "oci-image": push_oci_image(url, "pull/oci-image", "v1", layer_size=size, seed=1),
        "oci-index": push_oci_index(url, "pull/oci-index", "v1", layer_size=size, seed=2),
        "docker-image": push_docker_image(url, "pull/docker-image", "v1", layer_size=size, seed=3),
        "docker-list": push_docker_manifest_list(url, "pull/docker-list", "v1", layer_size=size, seed=4),
    }


@pytest.fixture(scope="module")
def basic_image(basic_registry: RegistryServer) -> PushedArtifact:
    return push_oci_image(basic_registry.url, "basic/app", "v1", layer_size=4 * KiB, auth=(USER, PASSWORD))


@pytest.fixture(scope="module")
def token_image(token_registry: RegistryServer) -> PushedArtifact:
    return push_oci_image(token_registry.url, "tok/app", "v1", layer_size=4 * KiB, auth=(TOKEN_USER, TOKEN_PASSWORD))


@pytest.fixture(autouse=True)
def isolated_auth_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point every auth-file lookup at an empty temporary HOME: this machine's files are never read."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in ("DOCKER_CONFIG", "REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR"):
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture
def make_client() -> Iterator[MakeClient]:
    made: list[RegistryClient] = []

    def make(url: str, credentials: Credentials | None = None) -> RegistryClient:
        client = RegistryClient(RegistryURL.parse(url), credentials=credentials, retry=RETRY)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


# ------------------------------------------------------------------------------------- anonymous pulls


def test_ping_anonymous(registry: RegistryServer, make_client: MakeClient) -> None:
    client = make_client(registry.url)
    client.ping()
    assert client.auth.scheme is None  # no challenge was ever sent
    assert client.auth.credentials is None


@pytest.mark.parametrize("kind", ["oci-image", "oci-index", "docker-image", "docker-list"])
def test_get_manifest_is_byte_exact(
    kind: str, registry: RegistryServer, samples: dict[str, PushedArtifact], make_client: MakeClient
) -> None:
    pushed = samples[kind]
    client = make_client(registry.url)
    by_tag = client.get_manifest(pushed.repository, "v1")
    assert by_tag.raw == pushed.manifest
    assert str(by_tag.digest) == pushed.digest
    assert by_tag.media_type == pushed.media_type
    if pushed.children:
        assert by_tag.is_index
        assert [str(c.digest) for c in by_tag.children] == list(pushed.children)
        assert by_tag.blobs == ()
    else:
        assert not by_tag.is_index
        assert {(str(b.digest), b.size) for b in by_tag.blobs} == set(pushed.blobs)

    by_digest = client.get_manifest(pushed.repository, pushed.digest)
    assert by_digest.raw == pushed.manifest
    assert by_digest.digest == by_tag.digest

    info = client.head_manifest(pushed.repository, "v1")
    assert info == ManifestInfo(Digest.parse(pushed.digest), pushed.media_type, len(pushed.manifest))
    assert client.head_manifest(pushed.repository, pushed.digest) == info


def test_missing_manifest(
    registry: RegistryServer, samples: dict[str, PushedArtifact], make_client: MakeClient
) -> None:
    client = make_client(registry.url)
    repo = samples["oci-image"].repository
    assert client.head_manifest(repo, "no-such-tag") is None
    assert client.head_manifest("no/such-repo", "v1") is None
    with pytest.raises(NotFound) as info:
        client.get_manifest(repo, "no-such-tag")
    message = no_secrets(info.value)
    assert f"{repo}:no-such-tag" in message
    assert info.value.status == 404
    assert "MANIFEST_UNKNOWN" in info.value.codes
    assert not info.value.transient


def test_get_by_digest_verifies_the_bytes(
    proxy: FaultProxy, samples: dict[str, PushedArtifact], make_client: MakeClient
) -> None:
    pushed = samples["oci-image"]
    # Still valid JSON of the same manifest, but other bytes: only the digest check can notice.
    proxy.add(Fault("GET", f"/manifests/{pushed.digest}", transform=lambda b: b.replace(b"{", b"{ ", 1)))
    client = make_client(proxy.url)
    with pytest.raises(IntegrityError) as info:
        client.get_manifest(pushed.repository, pushed.digest)
    message = no_secrets(info.value)
    assert pushed.digest in message and "hashes to sha256:" in message
    # The fault fired once; the next fetch is clean.
    assert client.get_manifest(pushed.repository, pushed.digest).raw == pushed.manifest


# ------------------------------------------------------------------------------------------ basic auth


def test_basic_auth_explicit_credentials(
    basic_registry: RegistryServer, basic_image: PushedArtifact, make_client: MakeClient
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
    basic_registry: RegistryServer, basic_image: PushedArtifact, make_client: MakeClient
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
    basic_registry: RegistryServer, basic_image: PushedArtifact, make_client: MakeClient
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
    make_client: MakeClient,
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
    make_client: MakeClient,
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
    make_client: MakeClient,
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
    make_client: MakeClient,
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
    make_client: MakeClient,
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
    make_client: MakeClient,
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
        sent = [s.headers.get("authorization", "") for s in path_requests(proxy, "GET", "/manifests/v1")]
        # Anonymous (learns the challenge), token A, token A again (refused by the proxy), token B.
        assert len(sent) == 4 and sent[0] == "" and all(h.startswith("Bearer ") for h in sent[1:])
        assert sent[1] == sent[2] and sent[3] != sent[2]  # cached, then the rejected one was dropped


def test_token_auth_wrong_credentials(
    token_registry: RegistryServer, token_image: PushedArtifact, make_client: MakeClient
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


# ------------------------------------------------------------------------------------------ blob upload


def test_push_blob_monolithic(registry: RegistryServer, proxy: FaultProxy, make_client: MakeClient) -> None:
    data = random_bytes(5 * KiB + 7, seed=1)
    desc = desc_of(data)
    client = make_client(proxy.url)
    client.push_blob("push/mono", desc, pieces(data, 2 * KiB))
    assert content.get_blob(registry.url, "push/mono", str(desc.digest)) == data
    assert client.blob_size("push/mono", desc.digest) == len(data)
    assert path_requests(proxy, "PATCH", "/push/mono/") == []
    puts = path_requests(proxy, "PUT", "/push/mono/blobs/uploads/")
    assert [p.headers["content-length"] for p in puts] == [str(len(data))]
    assert f"digest={desc.digest}" in puts[0].path


def test_push_blob_chunked(
    registry: RegistryServer, proxy: FaultProxy, make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(blobs_module, "MONOLITHIC_MAX", 64 * KiB)
    monkeypatch.setattr(blobs_module, "UPLOAD_CHUNK", 16 * KiB)
    data = random_bytes(200 * KiB + 123, seed=2)
    desc = desc_of(data)
    client = make_client(proxy.url)
    client.push_blob("push/chunked", desc, pieces(data, 16 * KiB))
    assert content.get_blob(registry.url, "push/chunked", str(desc.digest)) == data
    patches = path_requests(proxy, "PATCH", "/push/chunked/blobs/uploads/")
    assert len(patches) == math.ceil(len(data) / (16 * KiB))
    ranges = [p.headers["content-range"] for p in patches]
    expected = [f"{i}-{min(i + 16 * KiB, len(data)) - 1}" for i in range(0, len(data), 16 * KiB)]
    assert ranges == expected
    puts = path_requests(proxy, "PUT", "/push/chunked/blobs/uploads/")
    assert [p.headers["content-length"] for p in puts] == ["0"]


# Regression: distribution answers "Range: 0-0" for an EMPTY upload session; it was once read as
# "1 byte held", so a failed FIRST PATCH was resent without its first byte.
@pytest.mark.parametrize("how", ["503", "dropped"])
@pytest.mark.parametrize("which", [1, 3])
def test_push_blob_chunked_resends_a_failed_chunk(
    which: int,
    how: str,
    registry: RegistryServer,
    proxy: FaultProxy,
    make_client: MakeClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A PATCH that never reached the registry is sent again from what the upload session holds."""
    monkeypatch.setattr(blobs_module, "MONOLITHIC_MAX", 64 * KiB)
    monkeypatch.setattr(blobs_module, "UPLOAD_CHUNK", 16 * KiB)
    repo = f"push/patch-{which}-{how}"
    data = random_bytes(80 * KiB + 5, seed=repo)
    desc = desc_of(data)
    fault = Fault("PATCH", f"/{repo}/blobs/uploads/", skip=which - 1)
    if how == "503":
        fault.status = 503
    else:
        fault.drop = True
    proxy.add(fault)
    client = make_client(proxy.url)
    client.push_blob(repo, desc, pieces(data, 16 * KiB))
    assert fault.hits == 1
    assert content.get_blob(registry.url, repo, str(desc.digest)) == data
    patches = path_requests(proxy, "PATCH", f"/{repo}/blobs/uploads/")
    failed = patches[which - 1]
    assert failed.status == (503 if how == "503" else 0)
    # The retry covers exactly the chunk that failed.
    assert patches[which].headers["content-range"] == failed.headers["content-range"]


# Regression: the 401 re-authentication once replayed a streamed upload body (retry=False): an
# exhausted generator sent an empty body announcing Content-Length N and hung until read_timeout.
@pytest.mark.parametrize("source", ["generator", "list"])
def test_push_blob_stream_is_not_replayed_after_401(
    source: str, registry: RegistryServer, proxy: FaultProxy, make_client: MakeClient
) -> None:
    repo = f"push/replay-{source}"
    data = random_bytes(6 * KiB, seed=repo)
    desc = desc_of(data)
    # The anonymous registry ignores Authorization; the proxy plays a registry that wants Basic auth
    # again on the upload's PUT (as after an expired or revoked token).
    proxy.add(Fault("PUT", f"/{repo}/blobs/uploads/", status=401, headers={"WWW-Authenticate": 'Basic realm="r"'}))
    client = make_client(proxy.url, Credentials(USER, PASSWORD))
    chunks = pieces(data, 2 * KiB) if source == "generator" else [data]
    with pytest.raises(RegistryError) as info:
        client.push_blob(repo, desc, chunks)
    message = no_secrets(info.value)
    assert "cannot reach" not in message
    assert len(path_requests(proxy, "PUT", f"/{repo}/blobs/uploads/")) == 1
    assert client.blob_size(repo, desc.digest) is None


@pytest.mark.parametrize("mode", ["monolithic", "chunked"])
@pytest.mark.parametrize("fault", ["changed-byte", "extra-bytes", "missing-bytes"])
def test_push_blob_rejects_mismatching_source(
    mode: str,
    fault: str,
    registry: RegistryServer,
    proxy: FaultProxy,
    make_client: MakeClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(blobs_module, "MONOLITHIC_MAX", 64 * KiB)
    monkeypatch.setattr(blobs_module, "UPLOAD_CHUNK", 16 * KiB)
    size = 20 * KiB if mode == "monolithic" else 100 * KiB
    data = random_bytes(size, seed=f"{mode}-{fault}")
    source = {
        "changed-byte": flip_middle_byte(data),
        "extra-bytes": data + b"x",
        "missing-bytes": data[:-1],
    }[fault]
    desc = desc_of(data)
    repo = f"push/bad-{mode}-{fault}"
    client = make_client(proxy.url)
    with pytest.raises(IntegrityError) as info:
        client.push_blob(repo, desc, pieces(source, 8 * KiB))
    assert str(desc.digest) in no_secrets(info.value)
    # The upload session is cancelled rather than left behind.
    assert len(path_requests(proxy, "DELETE", f"/{repo}/blobs/uploads/")) == 1
    assert client.blob_size(repo, desc.digest) is None
    assert client.blob_size(repo, Digest.of(source)) is None
    assert not content.blob_exists(registry.url, repo, str(desc.digest))


def test_mount_blob(registry: RegistryServer, samples: dict[str, PushedArtifact], make_client: MakeClient) -> None:
    source = samples["oci-image"]
    digest, size = source.blobs[-1]
    client = make_client(registry.url)
    assert client.mount_blob("mount/dst", Digest.parse(digest), source.repository) is True
    assert content.blob_exists(registry.url, "mount/dst", digest)
    assert client.blob_size("mount/dst", Digest.parse(digest)) == size
    # A blob the source does not have: the registry declines (and the opened session is cancelled).
    unknown = Digest.of(b"not in any repository")
    assert client.mount_blob("mount/dst", unknown, source.repository) is False
    assert client.blob_size("mount/dst", unknown) is None


def test_put_manifest_by_digest_then_tag(
    registry: RegistryServer, samples: dict[str, PushedArtifact], make_client: MakeClient
) -> None:
    source = samples["oci-image"]
    client = make_client(registry.url)
    manifest = client.get_manifest(source.repository, "v1")
    for desc in manifest.blobs:
        assert client.mount_blob("put/img", desc.digest, source.repository)
    client.put_manifest("put/img", str(manifest.digest), manifest)
    assert content.get_manifest(registry.url, "put/img", source.digest)[0] == source.manifest
    assert content.list_tags(registry.url, "put/img") == []
    client.put_manifest("put/img", "v2", manifest)
    raw, media_type, digest = content.get_manifest(registry.url, "put/img", "v2")
    assert (raw, media_type, digest) == (source.manifest, OCI_MANIFEST, source.digest)
    assert client.list_tags("put/img") == ["v2"]
    assert client.head_manifest("put/img", "v2") == ManifestInfo(manifest.digest, OCI_MANIFEST, manifest.size)


# Regression: error bodies were once preloaded and lost, so registry error codes
# (MANIFEST_BLOB_UNKNOWN) never reached the exception.
def test_put_manifest_error_carries_registry_codes(
    registry: RegistryServer, samples: dict[str, PushedArtifact], make_client: MakeClient
) -> None:
    source = samples["oci-image"]
    client = make_client(registry.url)
    manifest = client.get_manifest(source.repository, "v1")
    # The blobs were never pushed to this repository: the registry refuses with its own error code.
    with pytest.raises(RegistryError) as info:
        client.put_manifest("put/no-blobs", "v1", manifest)
    message = no_secrets(info.value)
    assert "put/no-blobs" in message and "HTTP 400" in message
    assert not info.value.transient
    assert "MANIFEST_BLOB_UNKNOWN" in info.value.codes
    assert "MANIFEST_BLOB_UNKNOWN" in message
    assert content.manifest_exists(registry.url, "put/no-blobs", "v1") is False


def test_list_tags_paginates(
    registry: RegistryServer,
    proxy: FaultProxy,
    samples: dict[str, PushedArtifact],
    make_client: MakeClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(client_module, "_TAGS_PAGE", 2)
    source = samples["oci-image"]
    direct = make_client(registry.url)
    manifest = direct.get_manifest(source.repository, "v1")
    for desc in manifest.blobs:
        direct.mount_blob("tags/app", desc.digest, source.repository)
    tags = [f"t{i}" for i in range(1, 6)]
    for tag in tags:
        direct.put_manifest("tags/app", tag, manifest)
    assert sorted(content.list_tags(registry.url, "tags/app")) == tags

    # distribution 2.8 ignores ?n= and answers everything at once.
    assert sorted(direct.list_tags("tags/app")) == tags
    # A registry that honours ?n= (the proxy emulates one) answers 3 pages linked by Link headers.
    proxy.paginate_tags = True
    got = make_client(proxy.url).list_tags("tags/app")
    assert sorted(got) == tags and len(got) == 5
    pages = path_requests(proxy, "GET", "/v2/tags/app/tags/list")
    assert len(pages) == 3
    assert all("n=2" in p.path for p in pages)
    assert "last=t2" in pages[1].path and "last=t4" in pages[2].path
    assert direct.list_tags("no/such-repo") == []


# ------------------------------------------------------------------------------------------ blob download


def test_iter_blob_streams_and_verifies(
    registry: RegistryServer, samples: dict[str, PushedArtifact], make_client: MakeClient
) -> None:
    source = samples["oci-image"]
    client = make_client(registry.url)
    layer = client.get_manifest(source.repository, "v1").blobs[1]
    chunks = list(client.iter_blob(source.repository, layer, chunk_size=1024))
    assert len(chunks) > 1
    assert b"".join(chunks) == content.get_blob(registry.url, source.repository, str(layer.digest))

    # A descriptor that promises fewer bytes than the registry serves.
    short = Descriptor(layer.media_type, layer.digest, layer.size - 1)
    with pytest.raises(IntegrityError) as info:
        b"".join(client.iter_blob(source.repository, short))
    assert str(layer.digest) in no_secrets(info.value)

    missing = desc_of(b"nobody pushed this")
    with pytest.raises(NotFound) as nf:
        b"".join(client.iter_blob(source.repository, missing))
    assert str(missing.digest) in no_secrets(nf.value)


def test_iter_blob_detects_corrupted_bytes(
    proxy: FaultProxy, samples: dict[str, PushedArtifact], make_client: MakeClient
) -> None:
    source = samples["oci-image"]
    digest, size = source.blobs[-1]
    proxy.add(Fault("GET", f"/blobs/{digest}", transform=flip_middle_byte))
    client = make_client(proxy.url)
    with pytest.raises(IntegrityError) as info:
        b"".join(
            client.iter_blob(source.repository, Descriptor("application/octet-stream", Digest.parse(digest), size))
        )
    message = no_secrets(info.value)
    assert digest in message and "digest mismatch" in message


@pytest.mark.parametrize("how", ["cut", "short"])
def test_iter_blob_resumes_with_range(
    how: str, registry: RegistryServer, proxy: FaultProxy, make_client: MakeClient
) -> None:
    """``cut``: the connection breaks mid-body; ``short``: a clean response with too few bytes."""
    pushed = push_oci_image(registry.url, "resume/app", "v1", layers=1, layer_size=200 * KiB, seed=9)
    digest, size = pushed.blobs[-1]
    assert size > 150 * KiB  # gzip of random bytes does not shrink
    cut = 50_000
    if how == "cut":
        proxy.add(Fault("GET", f"/blobs/{digest}", cut_after=cut))
    else:
        proxy.add(Fault("GET", f"/blobs/{digest}", transform=lambda b: b[:cut]))
    client = make_client(proxy.url)
    desc = Descriptor("application/octet-stream", Digest.parse(digest), size)
    data = b"".join(client.iter_blob("resume/app", desc))
    assert data == content.get_blob(registry.url, "resume/app", digest)
    gets = path_requests(proxy, "GET", f"/blobs/{digest}")
    assert len(gets) == 2
    assert "range" not in gets[0].headers
    match = re.fullmatch(r"bytes=(\d+)-", gets[1].headers.get("range", ""))
    assert match is not None, gets[1].headers
    assert 0 < int(match.group(1)) <= cut
    assert gets[1].status == 206

    if how == "cut":
        # A connection that breaks every time: the client gives up with a transient error.
        proxy.add(Fault("GET", f"/blobs/{digest}", cut_after=cut, times=100))
        with pytest.raises(RegistryError) as info:
            b"".join(client.iter_blob("resume/app", desc))
        assert info.value.transient
        assert "broke" in no_secrets(info.value)


def test_one_client_serves_many_threads(
    registry: RegistryServer, samples: dict[str, PushedArtifact], make_client: MakeClient
) -> None:
    client = make_client(registry.url)
    jobs = [(p.repository, Digest.parse(d), size) for p in samples.values() for d, size in p.blobs]

    def fetch(job: tuple[str, Digest, int]) -> bytes:
        repo, digest, size = job
        return b"".join(client.iter_blob(repo, Descriptor("application/octet-stream", digest, size), chunk_size=4096))

    with ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(fetch, jobs * 2))
    for (_, digest, size), data in zip(jobs * 2, results, strict=True):
        assert len(data) == size and Digest.of(data) == digest


# ----------------------------------------------------------------------------------------------- retries


def test_retries_on_503_429_and_dropped_connections(
    proxy: FaultProxy, samples: dict[str, PushedArtifact], make_client: MakeClient
) -> None:
    pushed = samples["oci-image"]
    path = f"/v2/{pushed.repository}/manifests/v1"
    proxy.add(Fault("GET", path, status=503))
    proxy.add(Fault("GET", path, status=429, headers={"Retry-After": "0"}))
    proxy.add(Fault("GET", path, drop=True))
    client = make_client(proxy.url)
    assert client.get_manifest(pushed.repository, "v1").raw == pushed.manifest
    assert [s.status for s in path_requests(proxy, "GET", path)] == [503, 429, 0, 200]


def test_retries_are_bounded(proxy: FaultProxy, samples: dict[str, PushedArtifact], make_client: MakeClient) -> None:
    pushed = samples["oci-image"]
    path = f"/v2/{pushed.repository}/manifests/v1"
    proxy.add(Fault("GET", path, status=503, times=100))
    with pytest.raises(RegistryError) as info:
        make_client(proxy.url).get_manifest(pushed.repository, "v1")
    assert info.value.transient and info.value.status == 503
    assert "HTTP 503" in no_secrets(info.value)
    assert len(path_requests(proxy, "GET", path)) == RETRY.attempts


def test_registry_down_then_back(workdir: Path, make_client: MakeClient) -> None:
    with RegistryServer.start(workdir, name="downreg") as server:
        pushed = push_oci_image(server.url, "down/app", "v1", layer_size=KiB)
        client = make_client(server.url)
        client.ping()
        server.kill()
        for call in (client.ping, lambda: client.get_manifest("down/app", "v1")):
            with pytest.raises(RegistryError) as info:
                call()
            message = no_secrets(info.value)
            assert type(info.value) is RegistryError
            assert info.value.transient and info.value.status == 0
            assert "cannot reach" in message and server.host in message
        server.restart()
        client.ping()
        assert client.get_manifest("down/app", "v1").raw == pushed.manifest


# --------------------------------------------------------------------------------------------- referrers


def test_list_referrers_falls_back_to_tag_schema(registry: RegistryServer, make_client: MakeClient) -> None:
    url = registry.url
    subject = push_oci_image(url, "ref/app", "v1", layer_size=KiB, seed=21)
    signature = push_referrer(url, "ref/app", subject, artifact_type="application/vnd.example.sig.v1")
    sbom = push_referrer(url, "ref/app", subject, artifact_type="application/vnd.example.sbom.v1", seed=1)
    client = make_client(url)
    found = client.list_referrers("ref/app", Digest.parse(subject.digest))
    assert [(str(d.digest), d.size, d.media_type) for d in found] == [
        (signature.digest, signature.size, OCI_MANIFEST),
        (sbom.digest, sbom.size, OCI_MANIFEST),
    ]
    assert [d.artifact_type for d in found] == ["application/vnd.example.sig.v1", "application/vnd.example.sbom.v1"]
    assert found[0].annotations == dict(signature.annotations)
    # The descriptors lead to the referrers themselves, whose subject is ours.
    referrer = client.get_manifest("ref/app", str(found[0].digest))
    assert referrer.subject is not None and str(referrer.subject.digest) == subject.digest

    lonely = push_oci_image(url, "ref/app", "v2", layer_size=KiB, seed=22)
    assert client.list_referrers("ref/app", Digest.parse(lonely.digest)) == []
    assert client.list_referrers("ref/no-such-repo", Digest.parse(lonely.digest)) == []


def test_index_children_fetch_by_digest(
    registry: RegistryServer, samples: dict[str, PushedArtifact], make_client: MakeClient
) -> None:
    """Children of a fetched index are fetchable by digest and match what content.py pushed."""
    pushed = samples["oci-index"]
    client = make_client(registry.url)
    index = client.get_manifest(pushed.repository, "v1")
    for child in index.children:
        fetched: Manifest = client.get_manifest(pushed.repository, str(child.digest))
        assert fetched.size == child.size and fetched.media_type == child.media_type
        assert child.platform is not None and child.platform["os"] == "linux"
