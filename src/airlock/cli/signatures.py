"""``airlock import``'s signature flags (``--require-signed-by``, ``--trusted-root``,
``--certificate-identity``, ``--certificate-oidc-issuer``, named as cosign names them) and the
policy they make (:mod:`airlock.transfer.signature_policy`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from airlock.errors import UsageError
from airlock.transfer.keyless import MAX_TRUSTED_ROOT, KeylessPolicy
from airlock.transfer.signature_policy import SignaturePolicy, policy_document

MAX_KEY_FILE = 64 * 1024

RequireSignedByOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--require-signed-by",
        metavar="PUB.pem",
        help="Import only artifacts signed (cosign key-based signature, carried in the bundle) by this public "
        "key; repeatable: any of the keys. The others are refused by name and not tagged.",
    ),
]
TrustedRootOpt = Annotated[
    str | None,
    typer.Option(
        "--trusted-root",
        metavar="trusted_root.json",
        help="Sigstore trusted root (CA, transparency and CT log keys): accept keyless Sigstore bundles attached "
        "as referrers, verified offline; needs --certificate-identity and --certificate-oidc-issuer.",
    ),
]
CertificateIdentityOpt = Annotated[
    str | None,
    typer.Option("--certificate-identity", help="With --trusted-root: the signer's identity (certificate SAN)."),
]
CertificateIssuerOpt = Annotated[
    str | None,
    typer.Option("--certificate-oidc-issuer", help="With --trusted-root: the OIDC issuer of the signer's identity."),
]


def signature_policy(
    keys: list[str] | None, trusted_root: str | None, identity: str | None, issuer: str | None
) -> SignaturePolicy | None:
    """The policy the flags ask for, None without any.

    Raises:
        UsageError: a file that cannot be read or is not what its flag takes; identity or issuer
            without --trusted-root, or --trusted-root without both.
    """
    pems, raw = _files(keys, trusted_root, identity, issuer)
    keyless = KeylessPolicy.of(raw, identity, issuer, where=f"--trusted-root {trusted_root}") if raw else None
    return SignaturePolicy.of(pems, keyless)


def pipeline_signature_policy(
    keys: list[str] | None, trusted_root: str | None, identity: str | None, issuer: str | None
) -> dict[str, Any] | None:
    """``acr import-pipeline create``'s flags as the pipeline's ``properties.signaturePolicy`` (the
    keys and root read here and checked as ``import`` would), None without any.

    Raises:
        UsageError: as :func:`signature_policy`.
    """
    if signature_policy(keys, trusted_root, identity, issuer) is None:
        return None
    pems, raw = _files(keys, trusted_root, identity, issuer)
    return policy_document([pem for _, pem in pems], raw, identity, issuer)


def _files(
    keys: list[str] | None, trusted_root: str | None, identity: str | None, issuer: str | None
) -> tuple[list[tuple[str, bytes]], bytes | None]:
    if (identity or issuer) and not trusted_root:
        raise UsageError("--certificate-identity and --certificate-oidc-issuer go with --trusted-root")
    pems = [(f"--require-signed-by {k}", _read(k, MAX_KEY_FILE, "--require-signed-by")) for k in keys or []]
    raw = _read(trusted_root, MAX_TRUSTED_ROOT, "--trusted-root") if trusted_root else None
    return pems, raw


def _read(path: str, cap: int, flag: str) -> bytes:
    try:
        with Path(path).open("rb") as f:
            data = f.read(cap + 1)
    except OSError as exc:
        raise UsageError(f"{flag} {path}: cannot read it ({exc.strerror or exc})") from None
    if len(data) > cap:
        raise UsageError(f"{flag} {path}: over {cap} bytes")
    return data
