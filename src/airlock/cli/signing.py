"""``--sign-key``, ``--sign-key-passphrase-file`` and ``--trusted-key``: the CLI's part of signed
bundles (the format in :mod:`airlock.archive.signature`, the keys in :mod:`airlock.archive.keys`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from airlock.archive.keys import MAX_KEY_FILE, SigningKey, TrustedKeys, load_public_key, load_signing_key
from airlock.errors import SigningKeyError
from airlock.secrets.store import read_secret_file

PASSPHRASE_VARIABLE = "AIRLOCK_SIGN_KEY_PASSPHRASE"

SignKeyOpt = Annotated[
    str | None,
    typer.Option(
        "--sign-key",
        help="Sign the bundle with this PEM private key (ECDSA P-256 or Ed25519, optionally encrypted): the "
        "signature over the catalog is written as member airlock-catalog.sig, and `signature` shows its keyId.",
        metavar="KEY.pem",
    ),
]
SignKeyPassphraseFileOpt = Annotated[
    str | None,
    typer.Option(
        "--sign-key-passphrase-file",
        help=f"File holding the passphrase of an encrypted --sign-key (or set {PASSPHRASE_VARIABLE}).",
        metavar="FILE",
    ),
]
TrustedKeyOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--trusted-key",
        help="Accept only a bundle signed by this PEM public key; repeat it to trust several (key rotation). "
        "An unsigned, otherwise signed or altered bundle is refused, naming which (an import: before anything "
        "is uploaded). On an import pipeline (airlock's extension, properties.trustedKeys) its runs and its "
        "source trigger refuse them, and the trigger lists them in sourceTriggerReport.",
        metavar="PUB.pem",
    ),
]


PipelineSigningKeyOpt = Annotated[
    str | None,
    typer.Option(
        "--signing-key-secret-uri",
        help="airlock's extension (properties.signingKeySecretUri): the key-vault secret holding a PEM private key "
        "(ECDSA P-256 or Ed25519) that every run signs its bundle with, read as the pipeline's identity.",
        metavar="SECRET_URI",
    ),
]


def pipeline_signing(secret_uri: str | None, trusted: list[str] | None) -> dict[str, object]:
    """The signing extension's pipeline properties from the create command's options (keys read from files).

    Raises:
        SigningKeyError: a --trusted-key file cannot be read or holds no usable public key.
    """
    out: dict[str, object] = {}
    if secret_uri:
        out["signingKeySecretUri"] = secret_uri
    if trusted:
        pems = [_read_key_file(p, "trusted key") for p in trusted]
        for path, pem in zip(trusted, pems, strict=True):
            load_public_key(pem, name=path)  # said here, naming the file, rather than by the server
        out["trustedKeys"] = [pem.decode("ascii", "replace").strip() + "\n" for pem in pems]
    return out


def _read_key_file(path: str, what: str) -> bytes:
    p = Path(path).expanduser()
    try:
        with p.open("rb") as f:
            data = f.read(MAX_KEY_FILE + 1)
    except FileNotFoundError:
        raise SigningKeyError(f"{what} file {p} does not exist") from None
    except OSError as exc:
        raise SigningKeyError(f"cannot read {what} file {p}: {type(exc).__name__}") from None
    return data


def signing_key(path: str | None, passphrase_file: str | None) -> SigningKey | None:
    """The key ``--sign-key`` names, decrypted with ``--sign-key-passphrase-file`` or
    ``AIRLOCK_SIGN_KEY_PASSPHRASE`` (the file wins); None without ``--sign-key``.

    Raises:
        UsageError: a passphrase file without ``--sign-key``.
        SigningKeyError: the key cannot be read or used (see :func:`airlock.archive.keys.load_signing_key`).
        SecretError: the passphrase file cannot be read.
    """
    if path is None:
        if passphrase_file is not None:
            raise SigningKeyError("--sign-key-passphrase-file is for an encrypted --sign-key: give --sign-key too")
        return None
    passphrase: str | None = os.environ.get(PASSPHRASE_VARIABLE) or None
    if passphrase_file is not None:
        passphrase = read_secret_file(passphrase_file, what="sign key passphrase")
    pem = _read_key_file(path, "sign key")
    return load_signing_key(pem, passphrase=passphrase.encode() if passphrase else None, name=path)


def trusted_keys(paths: list[str] | None) -> TrustedKeys | None:
    """The keys every ``--trusted-key`` names, or None without any.

    Raises:
        SigningKeyError: a file cannot be read or holds no ECDSA P-256 / Ed25519 public key.
    """
    if not paths:
        return None
    return TrustedKeys.of(load_public_key(_read_key_file(p, "trusted key"), name=p) for p in paths)
