"""A sample Helm chart, as Helm 3 stores it in OCI registries (see :mod:`airlock.testing.building`)."""

from __future__ import annotations

import random

from airlock.testing.building import Built, compact_json, descriptor, push_built, tar_gz
from airlock.testing.content import HELM_CHART_LAYER, HELM_CONFIG, OCI_MANIFEST, Client, PushedArtifact

__all__ = ["push_helm_chart"]


def push_helm_chart(
    registry_url: str,
    repository: str,
    tag: str,
    *,
    chart_name: str | None = None,
    version: str | None = None,
    seed: int = 0,
    auth: tuple[str, str] | None = None,
) -> PushedArtifact:
    """Push a Helm chart as Helm 3 stores it in OCI registries.

    ``chart_name`` defaults to the last path segment of ``repository``, ``version`` to ``tag``.
    The chart layer is a real tar.gz holding ``<chart>/Chart.yaml`` and ``<chart>/values.yaml``.
    """
    name = chart_name or repository.rsplit("/", 1)[-1]
    version = version or tag
    rng = random.Random(f"airlock-testing:helm:{seed}:{name}:{version}")
    chart_yaml = (
        f"apiVersion: v2\nname: {name}\nversion: {version}\n"
        f"description: airlock test chart (seed {seed})\ntype: application\n"
    ).encode()
    values_yaml = f"replicaCount: 1\nnonce: {rng.randbytes(8).hex()}\n".encode()
    chart, _ = tar_gz([(f"{name}/Chart.yaml", chart_yaml), (f"{name}/values.yaml", values_yaml)])
    config = compact_json({"name": name, "version": version, "apiVersion": "v2", "type": "application"})
    manifest = compact_json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(HELM_CONFIG, config),
            "layers": [descriptor(HELM_CHART_LAYER, chart)],
            "annotations": {
                "org.opencontainers.image.title": name,
                "org.opencontainers.image.version": version,
            },
        }
    )
    built = Built(OCI_MANIFEST, manifest, [config, chart])
    with Client(registry_url, auth) as client:
        return push_built(client, repository, tag, built)
