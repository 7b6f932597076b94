"""Signing keys and trusted keys for signed bundles (pure: bytes in, bytes out; no I/O).

Two kinds of key, both checkable with ``openssl`` alone:

- ``ecdsa-p256-sha256``: ECDSA on P-256 over SHA-256 of the message; the signature is DER
  (``openssl dgst -sha256 -verify pub.pem -signature sig msg``). Signing is deterministic
  (RFC 6979), so the same catalog and key always make the same bytes, as the rest of the archive does.
- ``ed25519``: pure Ed25519 over the message; the signature is its 64 raw bytes
  (``openssl pkeyutl -verify -rawin -pubin -inkey pub.pem -sigfile sig -in msg``).

A key's **key id** is the SHA-256, in lower-case hex, of its public key's DER SubjectPublicKeyInfo:
``openssl pkey -pubin -in pub.pem -outform DER | sha256sum`` (or from the private key,
``openssl pkey -in key.pem -pubout -outform DER | sha256sum``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from airlock.errors import SigningKeyError

# cryptography is loaded when a key is: every transfer command imports this module, few sign.
if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    _PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
    _PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey

ECDSA_P256: Final = "ecdsa-p256-sha256"
ED25519: Final = "ed25519"
ALGORITHMS: Final = (ECDSA_P256, ED25519)
MAX_KEY_FILE = 64 * 1024  # a PEM key is a few hundred bytes; anything far larger is not one


def _algorithm(key: _PublicKey, name: str) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    if isinstance(key, ed25519.Ed25519PublicKey):
        return ED25519
    if isinstance(key.curve, ec.SECP256R1):
        return ECDSA_P256
    raise SigningKeyError(f"key {name} is an ECDSA key on {key.curve.name}; airlock signs with P-256 or Ed25519 only")


def _key_id(key: _PublicKey) -> str:
    from cryptography.hazmat.primitives import serialization

    spki = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()


@dataclass(frozen=True)
class PublicKey:
    """A trusted public key: its ``key_id`` (see the module docstring) and ``algorithm``."""

    key: _PublicKey
    key_id: str
    algorithm: str
    name: str  # where it came from (a file name, a secret URI), for messages

    def verifies(self, signature: bytes, message: bytes) -> bool:
        """Whether ``signature`` is this key's over ``message``."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519

        try:
            if isinstance(self.key, ed25519.Ed25519PublicKey):
                self.key.verify(signature, message)
            else:
                self.key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class SigningKey:
    """A private key that signs catalogs; ``public`` is its public half."""

    key: _PrivateKey
    public: PublicKey

    @property
    def key_id(self) -> str:
        return self.public.key_id

    @property
    def algorithm(self) -> str:
        return self.public.algorithm

    def sign(self, message: bytes) -> bytes:
        """The signature over ``message`` (DER for ECDSA, 64 raw bytes for Ed25519)."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519

        if isinstance(self.key, ed25519.Ed25519PrivateKey):
            return self.key.sign(message)
        return self.key.sign(message, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))


def load_signing_key(pem: bytes, *, passphrase: bytes | None, name: str) -> SigningKey:
    """The private key in ``pem`` (PKCS#8 or SEC1, optionally encrypted with ``passphrase``).

    Raises:
        SigningKeyError: not a PEM private key, encrypted without a passphrase, a wrong passphrase,
            or neither ECDSA P-256 nor Ed25519. ``name`` (the file) is what the message names.
    """
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    if len(pem) > MAX_KEY_FILE:
        raise SigningKeyError(f"sign key {name} is {len(pem)} bytes: not a PEM private key")
    try:
        key = serialization.load_pem_private_key(pem, password=passphrase or None)
    except TypeError:
        # The cryptography library says which way round: encrypted without a passphrase, or the reverse.
        if passphrase:
            raise SigningKeyError(f"sign key {name} is not encrypted, but a passphrase was given") from None
        raise SigningKeyError(
            f"sign key {name} is encrypted: give its passphrase with --sign-key-passphrase-file or "
            "AIRLOCK_SIGN_KEY_PASSPHRASE"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        if passphrase and b"ENCRYPTED" in pem:
            raise SigningKeyError(f"sign key {name}: the passphrase does not decrypt it") from None
        raise SigningKeyError(f"sign key {name} is not a PEM private key (ECDSA P-256 or Ed25519)") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        kind = type(key).__name__.removeprefix("_").replace("PrivateKey", "")
        raise SigningKeyError(f"sign key {name} is a {kind} key; airlock signs with ECDSA P-256 or Ed25519 only")
    public = key.public_key()
    return SigningKey(key, PublicKey(public, _key_id(public), _algorithm(public, name), name))


def load_public_key(pem: bytes, *, name: str) -> PublicKey:
    """The public key in ``pem`` (a ``-----BEGIN PUBLIC KEY-----`` SubjectPublicKeyInfo).

    Raises:
        SigningKeyError: not a PEM public key, or neither ECDSA P-256 nor Ed25519.
    """
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    try:
        key = serialization.load_pem_public_key(pem[:MAX_KEY_FILE])
    except (ValueError, UnsupportedAlgorithm):
        raise SigningKeyError(f"trusted key {name} is not a PEM public key (BEGIN PUBLIC KEY)") from None
    if not isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
        raise SigningKeyError(f"trusted key {name} is neither an ECDSA P-256 nor an Ed25519 public key")
    return PublicKey(key, _key_id(key), _algorithm(key, name), name)


@dataclass(frozen=True)
class TrustedKeys:
    """The public keys a bundle's signature must come from, by key id (several: key rotation)."""

    by_id: dict[str, PublicKey]

    @classmethod
    def of(cls, keys: Iterable[PublicKey]) -> TrustedKeys:
        return cls({k.key_id: k for k in keys})

    @property
    def ids(self) -> list[str]:
        return sorted(self.by_id)
