"""Signed bundles in pipelines: airlock's two extensions of ACR's pipeline resources.

- ``ExportPipeline.properties.signingKeySecretUri``: a key-vault secret (embedded vault, Azure Key
  Vault, Vault/OpenBao) whose value is a PEM private key (ECDSA P-256 or Ed25519, unencrypted: the
  vault protects it). Every run reads it *as the pipeline's identity*, like the SAS token, and signs
  its bundle (:mod:`airlock.archive.signature`). Who may name which secret follows the SAS token's rule:
  only an Owner may name one outside the embedded vaults, which the server reads with its own credential.
- ``ImportPipeline.properties.trustedKeys``: PEM public keys (not secrets: stored inline, checked
  when the pipeline is written). Every run imports only a bundle signed by one of them, and the
  source trigger starts no run for any other blob, reporting it under ``sourceTriggerReport.skipped``
  with the reason (unsigned, signed by another key, altered).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from airlock.archive.keys import SigningKey, TrustedKeys, load_public_key, load_signing_key
from airlock.archive.reader import ArchiveReader
from airlock.archive.signature import check_trusted
from airlock.errors import AccessDenied, AirlockError, BundleNotTrusted
from airlock.pipelines import resources as R
from airlock.pipelines.access import PipelineAccess
from airlock.pipelines.models import ExportPipeline, ImportPipeline
from airlock.secrets.base import Principal
from airlock.storage.base import Container
from airlock.transfer.pipelining import close_stream


def signing_properties(
    props: R.ExportPipelineProperties | R.ImportPipelineProperties,
    existing: ExportPipeline | ImportPipeline | None,
    *,
    privileged: bool,
    outside_embedded: Callable[[str], bool],
    where: str,
) -> dict[str, Any]:
    """The signing extension's properties to store for a pipeline body (``where`` names it in errors);
    ``outside_embedded(uri)``: whether a secret URI is read with the server's own credential.

    Raises:
        SigningKeyError: a trusted key is not an ECDSA P-256 or Ed25519 PEM public key (a 400).
        AccessDenied: a non-Owner names a signing-key secret outside the embedded vaults, or changes
            (or drops) an existing pipeline's signing key or trusted keys: that would weaken the Owner's gate.
        UsageError: the secret URI names no known store.
    """
    out: dict[str, Any] = {}
    if not privileged and existing is not None:
        for field, new, old in (
            ("signingKeySecretUri", getattr(props, "signing_key_secret_uri", None),
             getattr(existing.properties, "signingKeySecretUri", None)),
            ("trustedKeys", getattr(props, "trusted_keys", None), getattr(existing.properties, "trustedKeys", None)),
        ):  # fmt: skip
            if (new or None) != (old or None):
                raise AccessDenied(f"{where}: only an Owner may change properties.{field} of an existing pipeline")
    if isinstance(props, R.ExportPipelineProperties) and props.signing_key_secret_uri:
        uri = props.signing_key_secret_uri
        if not privileged and existing is None and outside_embedded(uri):  # a change was refused above
            raise AccessDenied(
                f"{where}: only an Owner may name a secret outside airlock's embedded key vaults "
                "(properties.signingKeySecretUri): the server reads it with its own credential"
            )
        out["signingKeySecretUri"] = uri
    if isinstance(props, R.ImportPipelineProperties) and props.trusted_keys:
        for n, pem in enumerate(props.trusted_keys):
            load_public_key(pem.encode(), name=f"{where} properties.trustedKeys[{n}]")
        out["trustedKeys"] = list(props.trusted_keys)
    return out


def pipeline_signer(access: PipelineAccess, pipeline: ExportPipeline, principal: Principal) -> SigningKey | None:
    """The key an export pipeline's runs sign with, read as ``principal``; None when it signs nothing.

    Raises:
        SecretError: the secret cannot be read (missing, or the identity may not read it).
        SigningKeyError: its value is not a usable PEM private key.
    """
    uri = pipeline.properties.signingKeySecretUri
    if not uri:
        return None
    pem = access.secrets.get(uri, principal=principal, what="signing key")
    return load_signing_key(pem.encode(), passphrase=None, name=f"in secret {uri}")


def pipeline_trusted_keys(pipeline: ImportPipeline) -> TrustedKeys | None:
    """The keys an import pipeline's bundles must be signed by; None when it takes any bundle.

    Raises:
        SigningKeyError: a stored key no longer parses (written by hand into the database).
    """
    keys = pipeline.properties.trustedKeys
    if not keys:
        return None
    return TrustedKeys.of(
        load_public_key(pem.encode(), name=f"import pipeline {pipeline.name} trustedKeys[{n}]")
        for n, pem in enumerate(keys)
    )


def signature_field(signature: Mapping[str, object] | None) -> dict[str, Any]:
    """A run response's ``signature`` (keyId, algorithm; ``trusted`` after an import's check), or nothing."""
    return {} if signature is None else {"signature": dict(signature)}


class TrustGate:
    """The source trigger's check of a blob against its pipeline's trusted keys, before a run starts.

    Reads only the bundle's head (catalog, signature, ``oci-layout``, ``index.json``). A refusal is
    remembered per blob version, so a refused blob is not read again on every poll; :meth:`forget`
    drops the versions no longer listed.
    """

    def __init__(self) -> None:
        self._refused: dict[tuple[str, str, str], str] = {}

    def refusal(self, pipeline: ImportPipeline, container: Container, name: str, version: str) -> str | None:
        """Why blob ``name`` (this ``version``) is not imported by ``pipeline``, or None to import it."""
        try:
            trusted = pipeline_trusted_keys(pipeline)
        except AirlockError as exc:  # a stored key that no longer parses: this pipeline imports nothing
            return f"not imported: {exc}"
        if trusted is None:
            return None
        key = (pipeline.id, name, version)
        if key in self._refused:
            return self._refused[key]
        blob = container.blob(name)
        stream = blob.read()
        try:
            reader = ArchiveReader(stream, name=blob.display)
            check_trusted(blob.display, reader.catalog, reader.catalog_bytes, reader.signature, trusted)
        except BundleNotTrusted as exc:  # remembered: this version of the blob will not change
            self._refused[key] = f"not imported: {exc}"
            return self._refused[key]
        except AirlockError as exc:  # unreadable now, or not an archive: said, and looked at again next poll
            return f"not imported: cannot check its signature: {exc}"
        finally:
            close_stream(stream)
        return None

    def forget(self, pipeline_id: str, listed: set[tuple[str, str]]) -> None:
        """Drop remembered refusals of ``pipeline_id`` whose (name, version) is not in ``listed``."""
        for key in [k for k in self._refused if k[0] == pipeline_id and (k[1], k[2]) not in listed]:
            del self._refused[key]
