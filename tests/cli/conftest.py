"""Fixtures the CLI tests share: a home, the console script, an image, its airlock export, what
skopeo writes for it, a registry that refused imports must leave empty, and a fresh target registry
per test (the sync and receipt tests)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from airlock.testing.console import Run, run_airlock
from airlock.testing.content import PushedArtifact
from airlock.testing.images import push_oci_image
from airlock.testing.registry_server import RegistryServer
from airlock.testing.skopeo import skopeo_oci_archive

GUARD_REPO = "guard/app"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="module")
def cli(home: Path) -> Callable[..., Run]:
    return lambda *args: run_airlock(*args, home=home)


@pytest.fixture(scope="module")
def image(source_registry: RegistryServer) -> PushedArtifact:
    return push_oci_image(source_registry.url, GUARD_REPO, "1.0", seed=91, layers=3, layer_size=96 * 1024)


@pytest.fixture(scope="module")
def exported(
    tmp_path_factory: pytest.TempPathFactory, cli: Callable[..., Run], source_registry: RegistryServer,
    image: PushedArtifact,
) -> Path:  # fmt: skip
    path = tmp_path_factory.mktemp("exported") / "batch.tar"
    cli("export", "--source-registry", source_registry.url, "-a", image.reference, "--target", path.as_uri()).json()
    return path


@pytest.fixture(scope="module")
def skopeo_tar(
    tmp_path_factory: pytest.TempPathFactory, source_registry: RegistryServer, image: PushedArtifact
) -> Path:
    """What `skopeo copy docker://…/guard/app:1.0 oci-archive:app.tar:guard/app:1.0` writes."""
    path = tmp_path_factory.mktemp("skopeo") / "app.tar"
    return skopeo_oci_archive(source_registry, image.reference, path, GUARD_REPO + ":1.0")


@pytest.fixture(scope="module")
def untouched(workdir: Path) -> Iterator[RegistryServer]:
    """A registry that only refused imports touch: it must stay empty."""
    with RegistryServer.start(workdir / "untouched-registry", name="untouched") as server:
        yield server


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[RegistryServer]:
    """An empty target registry of the test's own, so a receipt of it holds only what the test put there."""
    with RegistryServer.start(tmp_path / "fresh-registry", name="fresh") as server:
        yield server
