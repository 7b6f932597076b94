"""Fixtures of the RegistryClient suites (test_client*.py): an anonymous registry, a fault proxy in
front of it, sample content, and clients that never read this machine's auth files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from airlock.testing.content import PushedArtifact
from airlock.testing.fault_proxy import FaultProxy
from airlock.testing.images import push_docker_image, push_docker_manifest_list, push_oci_image, push_oci_index
from airlock.testing.registry_clients import RegistryClients
from airlock.testing.registry_server import RegistryServer


@pytest.fixture(scope="module")
def registry(workdir: Path) -> Iterator[RegistryServer]:
    with RegistryServer.start(workdir, name="anon") as server:
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
    url, size = registry.url, 8 * 1024
    return {
        "oci-image": push_oci_image(url, "pull/oci-image", "v1", layer_size=size, seed=1),
        "oci-index": push_oci_index(url, "pull/oci-index", "v1", layer_size=size, seed=2),
        "docker-image": push_docker_image(url, "pull/docker-image", "v1", layer_size=size, seed=3),
        "docker-list": push_docker_manifest_list(url, "pull/docker-list", "v1", layer_size=size, seed=4),
    }


@pytest.fixture
def isolated_auth_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point every auth-file lookup at an empty temporary HOME: this machine's files are never read."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in ("DOCKER_CONFIG", "REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR"):
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture
def make_client(isolated_auth_files: Path) -> Iterator[RegistryClients]:
    """Clients with fast retries, made after HOME is isolated, closed after the test."""
    clients = RegistryClients()
    yield clients
    clients.close()
