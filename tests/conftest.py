"""Shared fixtures: real services, started once per test module on free loopback ports.

Every service is the real thing (Debian's distribution registry, Azurite from npm, skopeo); a
missing component makes the tests fail with a message that says how to install it — never skip.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from airlock.testing.azurite import AzuriteServer
from airlock.testing.postgres import ExternalPostgres, PostgresServer
from airlock.testing.registry_server import RegistryServer


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


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer | ExternalPostgres]:
    """One private PostgreSQL cluster per test session (tests make databases of their own in it),
    or the server ``AIRLOCK_TEST_DATABASE_URL`` names (its role needs CREATEDB)."""
    given = os.environ.get("AIRLOCK_TEST_DATABASE_URL")
    if given:
        external = ExternalPostgres(given)
        yield external
        external.stop()
        return
    with PostgresServer.start() as server:
        yield server


@pytest.fixture(scope="module")
def azurite(workdir: Path) -> Iterator[AzuriteServer]:
    with AzuriteServer.start(workdir / "azurite", accounts=("srcacct", "dstacct")) as server:
        yield server


# Transfer worker threads, by name prefix: every transfer stops its own, however it ends.
_TRANSFER_THREADS = ("fetch_", "upload_", "azure-read_", "azure-stage_", "azure-md5_", "file-read-ahead")


@pytest.fixture(autouse=True, scope="module")
def _no_leaked_transfer_threads() -> Iterator[None]:
    """No export, import, copy or storage read leaves a worker thread running after the module's tests."""
    yield
    import gc
    import threading
    import time

    # Collect first: a generator kept only by a cycle (a test's traceback) would otherwise be
    # finalized inside threading.enumerate(), under its lock, and deadlock joining its workers.
    gc.collect()

    def leaked() -> list[str]:
        return [t.name for t in threading.enumerate() if t.name.startswith(_TRANSFER_THREADS)]

    deadline = time.monotonic() + 5
    while leaked() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not leaked(), f"transfer worker thread(s) left running: {sorted(set(leaked()))}"
