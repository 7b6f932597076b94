"""Fixtures of the engine tests: the sample set every media-type family is exported from."""

from __future__ import annotations

import pytest

from airlock.testing.content import PushedArtifact
from airlock.testing.images import push_docker_manifest_list, push_oci_image
from airlock.testing.referrers import push_oci_artifact
from airlock.testing.registry_server import RegistryServer
from airlock.testing.samples import push_sample_set


@pytest.fixture(scope="module")
def samples(source_registry: RegistryServer) -> list[PushedArtifact]:
    """Every media-type family: OCI image (+ signature referrer), OCI index, Docker v2, Helm, artifact, list."""
    url = source_registry.url
    out = push_sample_set(url, seed=7)
    out.append(push_docker_manifest_list(url, "samples/dockerlist", "v1", layer_size=8192, seed=8))
    out.append(push_oci_artifact(url, "samples/sbom", "v1", seed=9))
    # Same seed in another repository: identical layers, to test dedup and cross-repo mounts.
    out.append(push_oci_image(url, "samples/app-copy", "1.0", layer_size=32 * 1024, seed=7))
    return out
