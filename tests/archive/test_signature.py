"""Signed archives, pure: the signature member's place and size, the reader's rules for it, the three
refusals of check_trusted, and the keys (ECDSA deterministic, key ids, kinds refused)."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from airlock.archive import format as fmt
from airlock.archive.keys import SigningKey, TrustedKeys, load_public_key, load_signing_key
from airlock.archive.reader import ArchiveReader
from airlock.archive.signature import catalog_signature, check_trusted
from airlock.archive.writer import ArchiveWriter
from airlock.errors import (
    ArchiveError,
    BundleSignatureInvalid,
    BundleSignedByUntrustedKey,
    BundleUnsigned,
    SigningKeyError,
)
from airlock.oci.digest import Digest

BLOBS = (b"layer" * 300, b"config")
INDEX = b'{"schemaVersion":2,"manifests":[]}'


def _catalog() -> fmt.Catalog:
    return fmt.Catalog.model_validate(
        {
            "schemaVersion": 2,
            "mediaType": fmt.CATALOG_MEDIA_TYPE,
            "createdAt": "2026-01-01T00:00:00Z",
            "creator": "test",
            "source": {"registry": "https://src"},
            "artifacts": [],
            "index": {"digest": str(Digest.of(INDEX)), "size": len(INDEX)},
            "manifests": [],
            "blobs": [{"digest": str(Digest.of(b)), "size": len(b)} for b in BLOBS],
        }
    )


def _pem(
    key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey, password: bytes | None = None
) -> bytes:
    algorithm = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, algorithm)


def _public_pem(key: SigningKey) -> bytes:
    return key.public.key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture(scope="module")
def ecdsa() -> SigningKey:
    return load_signing_key(_pem(ec.generate_private_key(ec.SECP256R1())), passphrase=None, name="ec.pem")


@pytest.fixture(scope="module")
def eddsa() -> SigningKey:
    return load_signing_key(_pem(ed25519.Ed25519PrivateKey.generate()), passphrase=None, name="ed.pem")


def signed_archive(key: SigningKey | None, *, signature: bytes | None = None) -> tuple[fmt.Catalog, bytes, bytes]:
    """(catalog, its bytes, the archive) as the export writes it, signed by ``key`` (or with ``signature``)."""
    catalog = _catalog()
    if key is not None:
        catalog.signature = catalog_signature(key)
    raw = catalog.to_bytes()
    out = bytearray()
    w = ArchiveWriter(out.extend)
    w.add_bytes(fmt.CATALOG_NAME, raw)
    if key is not None:
        w.add_bytes(fmt.SIGNATURE_NAME, signature if signature is not None else key.sign(raw))
    w.add_bytes(fmt.LAYOUT_NAME, fmt.LAYOUT_BYTES)
    w.add_bytes(fmt.INDEX_NAME, INDEX)
    for name in fmt.DIR_NAMES:
        w.add_dir(name)
    for b in BLOBS:
        w.add_bytes(fmt.BLOB_PREFIX + Digest.of(b).hex, b)
    w.close()
    return catalog, raw, bytes(out)


@pytest.mark.parametrize("which", ["ecdsa", "eddsa"])
def test_signed_archive_reads_whole_and_its_size_counts_the_signature(
    which: str, request: pytest.FixtureRequest
) -> None:
    key: SigningKey = request.getfixturevalue(which)
    catalog, raw, data = signed_archive(key)
    assert len(data) == fmt.archive_size(len(raw), catalog) == fmt.archive_size(len(raw), _catalog()) + 1024
    reader = ArchiveReader(iter([data]))
    assert reader.signature == key.sign(raw) and reader.catalog_bytes == raw
    assert check_trusted("b.tar", reader.catalog, raw, reader.signature, TrustedKeys.of([key.public])) == key.key_id
    for _ in reader.blobs():
        pass
    assert reader.finish() == len(data)


def test_ecdsa_signs_deterministically_and_key_ids_are_spki_digests(ecdsa: SigningKey, eddsa: SigningKey) -> None:
    assert ecdsa.sign(b"catalog") == ecdsa.sign(b"catalog")  # RFC 6979: the same archive bytes every time
    assert len(eddsa.sign(b"catalog")) == 64
    for key in (ecdsa, eddsa):
        spki = key.public.key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        assert key.key_id == hashlib.sha256(spki).hexdigest()
        assert load_public_key(_public_pem(key), name="pub.pem").key_id == key.key_id


def test_reader_requires_the_signature_a_signed_catalog_announces(ecdsa: SigningKey) -> None:
    _, _, data = signed_archive(ecdsa)
    start = data.index(fmt.SIGNATURE_NAME.encode())  # its header, then one block of signature
    stripped = data[:start] + data[start + 1024 :]
    with pytest.raises(ArchiveError, match=r"is signed but member airlock-catalog\.sig is missing or out of order"):
        ArchiveReader(iter([stripped]))
    _, _, unsigned = signed_archive(None)
    header_end = unsigned.index(fmt.LAYOUT_NAME.encode())  # an unsigned catalog followed by a signature member
    smuggled = unsigned[:header_end] + data[start : start + 1024] + unsigned[header_end:]
    with pytest.raises(ArchiveError, match="oci-layout missing or out of order"):
        ArchiveReader(iter([smuggled]))


def test_check_trusted_names_each_refusal(ecdsa: SigningKey, eddsa: SigningKey) -> None:
    only_ed = TrustedKeys.of([eddsa.public])
    catalog, raw, _ = signed_archive(None)
    with pytest.raises(BundleUnsigned, match=f"^bundle b.tar is unsigned; the trusted keys \\({eddsa.key_id}\\)"):
        check_trusted("b.tar", catalog, raw, None, only_ed)
    catalog, raw, _ = signed_archive(ecdsa)
    with pytest.raises(BundleSignedByUntrustedKey, match=f"signed by key {ecdsa.key_id}, which is not a trusted key"):
        check_trusted("b.tar", catalog, raw, ecdsa.sign(raw), only_ed)
    altered = raw.replace(b'"creator":"test"', b'"creator":"TEST"')
    with pytest.raises(BundleSignatureInvalid, match="does not verify over its catalog \\(altered after signing\\)"):
        check_trusted("b.tar", catalog, altered, ecdsa.sign(raw), TrustedKeys.of([ecdsa.public]))
    # A catalog claiming the other algorithm for the same key id fails too, rather than being tried another way.
    catalog.signature = catalog.signature.model_copy(update={"algorithm": "ed25519"}) if catalog.signature else None
    with pytest.raises(BundleSignatureInvalid):
        check_trusted("b.tar", catalog, raw, ecdsa.sign(raw), TrustedKeys.of([ecdsa.public]))


def test_keys_of_other_kinds_and_bad_passphrases_are_refused() -> None:
    with pytest.raises(SigningKeyError, match="is a RSA key"):
        load_signing_key(_pem(rsa.generate_private_key(65537, 1024)), passphrase=None, name="rsa.pem")
    with pytest.raises(SigningKeyError, match="on secp384r1; airlock signs with P-256 or Ed25519 only"):
        load_signing_key(_pem(ec.generate_private_key(ec.SECP384R1())), passphrase=None, name="p384.pem")
    encrypted = _pem(ec.generate_private_key(ec.SECP256R1()), b"secret")
    with pytest.raises(SigningKeyError, match="is encrypted: give its passphrase"):
        load_signing_key(encrypted, passphrase=None, name="enc.pem")
    with pytest.raises(SigningKeyError, match="the passphrase does not decrypt it"):
        load_signing_key(encrypted, passphrase=b"wrong", name="enc.pem")
    assert load_signing_key(encrypted, passphrase=b"secret", name="enc.pem").algorithm == "ecdsa-p256-sha256"
    with pytest.raises(SigningKeyError, match="is not a PEM public key"):
        load_public_key(encrypted, name="enc.pem")
