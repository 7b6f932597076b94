"""``RegistryClient.list_repositories``: ``/v2/_catalog`` paged by ``n`` and ``Link`` on distribution,
anonymous and through a Bearer token server (scope ``registry:catalog:*``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from airlock.errors import AuthenticationError
from airlock.oci.reference import RegistryURL
from airlock.registry import client as client_module
from airlock.registry.client import RegistryClient
from airlock.registry.credentials import Credentials
from airlock.testing.images import push_oci_image
from airlock.testing.registry_server import RegistryServer
from airlock.testing.token_server import TokenServer

USER, PASSWORD = "cat", "pw-catalog-9b1e"
REPOS = ["a/one", "a/two", "b/three", "c/four", "c/sub/five"]


@pytest.fixture(scope="module")
def token_server(workdir: Path) -> Iterator[TokenServer]:
    with TokenServer.start(workdir, credentials=(USER, PASSWORD)) as server:
        yield server


@pytest.fixture(scope="module")
def token_registry(workdir: Path, token_server: TokenServer) -> Iterator[RegistryServer]:
    with RegistryServer.start(workdir, name="catalogtok", token_auth=token_server) as server:
        for i, repo in enumerate(REPOS):
            push_oci_image(server.url, repo, "1", layers=1, layer_size=128, seed=i, auth=(USER, PASSWORD))
        yield server


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    # Pages of 2, so five repositories take three pages and two Link hops.
    monkeypatch.setattr(client_module, "_TAGS_PAGE", 2)


def test_catalog_pages_follow_link_until_the_last_repository(
    source_registry: RegistryServer, small_pages: None
) -> None:
    for i, repo in enumerate(REPOS):
        push_oci_image(source_registry.url, repo, "1", layers=1, layer_size=128, seed=i)
    client = RegistryClient(RegistryURL.parse(source_registry.url))
    try:
        assert list(client.list_repositories()) == sorted(REPOS)
    finally:
        client.close()


def test_catalog_through_a_bearer_token_asks_for_the_catalog_scope(
    token_registry: RegistryServer, token_server: TokenServer, small_pages: None
) -> None:
    client = RegistryClient(RegistryURL.parse(token_registry.url), credentials=Credentials(USER, PASSWORD))
    try:
        assert list(client.list_repositories()) == sorted(REPOS)
    finally:
        client.close()
    assert "registry:catalog:*" in token_server.requests


def test_catalog_without_credentials_fails_naming_the_catalog_scope(token_registry: RegistryServer) -> None:
    client = RegistryClient(RegistryURL.parse(token_registry.url), use_auth_files=False)
    try:
        with pytest.raises(AuthenticationError, match=r"anonymously for registry:catalog:\*"):
            list(client.list_repositories())
    finally:
        client.close()
