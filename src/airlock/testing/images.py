"""Sample images and indexes, OCI and Docker, deterministic (see :mod:`airlock.testing.building`)."""

from __future__ import annotations

import random
from collections.abc import Sequence

from airlock.testing.building import EPOCH, Built, compact_json, descriptor, push_built, tar_gz
from airlock.testing.content import (
    DOCKER_CONFIG,
    DOCKER_LAYER,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    Client,
    Platform,
    PushedArtifact,
    sha256,
)

__all__ = ["push_docker_image", "push_docker_manifest_list", "push_oci_image", "push_oci_index"]


def _build_image(
    *,
    docker: bool,
    layers: int,
    layer_size: int,
    seed: int,
    platform: Platform,
    created: str = EPOCH,
) -> Built:
    kind = "docker" if docker else "oci"
    os_name, arch = platform
    # A string seed is hashed with SHA-512 by random.Random, so it is stable across runs and
    # independent of PYTHONHASHSEED.
    rng = random.Random(f"airlock-testing:{kind}-image:{seed}:{os_name}/{arch}")
    layer_blobs: list[bytes] = []
    diff_ids: list[str] = []
    for i in range(layers):
        gz, plain = tar_gz([(f"airlock/{kind}-{os_name}-{arch}-{i}.bin", rng.randbytes(layer_size))])
        layer_blobs.append(gz)
        diff_ids.append(sha256(plain))
    config = compact_json(
        {
            "architecture": arch,
            "os": os_name,
            "created": created,
            "config": {"Env": ["PATH=/usr/bin:/bin"], "Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created": EPOCH, "created_by": f"airlock.testing layer {i}"} for i in range(layers)],
        }
    )
    layer_type = DOCKER_LAYER if docker else OCI_LAYER
    manifest = compact_json(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST if docker else OCI_MANIFEST,
            "config": descriptor(DOCKER_CONFIG if docker else OCI_CONFIG, config),
            "layers": [descriptor(layer_type, blob) for blob in layer_blobs],
        }
    )
    return Built(DOCKER_MANIFEST if docker else OCI_MANIFEST, manifest, [config, *layer_blobs])


def _build_index(
    *,
    docker: bool,
    platforms: Sequence[Platform],
    layers: int,
    layer_size: int,
    seed: int,
    created: str = EPOCH,
) -> Built:
    if not platforms:
        raise ValueError("an index needs at least one platform")
    children = [
        _build_image(docker=docker, layers=layers, layer_size=layer_size, seed=seed, platform=p, created=created)
        for p in platforms
    ]
    media_type = DOCKER_MANIFEST_LIST if docker else OCI_INDEX
    manifest = compact_json(
        {
            "schemaVersion": 2,
            "mediaType": media_type,
            "manifests": [
                {
                    "mediaType": child.media_type,
                    "digest": child.digest,
                    "size": len(child.manifest),
                    "platform": {"architecture": arch, "os": os_name},
                }
                for child, (os_name, arch) in zip(children, platforms, strict=True)
            ],
        }
    )
    return Built(media_type, manifest, [], children)


def push_oci_image(
    registry_url: str,
    repository: str,
    tag: str | None,
    *,
    layers: int = 2,
    layer_size: int = 64 * 1024,
    seed: int = 0,
    platform: Platform = ("linux", "amd64"),
    auth: tuple[str, str] | None = None,
    created: str = EPOCH,
) -> PushedArtifact:
    """Push a single-platform OCI image (``tag`` None: by digest only); ``created`` goes in its config."""
    built = _build_image(
        docker=False, layers=layers, layer_size=layer_size, seed=seed, platform=platform, created=created
    )
    with Client(registry_url, auth) as client:
        return push_built(client, repository, tag, built)


def push_oci_index(
    registry_url: str,
    repository: str,
    tag: str | None,
    *,
    platforms: Sequence[Platform] = (("linux", "amd64"), ("linux", "arm64")),
    layers: int = 2,
    layer_size: int = 64 * 1024,
    seed: int = 0,
    auth: tuple[str, str] | None = None,
    created: str = EPOCH,
) -> PushedArtifact:
    """Push an OCI image index with one OCI image per platform; children are pushed by digest.

    Each child equals what :func:`push_oci_image` builds for the same seed, sizes, platform and ``created``.
    """
    built = _build_index(
        docker=False, platforms=platforms, layers=layers, layer_size=layer_size, seed=seed, created=created
    )
    with Client(registry_url, auth) as client:
        return push_built(client, repository, tag, built)


def push_docker_image(
    registry_url: str,
    repository: str,
    tag: str | None,
    *,
    layers: int = 2,
    layer_size: int = 64 * 1024,
    seed: int = 0,
    platform: Platform = ("linux", "amd64"),
    auth: tuple[str, str] | None = None,
) -> PushedArtifact:
    """Push a Docker image manifest v2 schema 2."""
    built = _build_image(docker=True, layers=layers, layer_size=layer_size, seed=seed, platform=platform)
    with Client(registry_url, auth) as client:
        return push_built(client, repository, tag, built)


def push_docker_manifest_list(
    registry_url: str,
    repository: str,
    tag: str | None,
    *,
    platforms: Sequence[Platform] = (("linux", "amd64"), ("linux", "arm64")),
    layers: int = 2,
    layer_size: int = 64 * 1024,
    seed: int = 0,
    auth: tuple[str, str] | None = None,
) -> PushedArtifact:
    """Push a Docker manifest list with one schema 2 image per platform, children by digest."""
    built = _build_index(docker=True, platforms=platforms, layers=layers, layer_size=layer_size, seed=seed)
    with Client(registry_url, auth) as client:
        return push_built(client, repository, tag, built)
