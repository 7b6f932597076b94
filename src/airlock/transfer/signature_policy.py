"""Image signatures required at import (``--require-signed-by``, ``--trusted-root``): the policy,
and the check of each artifact against the signatures its bundle carries.

Pure: the importer hands over the archive's manifests and the signature payloads it captured as
they streamed by (:class:`PayloadCapture`); nothing here reads storage or a registry, so the check
is the same offline as online.

An artifact is *attached* when it is a referrer (its catalog entry has a ``subject``) or tagged by
the tag schema of what is attached to another manifest (``sha256-<hex>``, ``sha256-<hex>.sig``,
``.att``, ``.sbom``); every other artifact needs one valid signature:

- a simple-signing layer (cosign's format, :mod:`airlock.oci.signatures`) of the manifest tagged
  ``sha256-<hex>.sig`` in its repository, or of a referrer of it: the layer's bytes hash to its
  descriptor's digest, its signature verifies with one of the trusted keys, its
  ``docker-manifest-digest`` is the artifact's digest, and its ``docker-reference``, when present,
  names the artifact's source repository or its target (after ``--rename``);
- or, with a trusted root, a Sigstore bundle attached as a referrer (:mod:`airlock.transfer.keyless`).

A refused artifact's attachments are refused with it, so nothing of it is tagged.
"""

from __future__ import annotations

import base64
import binascii
import json
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airlock.errors import AirlockError, SignatureRefused, UsageError
from airlock.oci.digest import Digest
from airlock.oci.manifest import Descriptor, Manifest
from airlock.oci.signatures import (
    SIGNATURE_ANNOTATION,
    SIGSTORE_BUNDLE_TYPES,
    SIMPLE_SIGNING,
    SIMPLE_SIGNING_TYPE,
    attached_to,
    cosign_signature_tag,
)
from airlock.transfer.keyless import KeylessPolicy, verify_bundle
from airlock.transfer.publish import ArtifactEntry

# A signature payload (simple signing, a few hundred bytes; a bundle with its certificate chain,
# a few KiB) is held in memory to be checked: larger layers are not taken for signatures.
MAX_PAYLOAD = 1024 * 1024
MAX_KEYS = 64

# cryptography is loaded when a key is: every transfer command imports this module, few check signatures.
if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    TrustedPublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey


