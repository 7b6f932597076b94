"""The one-request upload start (a mount from the repository itself) and strict tag listing,
against the real distribution 2.8 registry, with faults from a local proxy."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from airlock.errors import NotFound
from airlock.oci.digest import Digest
from airlock.oci.manifest import Descriptor
from airlock.oci.reference import RegistryURL
from airlock.registry.client import RegistryClient
from airlock.registry.retry import RetryPolicy
from airlock.testing import content
from airlock.testing.fault_proxy import Fault, FaultProxy
from airlock.testing.registry_server import RegistryServer

RETRY = RetryPolicy(attempts=2, base=0.01, cap=0.05)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    with RegistryServer.start(tmp_path_factory.mktemp("uploads"), name="uploads") as server:
        yield server


@pytest.fixture
def proxy(registry: RegistryServer) -> Iterator[FaultProxy]:
    with FaultProxy(registry.url) as p:
        yield p


@pytest.fixture
def client(proxy: FaultProxy) -> Iterator[RegistryClient]:
    c = RegistryClient(RegistryURL.parse(proxy.url), retry=RETRY)
    yield c
    c.close()


def _blob(data: bytes) -> Descriptor:
    return Descriptor("application/octet-stream", Digest.of(data), len(data))


def test_mount_or_start_opens_an_upload_for_a_new_blob_and_finds_it_there_afterwards(
    client: RegistryClient, proxy: FaultProxy, registry: RegistryServer
) -> None:
    desc = _blob(b"a blob new to the repository")
    location = client.mount_or_start("up/new", desc.digest, "up/new")
    assert location is not None and "/v2/up/new/blobs/uploads/" in location
    client.push_blob("up/new", desc, [b"a blob new ", b"to the repository"], location=location)
    assert content.blob_exists(registry.url, "up/new", str(desc.digest))
    posts = [s for s in proxy.requests if s.method == "POST"]
    assert len(posts) == 1 and "mount=" in posts[0].path  # the mount's answer was the upload session
    # Now the repository has it: the same request mounts it, and opens nothing.
    assert client.mount_or_start("up/new", desc.digest, "up/new") is None
    # Another repository of the same registry does not, until mounted from the first.
    assert client.mount_or_start("up/other", desc.digest, "up/other") is not None
    assert client.mount_or_start("up/other", desc.digest, "up/new") is None
    assert content.blob_exists(registry.url, "up/other", str(desc.digest))


def test_mount_or_start_falls_back_to_a_plain_upload_when_the_registry_refuses_the_mount(
    client: RegistryClient, proxy: FaultProxy, registry: RegistryServer
) -> None:
    desc = _blob(b"a blob for a registry without mounts")
    proxy.add(Fault("POST", "mount=", status=400))
    location = client.mount_or_start("up/nomount", desc.digest, "up/nomount")
    assert location is not None
    client.push_blob("up/nomount", desc, [b"a blob for a registry without mounts"], location=location)
    assert content.blob_exists(registry.url, "up/nomount", str(desc.digest))
    posts = [s.path for s in proxy.requests if s.method == "POST"]
    assert len(posts) == 2 and "mount=" in posts[0] and "mount=" not in posts[1]


def test_strict_tag_listing_tells_an_unknown_repository_from_a_refused_listing(
    client: RegistryClient, proxy: FaultProxy
) -> None:
    with pytest.raises(NotFound) as info:
        client.list_tags("up/never-pushed", strict=True)
    assert "NAME_UNKNOWN" in info.value.codes
    assert client.list_tags("up/never-pushed") == []
    proxy.add(Fault("GET", "/tags/list", status=404))  # a 404 that does not say the name is unknown
    with pytest.raises(NotFound) as info:
        client.list_tags("up/new", strict=True)
    assert "NAME_UNKNOWN" not in info.value.codes
