"""Keyless signatures: Sigstore bundles verified offline against a trusted root
(``--trusted-root trusted_root.json --certificate-identity … --certificate-oidc-issuer …``).

The ``sigstore`` library does the verification: the Fulcio-style certificate chains to the
trusted root's certificate authority at the time the log recorded, carries an SCT of one of its
CT logs, names the identity and issuer asked for; the transparency-log entry's inclusion proof,
checkpoint and signed entry timestamp verify with the root's log keys; the signature verifies with
the certificate's key and matches the log entry. Nothing is fetched: the trusted root is given
whole, and the bundle carries its log entry.

What the bundle signs must be the artifact: a DSSE envelope holding an in-toto statement with the
artifact's digest among its subjects (cosign's bundles), or a message signature over the manifest
itself (its SHA-256 is the artifact's digest).

``sigstore`` is imported only when a policy is built, so imports without one do not load it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from airlock.errors import UsageError
from airlock.oci.digest import Digest

if TYPE_CHECKING:
    from sigstore.verify import Verifier

IN_TOTO = "application/vnd.in-toto+json"
MAX_TRUSTED_ROOT = 4 * 1024 * 1024


@dataclass(frozen=True)
class KeylessPolicy:
    """A trusted root (its JSON, as given) and the identity and issuer a signing certificate must name."""

    trusted_root: bytes
    identity: str
    issuer: str

    @classmethod
    def of(cls, trusted_root: bytes, identity: str | None, issuer: str | None, *, where: str) -> KeylessPolicy:
        """Raises: UsageError: identity or issuer missing, or ``trusted_root`` is not a Sigstore trusted root."""
        if not identity or not issuer:
            raise UsageError(f"{where} needs --certificate-identity and --certificate-oidc-issuer (as cosign's)")
        if len(trusted_root) > MAX_TRUSTED_ROOT:
            raise UsageError(f"{where}: over {MAX_TRUSTED_ROOT} bytes, not a trusted root")
        policy = cls(trusted_root, identity, issuer)
        policy.verifier()  # refuse a bad root now, not at the first artifact
        return policy

    def verifier(self) -> Verifier:
        """Raises: UsageError: the trusted root does not parse or lacks a CA or log."""
        from pydantic import ValidationError
        from sigstore.errors import Error
        from sigstore.models import TrustedRoot
        from sigstore.verify import Verifier
        from sigstore_models.trustroot import v1 as trustroot_v1

        try:
            root = TrustedRoot(trustroot_v1.TrustedRoot.from_json(self.trusted_root))
            return Verifier(trusted_root=root)
        except (Error, ValidationError, ValueError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise UsageError(f"trusted root: not a Sigstore trusted root ({first[:200]})") from None


def verify_bundle(policy: KeylessPolicy, raw: bytes, digest: Digest) -> str | None:
    """None when the Sigstore bundle ``raw`` verifies under ``policy`` and signs ``digest``; else why not."""
    from sigstore.errors import Error
    from sigstore.hashes import Hashed
    from sigstore.models import Bundle
    from sigstore.verify.policy import Identity
    from sigstore_models.common.v1 import HashAlgorithm

    try:
        bundle = Bundle.from_json(raw)
    except (Error, ValueError) as exc:
        return f"a Sigstore bundle that does not parse ({_line(exc)})"
    identity = Identity(identity=policy.identity, issuer=policy.issuer)
    verifier = policy.verifier()
    try:
        if bundle._dsse_envelope is not None:  # the public API has no accessor; verify_dsse needs one
            payload_type, payload = verifier.verify_dsse(bundle, identity)
            return _statement_names(payload_type, payload, digest)
        manifest = Hashed(algorithm=HashAlgorithm.SHA2_256, digest=bytes.fromhex(digest.hex))
        verifier.verify_artifact(manifest, bundle, identity)
    except Error as exc:
        return f"Sigstore bundle refused: {_line(exc)}"
    return None


def _statement_names(payload_type: str, payload: bytes, digest: Digest) -> str | None:
    if payload_type != IN_TOTO:
        return f"a Sigstore bundle of {payload_type[:80]!r}, not an in-toto statement"
    try:
        subjects = json.loads(payload)["subject"]
        signed = {str(s["digest"]["sha256"]) for s in subjects}
    except (ValueError, TypeError, KeyError):
        return "a Sigstore bundle whose statement has no sha256 subjects"
    if digest.hex not in signed:
        named = f"sha256:{sorted(signed)[0][:64]}" if signed else "no digest"
        return f"Sigstore bundle's statement names {named} ≠ artifact {digest}"
    return None


def _line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]
