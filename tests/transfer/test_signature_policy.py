"""The signature policy's pure checks, without registries: key kinds, identities, attachment tags,
and keyless bundles changed after signing (the CLI tests cover the formats end to end)."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from airlock.archive.format import CatalogArtifact
from airlock.errors import UsageError
from airlock.oci.digest import Digest
from airlock.oci.manifest import OCI_MANIFEST, Manifest
from airlock.oci.signatures import SIGNATURE_ANNOTATION, SIMPLE_SIGNING, attached_to
from airlock.testing.cosign import simple_signing_payload
from airlock.testing.keyless import TestSigstore
from airlock.transfer.graph import Closure
from airlock.transfer.keyless import KeylessPolicy, verify_bundle
from airlock.transfer.publish import ArtifactEntry
from airlock.transfer.signature_policy import Names, SignaturePolicy, check

IMAGE = Digest.of(b"an image manifest")
NAMES = Names.of("http://src.example:5000", "https://dst.example")


def _artifact(repository: str = "team/app") -> ArtifactEntry:
    entry = CatalogArtifact(reference=f"{repository}:1", repository=repository, tag="1", digest=str(IMAGE),
                            mediaType=OCI_MANIFEST, size=1)  # fmt: skip
    raw = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": _desc(b"{}"), "layers": []}).encode()
    return ArtifactEntry(entry, IMAGE, closure=Closure(manifests=[Manifest.parse(raw, media_type=None, where="t")]))


def _desc(data: bytes, media_type: str = "application/vnd.oci.empty.v1+json", **extra: object) -> dict[str, object]:
    return {"mediaType": media_type, "digest": str(Digest.of(data)), "size": len(data), **extra}


def _signature(payload: bytes, signature: bytes, repository: str = "team/app") -> ArtifactEntry:
    layer = _desc(payload, SIMPLE_SIGNING, annotations={SIGNATURE_ANNOTATION: base64.b64encode(signature).decode()})
    raw = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": _desc(b"{}"), "layers": [layer]})
    manifest = Manifest.parse(raw.encode(), media_type=None, where="t")
    tag = f"sha256-{IMAGE.hex}.sig"
    entry = CatalogArtifact(reference=f"{repository}:{tag}", repository=repository, tag=tag,
                            digest=str(manifest.digest), mediaType=OCI_MANIFEST, size=manifest.size)  # fmt: skip
    return ArtifactEntry(entry, manifest.digest, closure=Closure(manifests=[manifest]))


def _pem(key: ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _refusals(policy: SignaturePolicy, payload: bytes, signature: bytes) -> list[str]:
    art, sig = _artifact(), _signature(payload, signature)
    return [str(e) for _, e in check(policy, [art, sig], {Digest.of(payload): payload}, NAMES)]


def test_ed25519_and_rsa_keys_verify_as_cosign_signs_with_them() -> None:
    payload = simple_signing_payload(str(IMAGE), "src.example:5000/team/app")
    ed = ed25519.Ed25519PrivateKey.generate()
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    policy = SignaturePolicy.of([("ed", _pem(ed)), ("rsa", _pem(rsa_key))], None)
    assert policy is not None
    assert _refusals(policy, payload, ed.sign(payload)) == []
    assert _refusals(policy, payload, rsa_key.sign(payload, padding.PKCS1v15(), hashes.SHA256())) == []
    assert "signature not by a trusted key" in _refusals(policy, payload, ed.sign(payload + b" "))[0]


@pytest.mark.parametrize(
    ("identity", "accepted"),
    [
        ("src.example:5000/team/app", True),  # the source repository
        ("src.example:5000/team/app:1", True),  # with a tag, as some signers write it
        ("dst.example/team/app", True),  # the target's name for it
        ("src.example:5000/team/other", False),
        ("docker.io/team/app", False),
    ],
)
def test_identity_names_the_source_or_the_target_repository(identity: str, accepted: bool) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    policy = SignaturePolicy.of([("k", _pem(key))], None)
    assert policy is not None
    payload = simple_signing_payload(str(IMAGE), identity)
    refusals = _refusals(policy, payload, key.sign(payload))
    assert refusals == [] if accepted else "refused: identity" in refusals[0]


def test_attachment_tags_are_the_referrers_fallback_and_cosigns_tags_only() -> None:
    hexa = "a" * 64
    assert attached_to(f"sha256-{hexa}") == attached_to(f"sha256-{hexa}.sig") == f"sha256:{hexa}"
    assert attached_to(f"sha256-{hexa}.att") == attached_to(f"sha256-{hexa}.sbom") == f"sha256:{hexa}"
    for tag in (None, "1.0", f"sha256-{hexa}.sig.bak", f"sha256-{hexa[:-1]}.sig", f"v-sha256-{hexa}"):
        assert attached_to(tag) is None


def test_a_public_key_that_is_a_private_key_or_garbage_is_a_usage_error() -> None:
    private = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    for pem in (private, b"not a key"):
        with pytest.raises(UsageError, match=r"^cosign\.pub: not a PEM public key"):
            SignaturePolicy.of([("cosign.pub", pem)], None)


def test_a_keyless_bundle_changed_after_signing_is_refused() -> None:
    sigstore = TestSigstore()
    policy = KeylessPolicy.of(sigstore.trusted_root(), "signer@example.com", "https://issuer.example", where="t")
    bundle = json.loads(sigstore.bundle(str(IMAGE), email="signer@example.com", issuer="https://issuer.example"))
    assert verify_bundle(policy, json.dumps(bundle).encode(), IMAGE) is None
    # Another statement in the envelope (naming another image) under the same signature.
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    statement["subject"][0]["digest"]["sha256"] = Digest.of(b"another image").hex
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    why = verify_bundle(policy, json.dumps(bundle).encode(), Digest.of(b"another image"))
    assert why is not None and why.startswith("Sigstore bundle refused: ")
    # A bundle of another digest, valid in itself, is not this image's.
    other = sigstore.bundle(str(IMAGE), email="signer@example.com", issuer="https://issuer.example",
                            subject_digest=str(Digest.of(b"x")))  # fmt: skip
    assert f"≠ artifact {IMAGE}" in (verify_bundle(policy, other, IMAGE) or "")


def test_a_trusted_root_that_is_not_one_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match=r"^trusted root: not a Sigstore trusted root"):
        KeylessPolicy.of(b'{"mediaType": "nope"}', "a@example.com", "https://issuer.example", where="t")
    with pytest.raises(UsageError, match="needs --certificate-identity and --certificate-oidc-issuer"):
        KeylessPolicy.of(TestSigstore().trusted_root(), None, "https://issuer.example", where="t")


def test_a_failed_signature_artifact_still_vouches_for_its_image() -> None:
    # A .sig tag in conflict in the target fails on its own; what it carries is still a valid signature.
    key = ed25519.Ed25519PrivateKey.generate()
    policy = SignaturePolicy.of([("k", _pem(key))], None)
    assert policy is not None
    payload = simple_signing_payload(str(IMAGE), None)
    art, sig = _artifact(), _signature(payload, key.sign(payload))
    sig.error = "tag already points to sha256:… in the target registry"
    assert check(policy, [art, sig], {Digest.of(payload): payload}, NAMES) == []
    assert "payload sha256:" in str(check(policy, [art, sig], {}, NAMES)[0][1])  # not captured: no evidence


def test_an_attachment_whose_subject_the_bundle_does_not_carry_is_refused() -> None:
    # Anything tagged sha256-<hex>.sig counts as an attachment, let in with the artifact it belongs
    # to: without that artifact in the bundle nothing has checked it, so it is refused, named.
    key = ed25519.Ed25519PrivateKey.generate()
    policy = SignaturePolicy.of([("k", _pem(key))], None)
    assert policy is not None
    payload = simple_signing_payload(str(IMAGE), None)
    art, sig = _artifact(), _signature(payload, key.sign(payload))
    assert check(policy, [art, sig], {Digest.of(payload): payload}, NAMES) == []
    ((refused, error),) = check(policy, [sig], {Digest.of(payload): payload}, NAMES)
    assert refused is sig
    assert f"attached to {IMAGE}, which the bundle does not carry" in str(error), error
