"""A Sigstore of the tests' own, for keyless signatures verified offline: a test certificate
authority (Fulcio's role), a test transparency log (Rekor's) and a test CT log, their
``trusted_root.json``, and Sigstore bundles (v0.3) they would have issued for an image.

Nothing here talks to Sigstore's public services. A bundle is what ``cosign sign
--new-bundle-format`` makes for an image: a DSSE envelope around an in-toto statement whose
subject is the image's digest, signed by a short-lived certificate for an e-mail identity (SAN
and the OIDC-issuer extensions 1.3.6.1.4.1.57264.1.1 and .8) with an embedded SCT of the CT log,
and a ``dsse`` v0.0.1 entry of a one-entry log: inclusion proof, checkpoint (a signed note) and
signed entry timestamp, all by the log key. Keys are derived from a seed, times are fixed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from airlock.testing.building import Built, compact_json, descriptor, push_built
from airlock.testing.content import EMPTY_BLOB, EMPTY_CONFIG, OCI_MANIFEST, Client, PushedArtifact
from airlock.testing.referrers import index_referrer

__all__ = ["BUNDLE_MEDIA_TYPE", "TestSigstore", "push_bundle"]

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
IN_TOTO = "application/vnd.in-toto+json"
SIGNED_AT = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)  # the log's integrated time; the certificate lives 10 minutes
_ISSUER_V1 = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
_ISSUER_V2 = ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
_SCT_LIST = ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")
_P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def _key(seed: str) -> ec.EllipticCurvePrivateKey:
    scalar = int.from_bytes(hashlib.sha256(f"airlock-testing:sigstore:{seed}".encode()).digest()) % (_P256_N - 1)
    return ec.derive_private_key(scalar + 1, ec.SECP256R1())


def _spki(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    return key.sign(data, ec.ECDSA(hashes.SHA256()))


@dataclass(frozen=True)
class TestSigstore:
    """The test CA, transparency log and CT log, from ``seed``."""

    __test__ = False  # not a pytest class, whatever its name

    seed: str = "test"

    @property
    def ca_key(self) -> ec.EllipticCurvePrivateKey:
        return _key(f"{self.seed}:ca")

    @property
    def log_key(self) -> ec.EllipticCurvePrivateKey:
        return _key(f"{self.seed}:rekor")

    @property
    def ct_key(self) -> ec.EllipticCurvePrivateKey:
        return _key(f"{self.seed}:ctlog")

    def ca_certificate(self) -> x509.Certificate:
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "airlock-test"),
                          x509.NameAttribute(NameOID.COMMON_NAME, f"airlock test CA {self.seed}")])  # fmt: skip
        public = self.ca_key.public_key()
        return (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(public)
            .serial_number(1)
            .not_valid_before(datetime(2025, 1, 1, tzinfo=UTC))
            .not_valid_after(datetime(2035, 1, 1, tzinfo=UTC))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_usage(cert_sign=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(self.ca_key, hashes.SHA256())
        )

    def trusted_root(self) -> bytes:
        """``trusted_root.json`` naming this CA, this transparency log and this CT log."""
        start = {"start": "2025-01-01T00:00:00Z"}

        def log(key: ec.EllipticCurvePrivateKey, url: str) -> dict[str, Any]:
            return {
                "baseUrl": url,
                "hashAlgorithm": "SHA2_256",
                "publicKey": {"rawBytes": _b64(_spki(key)), "keyDetails": "PKIX_ECDSA_P256_SHA_256", "validFor": start},
                "logId": {"keyId": _b64(hashlib.sha256(_spki(key)).digest())},
            }

        ca_der = self.ca_certificate().public_bytes(serialization.Encoding.DER)
        root = {
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [log(self.log_key, "https://rekor.airlock.test")],
            "certificateAuthorities": [
                {
                    "subject": {"organization": "airlock-test", "commonName": f"airlock test CA {self.seed}"},
                    "uri": "https://fulcio.airlock.test",
                    "certChain": {"certificates": [{"rawBytes": _b64(ca_der)}]},
                    "validFor": start,
                }
            ],
            "ctlogs": [log(self.ct_key, "https://ctfe.airlock.test")],
            "timestampAuthorities": [],
        }
        return json.dumps(root, indent=2).encode()

    def signing_certificate(self, key: ec.EllipticCurvePrivateKey, email: str, issuer: str) -> x509.Certificate:
        """A Fulcio-like certificate for ``key``: SAN ``email``, the issuer extensions, an embedded SCT."""
        ca = self.ca_certificate()

        def build(sct_list: bytes) -> x509.Certificate:
            public = key.public_key()
            return (
                x509.CertificateBuilder()
                .subject_name(x509.Name([]))
                .issuer_name(ca.subject)
                .public_key(public)
                .serial_number(int.from_bytes(hashlib.sha256(email.encode() + _spki(key)).digest()[:16]) >> 1)
                .not_valid_before(SIGNED_AT - timedelta(minutes=1))
                .not_valid_after(SIGNED_AT + timedelta(minutes=9))
                .add_extension(_usage(cert_sign=False), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
                .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(email)]), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
                .add_extension(
                    x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca_key.public_key()), critical=False
                )
                .add_extension(x509.UnrecognizedExtension(_ISSUER_V1, issuer.encode()), critical=False)
                .add_extension(x509.UnrecognizedExtension(_ISSUER_V2, _der_utf8(issuer)), critical=False)
                .add_extension(x509.UnrecognizedExtension(_SCT_LIST, _der_octets(sct_list)), critical=False)
                .sign(self.ca_key, hashes.SHA256())
            )

        # The SCT signs the certificate without its SCT list (RFC 6962's precertificate entry), so
        # a placeholder list gives the bytes to sign, and the same certificate is built again with the SCT.
        tbs = build(self._sct(b"")).tbs_precertificate_bytes
        return build(self._sct(tbs))

    def _sct(self, tbs: bytes) -> bytes:
        """The TLS-encoded SCT list with one SCT over ``tbs`` (a placeholder signature when empty)."""
        millis = int(SIGNED_AT.timestamp() * 1000) - 30_000
        issuer_key_hash = hashlib.sha256(_spki(self.ca_key)).digest()
        signed = struct.pack("!BBQH", 0, 0, millis, 1) + issuer_key_hash + _u24(tbs) + struct.pack("!H", 0)
        signature = _sign(self.ct_key, signed) if tbs else b"\x30\x00"
        sct = (
            b"\x00" + hashlib.sha256(_spki(self.ct_key)).digest() + struct.pack("!QH", millis, 0)
            + b"\x04\x03" + struct.pack("!H", len(signature)) + signature
        )  # fmt: skip
        item = struct.pack("!H", len(sct)) + sct
        return struct.pack("!H", len(item)) + item

    def bundle(self, digest: str, *, email: str, issuer: str, subject_digest: str | None = None) -> bytes:
        """The Sigstore bundle a keyless ``cosign sign`` of ``digest`` by ``email`` would make (its
        statement names ``subject_digest`` instead when given), logged in this log."""
        key = _key(f"{self.seed}:ephemeral:{email}:{digest}")
        cert = self.signing_certificate(key, email, issuer)
        statement = {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": "image", "digest": {"sha256": (subject_digest or digest).removeprefix("sha256:")}}],
            "predicateType": "https://sigstore.dev/cosign/sign/v1",
            "predicate": {},
        }
        payload = compact_json(statement)
        pae = f"DSSEv1 {len(IN_TOTO)} {IN_TOTO} {len(payload)} ".encode() + payload
        signature = _sign(key, pae)
        envelope = {"payload": _b64(payload), "payloadType": IN_TOTO, "signatures": [{"sig": _b64(signature)}]}
        pem = _b64(cert.public_bytes(serialization.Encoding.PEM))
        body = rfc8785.dumps(
            {
                "apiVersion": "0.0.1",
                "kind": "dsse",
                "spec": {
                    "envelopeHash": {
                        "algorithm": "sha256",
                        "value": hashlib.sha256(compact_json(envelope)).hexdigest(),
                    },
                    "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()},
                    "signatures": [{"signature": _b64(signature), "verifier": pem}],
                },
            }
        )
        return compact_json(
            {
                "mediaType": BUNDLE_MEDIA_TYPE,
                "verificationMaterial": {
                    "certificate": {"rawBytes": _b64(cert.public_bytes(serialization.Encoding.DER))},
                    "tlogEntries": [self._entry(body)],
                },
                "dsseEnvelope": envelope,
            }
        )

    def _entry(self, body: bytes) -> dict[str, Any]:
        """A one-entry log holding ``body``: its inclusion proof, checkpoint and signed entry timestamp."""
        log_id = hashlib.sha256(_spki(self.log_key)).digest()
        integrated = int(SIGNED_AT.timestamp())
        root = hashlib.sha256(b"\x00" + body).digest()  # a tree of one leaf: the root is the leaf's hash
        note = f"rekor.airlock.test - 1\n1\n{_b64(root)}\n"
        checkpoint = f"{note}\n\u2014 rekor.airlock.test {_b64(log_id[:4] + _sign(self.log_key, note.encode()))}\n"
        promise: dict[str, str | int] = {
            "body": _b64(body),
            "integratedTime": integrated,
            "logID": log_id.hex(),
            "logIndex": 0,
        }
        return {
            "logIndex": "0",
            "logId": {"keyId": _b64(log_id)},
            "kindVersion": {"kind": "dsse", "version": "0.0.1"},
            "integratedTime": str(integrated),
            "inclusionPromise": {"signedEntryTimestamp": _b64(_sign(self.log_key, rfc8785.dumps(promise)))},
            "inclusionProof": {
                "logIndex": "0",
                "rootHash": _b64(root),
                "treeSize": "1",
                "hashes": [],
                "checkpoint": {"envelope": checkpoint},
            },
            "canonicalizedBody": _b64(body),
        }


def push_bundle(
    registry_url: str, subject: PushedArtifact, bundle: bytes, auth: tuple[str, str] | None = None
) -> PushedArtifact:
    """Attach ``bundle`` to ``subject`` as an OCI 1.1 referrer (cosign's layout: the empty config, the
    bundle as the one layer, ``artifactType`` the bundle's media type), with the tag-schema index."""
    body = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": BUNDLE_MEDIA_TYPE,
        "config": descriptor(EMPTY_CONFIG, EMPTY_BLOB),
        "layers": [descriptor(BUNDLE_MEDIA_TYPE, bundle)],
        "subject": subject.descriptor(),
    }
    built = Built(OCI_MANIFEST, compact_json(body), [EMPTY_BLOB, bundle], artifact_type=BUNDLE_MEDIA_TYPE)
    with Client(registry_url, auth) as client:
        pushed = push_built(client, subject.repository, None, built)
        index_referrer(client, subject.repository, subject, pushed)
    return pushed


def _usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign, content_commitment=False, key_encipherment=False, data_encipherment=False,
        key_agreement=False, key_cert_sign=cert_sign, crl_sign=cert_sign, encipher_only=False, decipher_only=False,
    )  # fmt: skip


def _u24(data: bytes) -> bytes:
    return struct.pack("!I", len(data))[1:] + data


def _der_length(n: int) -> bytes:
    return (
        bytes([n]) if n < 0x80 else bytes([0x80 | ((n.bit_length() + 7) // 8)]) + n.to_bytes((n.bit_length() + 7) // 8)
    )


def _der_octets(data: bytes) -> bytes:
    return b"\x04" + _der_length(len(data)) + data


def _der_utf8(text: str) -> bytes:
    raw = text.encode()
    return b"\x0c" + _der_length(len(raw)) + raw
