"""Sample OCI 1.1 artifacts and referrers (signatures), with the referrers tag-schema fallback index."""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from typing import Any

from airlock.testing.building import EPOCH, Built, compact_json, descriptor, push_built
from airlock.testing.content import EMPTY_BLOB, EMPTY_CONFIG, OCI_INDEX, OCI_MANIFEST, Client, PushedArtifact

__all__ = ["index_referrer", "push_oci_artifact", "push_referrer", "referrers_tag"]


def _build_artifact(
    *,
    artifact_type: str,
    layer_media_type: str,
    payload: bytes,
    title: str,
    subject: Mapping[str, Any] | None,
    annotations: Mapping[str, str],
) -> Built:
    body: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": descriptor(EMPTY_CONFIG, EMPTY_BLOB),
        "layers": [descriptor(layer_media_type, payload, annotations={"org.opencontainers.image.title": title})],
    }
    if subject is not None:
        body["subject"] = dict(subject)
    if annotations:
        body["annotations"] = dict(annotations)
    return Built(
        OCI_MANIFEST,
        compact_json(body),
        [EMPTY_BLOB, payload],
        artifact_type=artifact_type,
        annotations=dict(annotations),
    )


def push_oci_artifact(
    registry_url: str,
    repository: str,
    tag: str | None,
    *,
    artifact_type: str = "application/vnd.example.sbom.v1+json",
    layer_media_type: str | None = None,
    payload: bytes | None = None,
    seed: int = 0,
    auth: tuple[str, str] | None = None,
) -> PushedArtifact:
    """Push an OCI 1.1 artifact: image manifest with ``artifactType``, the empty config, one layer.

    The layer is ``payload`` (default: a small seeded JSON document) of ``layer_media_type``
    (default: ``artifact_type``).
    """
    if payload is None:
        rng = random.Random(f"airlock-testing:artifact:{seed}:{artifact_type}")
        payload = compact_json({"kind": artifact_type, "seed": seed, "nonce": rng.randbytes(16).hex()})
    built = _build_artifact(
        artifact_type=artifact_type,
        layer_media_type=layer_media_type or artifact_type,
        payload=payload,
        title="payload.json",
        subject=None,
        annotations={},
    )
    with Client(registry_url, auth) as client:
        return push_built(client, repository, tag, built)


def referrers_tag(subject_digest: str) -> str:
    """The OCI 1.1 referrers tag-schema fallback tag for a subject: ``sha256:abc`` → ``sha256-abc``."""
    return subject_digest.replace(":", "-")[:128]


def push_referrer(
    registry_url: str,
    repository: str,
    subject: PushedArtifact,
    *,
    artifact_type: str = "application/vnd.example.signature.v1",
    seed: int = 0,
    annotations: Mapping[str, str] | None = None,
    auth: tuple[str, str] | None = None,
) -> PushedArtifact:
    """Attach an artifact to ``subject`` (pushed by digest, ``subject`` field set) and return it.

    Distribution 2.8 has no referrers API, so like OCI 1.1 clients do against such registries this
    also maintains the fallback index tagged :func:`referrers_tag` of the subject: the existing one is
    read and the referrer's descriptor (with ``artifactType`` and ``annotations``) appended.
    ``annotations`` default to a fixed ``org.opencontainers.image.created`` and the seed.
    """
    rng = random.Random(f"airlock-testing:referrer:{seed}:{artifact_type}:{subject.digest}")
    payload = compact_json({"subject": subject.digest, "type": artifact_type, "nonce": rng.randbytes(16).hex()})
    if annotations is None:
        annotations = {"org.opencontainers.image.created": EPOCH, "org.example.seed": str(seed)}
    built = _build_artifact(
        artifact_type=artifact_type,
        layer_media_type=artifact_type,
        payload=payload,
        title="signature.json",
        subject=subject.descriptor(),
        annotations=annotations,
    )
    with Client(registry_url, auth) as client:
        referrer = push_built(client, repository, None, built)
        index_referrer(client, repository, subject, referrer)
    return referrer


def index_referrer(client: Client, repository: str, subject: PushedArtifact, referrer: PushedArtifact) -> None:
    """Add ``referrer`` (with its ``artifactType`` and ``annotations``) to the fallback index tagged
    :func:`referrers_tag` of ``subject``, as OCI 1.1 clients do on a registry without the referrers API."""
    fallback_tag = referrers_tag(subject.digest)
    existing = client.get_manifest(repository, fallback_tag)
    index: dict[str, Any]
    if existing is None:
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    else:
        index = json.loads(existing[0])
    if all(entry.get("digest") != referrer.digest for entry in index.get("manifests", [])):
        entry = {**referrer.descriptor(), "artifactType": referrer.artifact_type}
        if referrer.annotations:
            entry["annotations"] = dict(referrer.annotations)
        index.setdefault("manifests", []).append(entry)
        client.put_manifest(repository, fallback_tag, OCI_INDEX, compact_json(index))
