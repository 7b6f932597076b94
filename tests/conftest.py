"""Shared fixtures: real services, started once per test module on free loopback ports.

Every service is the real thing (Debian's distribution registry, Azurite from npm, skopeo); a
missing component makes the tests fail with a message that says how to install it — never skip.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from airlock.testing.services import AzuriteServer, RegistryServer


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("services")


@pytest.fixture(scope="module")
def source_registry(workdir: Path) -> Iterator[RegistryServer]:
    with RegistryServer.start(workdir / "source-registry", name="source") as server:
        yield server


@pytest.fixture(scope="module")
def target_registry(workdir: Path) -> Iterator[RegistryServer]:
    with RegistryServer.start(workdir / "target-registry", name="target") as server:
        yield server


@pytest.fixture(scope="module")
def azurite(workdir: Path) -> Iterator[AzuriteServer]:
    with AzuriteServer.start(workdir / "azurite", accounts=("srcacct", "dstacct")) as server:
        yield server


@pytest.fixture(autouse=True, scope="module")
def _no_leaked_hashing_threads() -> Iterator[None]:
    """Every archive reader and writer stops its hashing thread, whatever way it ends."""
    yield
    import threading
    import time

    deadline = time.monotonic() + 5
    while any(t.name == "archive-hash" for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    leaked = [t.name for t in threading.enumerate() if t.name == "archive-hash"]
    assert not leaked, f"{len(leaked)} archive hashing thread(s) left running"
