"""The demo's sample set: one artifact of each kind."""

from __future__ import annotations

from airlock.testing.content import PushedArtifact
from airlock.testing.helm import push_helm_chart
from airlock.testing.images import push_docker_image, push_oci_image, push_oci_index
from airlock.testing.referrers import push_referrer

__all__ = ["push_sample_set"]


def push_sample_set(registry_url: str, *, seed: int = 0, auth: tuple[str, str] | None = None) -> list[PushedArtifact]:
    """Push the demo's sample content (about 260 KiB of blobs) and return it in this order.

    ``samples/app:1.0`` (OCI image), its signature referrer (by digest, plus the fallback index
    tagged ``sha256-<hex>`` in ``samples/app``), ``samples/multi:latest`` (OCI index, linux/amd64 and
    linux/arm64), ``samples/legacy:v2`` (Docker schema 2 image) and ``charts/mychart:0.1.0`` (Helm).
    """
    size = 32 * 1024
    app = push_oci_image(registry_url, "samples/app", "1.0", layer_size=size, seed=seed, auth=auth)
    signature = push_referrer(registry_url, "samples/app", app, seed=seed, auth=auth)
    multi = push_oci_index(registry_url, "samples/multi", "latest", layer_size=size, seed=seed, auth=auth)
    legacy = push_docker_image(registry_url, "samples/legacy", "v2", layer_size=size, seed=seed, auth=auth)
    chart = push_helm_chart(registry_url, "charts/mychart", "0.1.0", seed=seed, auth=auth)
    return [app, signature, multi, legacy, chart]