@dataclass(frozen=True)
class TrustedKey:
    """A public key signatures may be made with, named by its id: ``sha256:`` and the first 16 hex
    digits of the SHA-256 of its DER SubjectPublicKeyInfo."""

    key: TrustedPublicKey
    keyid: str

    @classmethod
    def from_pem(cls, pem: bytes, *, where: str) -> TrustedKey:
        """Raises: UsageError: ``pem`` is not a PEM public key of ECDSA, Ed25519 or RSA (``where`` names it)."""
        from cryptography.exceptions import UnsupportedAlgorithm
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

        try:
            key = serialization.load_pem_public_key(pem)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise UsageError(f"{where}: not a PEM public key (-----BEGIN PUBLIC KEY-----)") from None
        if not isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey):
            raise UsageError(f"{where}: a {type(key).__name__}; cosign keys are ECDSA, Ed25519 or RSA")
        der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return cls(key, "sha256:" + Digest.of(der).hex[:16])

    def verifies(self, signature: bytes, payload: bytes) -> bool:
        """Whether ``signature`` is this key's over ``payload`` (as cosign signs: SHA-256 with ECDSA
        and RSA PKCS#1 v1.5; Ed25519 over the bytes themselves)."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding

        try:
            if isinstance(self.key, ec.EllipticCurvePublicKey):
                self.key.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
            elif isinstance(self.key, ed25519.Ed25519PublicKey):
                self.key.verify(signature, payload)
            else:
                self.key.verify(signature, payload, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class SignaturePolicy:
    """What an import requires of each artifact: a signature by one of ``keys``, or a Sigstore
    bundle that ``keyless`` accepts. At least one of the two is set."""

    keys: tuple[TrustedKey, ...] = ()
    keyless: KeylessPolicy | None = None

    @classmethod
    def of(cls, pems: Sequence[tuple[str, bytes]], keyless: KeylessPolicy | None) -> SignaturePolicy | None:
        """The policy of (name, PEM) keys and a keyless policy; None when neither is given.

        Raises:
            UsageError: a key that does not load (named), or more than MAX_KEYS keys.
        """
        if len(pems) > MAX_KEYS:
            raise UsageError(f"at most {MAX_KEYS} trusted keys, got {len(pems)}")
        keys = tuple(TrustedKey.from_pem(pem, where=name) for name, pem in pems)
        return cls(keys, keyless) if keys or keyless else None

    @classmethod
    def from_document(cls, doc: Mapping[str, Any] | None, *, where: str) -> SignaturePolicy | None:
        """From an ImportPipeline's ``properties.signaturePolicy`` (see :func:`policy_document`).

        Raises:
            UsageError: a key or trusted root that does not load, an identity without a root
                (``where`` names the pipeline).
        """
        if not doc:
            return None
        keys = doc.get("requireSignedBy") or []
        root = doc.get("trustedRoot")
        identity, issuer = doc.get("certificateIdentity"), doc.get("certificateOidcIssuer")
        if (identity or issuer) and root is None:
            raise UsageError(f"{where}: certificateIdentity and certificateOidcIssuer go with trustedRoot")
        pems = [(f"{where} requireSignedBy[{i}]", str(pem).encode()) for i, pem in enumerate(keys)]
        keyless = None
        if root is not None:
            raw = json.dumps(root).encode()
            keyless = KeylessPolicy.of(raw, identity, issuer, where=f"{where} trustedRoot")
        return cls.of(pems, keyless)


@dataclass
class PayloadCapture:
    """The signature payloads of an archive, kept as the import's pass streams them by.

    ``wanted`` is what :func:`payloads_wanted` found in the manifests; :meth:`tee` passes every
    other blob through untouched. The bytes kept are checked against their digest by the policy
    (the upload verifies them too, but on another thread and maybe later).
    """

    wanted: set[Digest]
    payloads: dict[Digest, bytes] = field(default_factory=dict)

    def tee(self, digest: Digest, chunks: Iterator[memoryview]) -> Iterator[memoryview]:
        if digest not in self.wanted:
            return chunks
        return self._kept(digest, chunks)

    def _kept(self, digest: Digest, chunks: Iterator[memoryview]) -> Iterator[memoryview]:
        parts: list[bytes] = []
        for piece in chunks:
            parts.append(bytes(piece))  # the reader may reuse its buffer
            yield piece
        self.payloads[digest] = b"".join(parts)


def policy_document(
    pems: Sequence[bytes], trusted_root: bytes | None, identity: str | None, issuer: str | None
) -> dict[str, Any]:
    """An ImportPipeline's ``properties.signaturePolicy`` (airlock's extension): the PEM keys as text,
    the trusted root as the JSON object it is, cosign's names for the identity and issuer.

    Raises:
        UsageError: the trusted root is not JSON.
    """
    doc: dict[str, Any] = {"requireSignedBy": [p.decode("ascii", "replace") for p in pems]}
    if trusted_root is not None:
        try:
            doc["trustedRoot"] = json.loads(trusted_root)
        except ValueError:
            raise UsageError("trusted root: not JSON") from None
        doc["certificateIdentity"], doc["certificateOidcIssuer"] = identity, issuer
    return doc


def attached(art: ArtifactEntry) -> str | None:
    """The digest an attached artifact (referrer, attachment tag) belongs to; None for an artifact."""
    return art.entry.subject or attached_to(art.entry.tag)


def payloads_wanted(artifacts: Sequence[ArtifactEntry]) -> set[Digest]:
    """The layers of attached artifacts that may be signatures (simple signing, Sigstore bundles)."""
    wanted: set[Digest] = set()
    for art in artifacts:
        if art.closure is None or attached(art) is None:
            continue
        wanted.update(layer.digest for layer in signature_layers(art.closure.top) if layer.size <= MAX_PAYLOAD)
    return wanted


def signature_layers(manifest: Manifest) -> list[Descriptor]:
    """The layers of ``manifest`` that are signatures: simple-signing payloads, Sigstore bundles."""
    return [layer for layer in manifest.blobs[1:] if _kind(layer.media_type)]


def _kind(media_type: str) -> str | None:
    if media_type == SIMPLE_SIGNING:
        return "simple-signing"
    if media_type in SIGSTORE_BUNDLE_TYPES:
        return "bundle"
    return None


@dataclass(frozen=True)
class Names:
    """Where the artifacts come from and go: the source and target registries' hosts."""

    source_host: str
    target_host: str

    @classmethod
    def of(cls, source_registry: str, target_registry: str) -> Names:
        return cls(_host(source_registry), _host(target_registry))


