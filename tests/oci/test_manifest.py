"""Manifest parsing keeps bytes exact and refuses garbage (pure)."""

from __future__ import annotations

import json

import pytest

from airlock.errors import IntegrityError
from airlock.oci.digest import Digest, Verifier
from airlock.oci.manifest import DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST, Manifest

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64


def test_image_manifest_bytes_and_digest_are_kept_exact() -> None:
    raw = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": D1, "size": 2},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": D2, "size": 10}],
        },
        indent=3,  # unusual whitespace must survive: the digest is of the bytes
    ).encode()
    m = Manifest.parse(raw, media_type=None, where="t")
    assert m.raw == raw
    assert m.digest == Digest.of(raw)
    assert [str(b.digest) for b in m.blobs] == [D1, D2]
    assert not m.is_index


def test_index_without_media_type_field_uses_the_header() -> None:
    raw = json.dumps(
        {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": D1,
                    "size": 5,
                    "platform": {"os": "linux", "architecture": "arm64"},
                }
            ],
        }
    ).encode()
    m = Manifest.parse(raw, media_type=DOCKER_MANIFEST_LIST, where="t")
    assert m.is_index and m.media_type == DOCKER_MANIFEST_LIST
    assert m.children[0].platform == {"os": "linux", "architecture": "arm64"}


def test_artifact_type_and_subject() -> None:
    raw = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": "application/x.sbom",
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": D1, "size": 2},
            "layers": [],
            "subject": {"mediaType": OCI_INDEX, "digest": D2, "size": 100},
        }
    ).encode()
    m = Manifest.parse(raw, media_type=None, where="t")
    assert m.artifact_type == "application/x.sbom"
    assert m.subject is not None and str(m.subject.digest) == D2


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        b'{"mediaType": "text/plain"}',
        json.dumps(
            {
                "mediaType": OCI_MANIFEST,
                "config": {"digest": "sha256:bad", "size": 1, "mediaType": "x"},
                "layers": [],
            }
        ).encode(),
        json.dumps({"mediaType": OCI_INDEX, "manifests": [{"mediaType": "x", "digest": D1, "size": -1}]}).encode(),
    ],
    ids=["not-json", "array", "unknown-type", "bad-digest", "negative-size"],
)
def test_garbage_manifests_raise_integrity_errors(raw: bytes) -> None:
    with pytest.raises(IntegrityError):
        Manifest.parse(raw, media_type=None, where="test manifest")


def test_verifier_catches_size_and_digest() -> None:
    d = Digest.of(b"abc")
    v = Verifier(d, 3, what="blob")
    v.update(b"abc")
    v.verify()
    v = Verifier(d, 3, what="blob")
    v.update(b"abd")
    with pytest.raises(IntegrityError, match="digest mismatch"):
        v.verify()
    v = Verifier(d, 3, what="blob")
    with pytest.raises(IntegrityError, match="more than"):
        v.update(b"abcd")
    v = Verifier(d, 3, what="blob")
    v.update(b"ab")
    with pytest.raises(IntegrityError, match="size mismatch"):
        v.verify()
