"""Signed bundles: what the catalog's ``signature`` and the ``airlock-catalog.sig`` member mean, and
the check of a bundle against trusted keys (layout in :mod:`airlock.archive.format`, keys in
:mod:`airlock.archive.keys`).

The signature is over the catalog member's exact bytes. The catalog names every other member by
digest and size, and the reader checks each member against it as it streams, so a valid signature
over the catalog covers the whole bundle: a changed catalog fails the signature here, before any
blob is read; a changed blob fails its digest as it streams, and is never tagged.
"""

from __future__ import annotations

from airlock.archive.format import Catalog, CatalogSignature
from airlock.archive.keys import SigningKey, TrustedKeys
from airlock.errors import BundleSignatureInvalid, BundleSignedByUntrustedKey, BundleUnsigned


def catalog_signature(key: SigningKey) -> CatalogSignature:
    """The catalog's ``signature`` field for a bundle ``key`` signs."""
    return CatalogSignature(keyId=key.key_id, algorithm=key.algorithm)


def signature_json(catalog: Catalog, *, trusted: bool = False) -> dict[str, object] | None:
    """``{"keyId", "algorithm"}`` of a signed catalog (what export, import and inspect show), with
    ``"trusted": true`` once :func:`check_trusted` passed; None for an unsigned one."""
    sig = catalog.signature
    if sig is None:
        return None
    return {"keyId": sig.key_id, "algorithm": sig.algorithm, **({"trusted": True} if trusted else {})}


def check_trusted(
    name: str, catalog: Catalog | None, catalog_bytes: bytes, signature: bytes | None, trusted: TrustedKeys
) -> str:
    """Check that the bundle ``name`` (its URI, for messages) is signed by one of ``trusted``;
    return the signing key's id. ``catalog_bytes`` is its catalog member, ``signature`` the
    ``airlock-catalog.sig`` member (None when there is none: the reader requires it of a signed catalog).
    ``catalog`` None: the blob has no airlock catalog (an OCI layout written by another tool), so no signature.

    Raises:
        BundleUnsigned: no signature.
        BundleSignedByUntrustedKey: signed by a key id that is not trusted.
        BundleSignatureInvalid: the signature (or its stated algorithm) does not match the trusted
            key of that id over the catalog: the catalog or the signature was altered after signing.
    """
    trusted_ids = ", ".join(trusted.ids)
    if catalog is None or catalog.signature is None or signature is None:
        raise BundleUnsigned(
            f"bundle {name} is unsigned; the trusted keys ({trusted_ids}) accept only bundles signed by one of them"
        )
    key_id = catalog.signature.key_id
    key = trusted.by_id.get(key_id)
    if key is None:
        raise BundleSignedByUntrustedKey(
            f"bundle {name} is signed by key {key_id}, which is not a trusted key (trusted: {trusted_ids})"
        )
    if catalog.signature.algorithm != key.algorithm or not key.verifies(signature, catalog_bytes):
        raise BundleSignatureInvalid(
            f"bundle {name}: its {catalog.signature.algorithm} signature by key {key_id} does not verify over its "
            "catalog (altered after signing)"
        )
    return key_id