def check(
    policy: SignaturePolicy,
    artifacts: Sequence[ArtifactEntry],
    payloads: dict[Digest, bytes],
    names: Names,
    known: Sequence[ArtifactEntry] = (),
) -> list[tuple[ArtifactEntry, SignatureRefused]]:
    """The artifacts the policy refuses, each with its one-line error, in the order given.

    Artifacts that already failed are left alone; an attached artifact is refused only with the
    artifact it belongs to. ``known`` are attachments already in the target (a delta left them out,
    :mod:`airlock.transfer.signature_import`): evidence, never refused. A failed attachment still counts
    as evidence (a `.sig` tag in conflict), its payloads hashed against their descriptors all the same.
    """
    signatures: dict[tuple[str, str], list[ArtifactEntry]] = {}
    for art in [*artifacts, *known]:
        owner = attached(art)
        if owner is not None and art.closure is not None:
            signatures.setdefault((art.entry.repository, owner), []).append(art)
    refused: list[tuple[ArtifactEntry, SignatureRefused]] = []
    refused_digests: dict[tuple[str, str], str] = {}
    for art in artifacts:
        if art.error is not None or art.closure is None or attached(art) is not None:
            continue
        key = (art.entry.repository, str(art.digest))
        why = _why_refused(policy, art, signatures.get(key, []), payloads, names)
        if why is not None:
            refused.append((art, SignatureRefused(f"artifact {art.entry.reference} ({art.digest}) refused: {why}")))
            refused_digests[key] = art.entry.reference
    carried = {(a.entry.repository, str(a.digest)) for a in artifacts if attached(a) is None}
    for art in artifacts:
        owner = attached(art)
        if owner is None or art.error is not None:
            continue
        if (art.entry.repository, owner) in refused_digests:
            subject = refused_digests[(art.entry.repository, owner)]
            refused.append((art, SignatureRefused(f"artifact {art.entry.reference}: attached to {subject}, refused")))
        elif (art.entry.repository, owner) not in carried:
            # An attachment is let in on the strength of the artifact it belongs to; one whose
            # subject is not here is checked by nothing (any image could be tagged sha256-<hex>.sig).
            refused.append((art, SignatureRefused(
                f"artifact {art.entry.reference} ({art.digest}) refused: attached to {owner}, which the bundle "
                "does not carry, so nothing vouches for it; export it with the artifact it belongs to"
            )))  # fmt: skip
    return refused


def enforce(
    policy: SignaturePolicy,
    artifacts: Sequence[ArtifactEntry],
    payloads: dict[Digest, bytes],
    names: Names,
    *,
    fail: Callable[[ArtifactEntry, AirlockError], None],
    keep_going: bool,
    known: Sequence[ArtifactEntry] = (),
) -> None:
    """Refuse what :func:`check` refuses: with ``keep_going`` each refused artifact goes to ``fail``
    (and gets no tag); without it, one error naming the first and how many more were refused.

    Raises:
        SignatureRefused: without ``keep_going``, when any artifact is refused (nothing is tagged).
    """
    refused = check(policy, artifacts, payloads, names, known)
    if refused and not keep_going:
        more = len({id(a) for a, _ in refused if attached(a) is None}) - 1
        tail = f" (and {more} more artifact(s) refused)" if more > 0 else ""
        raise SignatureRefused(f"{refused[0][1]}{tail}; no tag was written")
    for art, error in refused:
        fail(art, error)


