"""cosign's key-based image signatures, made with ``cryptography`` to cosign's published format
(cosign itself is not packaged here): a simple-signing payload, signed with ECDSA P-256 over
SHA-256, base64 in the layer's ``dev.cosignproject.cosign/signature`` annotation.

Two places to put it, as cosign does: the manifest tagged ``sha256-<hex>.sig`` beside the image
(:func:`push_cosign_signature`), or a referrer of the image (``referrer=True``: cosign's OCI 1.1
referrers mode, with the referrers tag-schema index kept as on a registry without the API).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from airlock.testing.building import Built, compact_json, descriptor, push_built
from airlock.testing.content import EMPTY_BLOB, EMPTY_CONFIG, OCI_CONFIG, OCI_MANIFEST, Client, PushedArtifact, sha256
from airlock.testing.referrers import index_referrer

__all__ = ["CosignKey", "push_cosign_signature", "simple_signing_payload"]

SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
COSIGN_SIG_ARTIFACT = "application/vnd.dev.cosign.artifact.sig.v1+json"


@dataclass(frozen=True)
class CosignKey:
    """An ECDSA P-256 key pair, as ``cosign generate-key-pair`` makes, derived from ``seed``."""

    private: ec.EllipticCurvePrivateKey

    @classmethod
    def from_seed(cls, seed: str) -> CosignKey:
        order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551  # P-256's n
        scalar = int.from_bytes(hashlib.sha256(f"airlock-testing:cosign:{seed}".encode()).digest()) % (order - 1) + 1
        return cls(ec.derive_private_key(scalar, ec.SECP256R1()))

    @property
    def public_pem(self) -> bytes:
        """``cosign.pub``: the PEM SubjectPublicKeyInfo."""
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @property
    def public_der(self) -> bytes:
        """The DER SubjectPublicKeyInfo (what a key id hashes)."""
        return self.private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, payload: bytes) -> bytes:
        """The DER ECDSA signature over SHA-256 of ``payload`` (what cosign puts in the annotation, before base64)."""
        return self.private.sign(payload, ec.ECDSA(hashes.SHA256()))


def simple_signing_payload(digest: str, docker_reference: str | None) -> bytes:
    """cosign's payload for ``digest``, byte for byte as its Go ``json.Marshal`` writes it (field
    order critical → identity, image, type; then optional)."""
    identity = {"docker-reference": docker_reference} if docker_reference is not None else {}
    body = {
        "critical": {
            "identity": identity,
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature",
        },
        "optional": None,
    }
    return compact_json(body)


def push_cosign_signature(
    registry_url: str,
    repository: str,
    subject: PushedArtifact,
    key: CosignKey,
    *,
    docker_reference: str | None,
    signed_digest: str | None = None,
    referrer: bool = False,
    tamper: bool = False,
    auth: tuple[str, str] | None = None,
) -> PushedArtifact:
    """Sign ``subject`` with ``key`` and push the signature: tagged ``sha256-<hex>.sig``, or as a
    referrer (pushed by digest). ``signed_digest`` signs another digest instead (a signature
    moved from another image); ``tamper`` flips a byte of the signature after signing (a
    signature altered on the way)."""
    payload = simple_signing_payload(signed_digest or subject.digest, docker_reference)
    signature = bytearray(key.sign(payload))
    if tamper:
        signature[-1] ^= 0x01
    annotation = {SIGNATURE_ANNOTATION: base64.b64encode(signature).decode()}
    layer = descriptor(SIMPLE_SIGNING, payload, annotations=annotation)
    if referrer:
        config = EMPTY_BLOB
        body: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": COSIGN_SIG_ARTIFACT,
            "config": descriptor(EMPTY_CONFIG, config),
            "layers": [layer],
            "subject": subject.descriptor(),
        }
    else:
        config = compact_json(
            {
                "architecture": "",
                "config": {},
                "created": "0001-01-01T00:00:00Z",
                "history": [{"created": "0001-01-01T00:00:00Z"}],
                "os": "",
                "rootfs": {"type": "layers", "diff_ids": [sha256(payload)]},
            }
        )
        body = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, config),
            "layers": [layer],
        }
    kind = COSIGN_SIG_ARTIFACT if referrer else None
    built = Built(OCI_MANIFEST, compact_json(body), [config, payload], artifact_type=kind)
    tag = None if referrer else subject.digest.replace(":", "-") + ".sig"
    with Client(registry_url, auth) as client:
        pushed = push_built(client, repository, tag, built)
        if referrer:
            index_referrer(client, repository, subject, pushed)
    return pushed