def _why_refused(
    policy: SignaturePolicy,
    art: ArtifactEntry,
    attachments: list[ArtifactEntry],
    payloads: dict[Digest, bytes],
    names: Names,
) -> str | None:
    """None when one signature is valid; else why none is (each distinct reason once)."""
    reasons: list[str] = []
    found = 0
    for sig in attachments:
        assert sig.closure is not None
        for layer in signature_layers(sig.closure.top):
            kind = _kind(layer.media_type)
            found += 1
            payload = payloads.get(layer.digest)
            if payload is None or Digest.of(payload) != layer.digest:
                reason: str | None = f"signature payload {layer.digest} is missing or corrupt"
            elif kind == "bundle":
                if policy.keyless is None:
                    reason = "a Sigstore bundle, but no --trusted-root to verify it with"
                elif sig.entry.subject is None:
                    reason = "a Sigstore bundle outside the referrers"
                else:
                    reason = verify_bundle(policy.keyless, payload, art.digest)
            elif not policy.keys:
                reason = "a cosign key-based signature, but no --require-signed-by key"
            else:
                reason = _simple_signing(policy.keys, payload, layer.annotations, art, names)
            if reason is None:
                return None
            if reason not in reasons:
                reasons.append(reason)
    if not found:
        where = f"no tag {cosign_signature_tag(art.digest)} and no signature referrer in the bundle"
        return f"no signature ({where}; export with --include-referrers)"
    return "; ".join(reasons)


def _simple_signing(
    keys: Sequence[TrustedKey], payload: bytes, annotations: Mapping[str, str], art: ArtifactEntry, names: Names
) -> str | None:
    encoded = annotations.get(SIGNATURE_ANNOTATION)
    if not encoded:
        return f"a simple-signing layer without the {SIGNATURE_ANNOTATION} annotation"
    try:
        signature = base64.b64decode(encoded, validate=True)
    except binascii.Error:
        return f"the {SIGNATURE_ANNOTATION} annotation is not base64"
    if not any(k.verifies(signature, payload) for k in keys):
        return f"signature not by a trusted key ({', '.join(k.keyid for k in keys)}), or tampered with"
    # Signed by a trusted key: the payload is the signer's word; it must be about this artifact.
    try:
        doc = json.loads(payload)
        critical = doc["critical"]
        signed_digest = critical["image"]["docker-manifest-digest"]
        kind = critical["type"]
        identity = (critical.get("identity") or {}).get("docker-reference")
    except (ValueError, TypeError, KeyError, AttributeError):
        return "a signed payload that is not simple signing"
    if kind != SIMPLE_SIGNING_TYPE:
        return f"a signed payload of type {str(kind)[:80]!r}, not {SIMPLE_SIGNING_TYPE!r}"
    if signed_digest != str(art.digest):
        return f"payload digest {str(signed_digest)[:80]} ≠ artifact {art.digest}"
    if identity:
        expected = _expected_identities(art, names)
        if _normalized(str(identity)) not in expected:
            return f"identity {str(identity)[:255]} ≠ {' or '.join(expected)}"
    return None


def _expected_identities(art: ArtifactEntry, names: Names) -> list[str]:
    """The names a signature may give the artifact: where it was exported from, then where it goes."""
    source = _normalized(f"{names.source_host}/{art.source_repository or art.entry.repository}")
    target = _normalized(f"{names.target_host}/{art.entry.repository}")
    return [source] if source == target else [source, target]


def _normalized(reference: str) -> str:
    """``host/repository`` of a docker reference, its tag or digest dropped; Docker Hub's names in one form."""
    name = reference.split("@", 1)[0]
    head, _, tail = name.rpartition("/")
    if ":" in tail:
        name = f"{head}/{tail.rsplit(':', 1)[0]}" if head else tail.rsplit(":", 1)[0]
    first, _, rest = name.partition("/")
    if not rest or ("." not in first and ":" not in first and first != "localhost"):
        first, rest = "docker.io", name
    if first in ("index.docker.io", "registry-1.docker.io"):
        first = "docker.io"
    if first == "docker.io" and "/" not in rest:
        rest = f"library/{rest}"
    return f"{first}/{rest}"


def _host(registry: str) -> str:
    parts = urllib.parse.urlsplit(registry if "://" in registry else f"https://{registry}")
    return parts.netloc or registry
