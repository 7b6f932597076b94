"""The import's signature step (:func:`require_signatures`), and the signatures a delta bundle
left out because the target already holds them (:func:`left_out_signatures`).

A delta leaves out an artifact whose tag already points at the same digest in the target — which
is what a cosign ``sha256-<hex>.sig`` tag does when a known image comes under a new tag — and
every blob the receipt lists, a signature payload of a referrer among them. The import's
signature policy needs them all the same: this reads them from the target registry, where the
delta's presence check has just found (or mounted) them. What is read is only evidence, held to
the same checks as what the archive carries: a manifest must have the digest the catalog names
for its tag, a payload the digest its descriptor names (``iter_blob`` verifies both size and
digest as it streams, capped at :data:`~airlock.transfer.signature_policy.MAX_PAYLOAD`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from airlock.archive.format import Catalog, CatalogArtifact, CatalogDelta
from airlock.errors import AirlockError, ArchiveError, NotFound, UsageError
from airlock.oci.digest import Digest
from airlock.oci.reference import ArtifactReference
from airlock.registry.client import RegistryClient
from airlock.transfer.graph import Closure
from airlock.transfer.publish import ArtifactEntry
from airlock.transfer.rename import RenameMap
from airlock.transfer.signature_policy import (
    MAX_PAYLOAD,
    Names,
    PayloadCapture,
    SignaturePolicy,
    attached,
    enforce,
    signature_layers,
)


def require_signatures(
    policy: SignaturePolicy,
    client: RegistryClient,
    catalog: Catalog,
    artifacts: Sequence[ArtifactEntry],
    rename: RenameMap,
    capture: PayloadCapture,
    fail: Callable[[ArtifactEntry, AirlockError], None],
    *,
    keep_going: bool,
) -> None:
    """Refuse the artifacts ``policy`` refuses (see :func:`~airlock.transfer.signature_policy.enforce`),
    once the whole archive was read and verified into ``capture`` and before any tag is written.

    Raises:
        SignatureRefused: without ``keep_going``, an artifact was refused.
        ArchiveError, RegistryError: as :func:`left_out_signatures`, for a delta.
    """
    names = Names.of(catalog.source.registry, client.base)
    known = left_out_signatures(client, artifacts, catalog.delta, rename, capture) if catalog.delta else []
    enforce(policy, artifacts, capture.payloads, names, fail=fail, keep_going=keep_going, known=known)


def left_out_signatures(
    client: RegistryClient,
    artifacts: Sequence[ArtifactEntry],
    delta: CatalogDelta,
    rename: RenameMap,
    capture: PayloadCapture,
) -> list[ArtifactEntry]:
    """The attachment tags of ``artifacts`` that ``delta`` left out, read from the target (not to be
    imported: they are there); and into ``capture``, every signature payload the archive lacks, of
    those and of the archive's own attachments.

    Raises:
        ArchiveError: a left-out reference that does not parse.
        RegistryError: the target failed other than by not having a manifest or blob (a missing
            one is simply no evidence).
    """
    subjects = {(a.entry.repository, str(a.digest)) for a in artifacts if attached(a) is None}
    known: list[ArtifactEntry] = []
    for left in delta.artifacts:
        try:
            ref = ArtifactReference.parse(rename.reference(left.reference))
        except UsageError as exc:
            raise ArchiveError(f"archive delta names an invalid artifact: {exc}") from None
        entry = CatalogArtifact(
            reference=str(ref), repository=ref.repository, tag=ref.tag, digest=left.digest, mediaType="", size=0
        )
        owner = attached(ArtifactEntry(entry, Digest.parse(left.digest)))
        if ref.tag is None or owner is None or (ref.repository, owner) not in subjects:
            continue
        try:
            manifest = client.get_manifest(ref.repository, ref.tag)
        except NotFound:
            continue
        if str(manifest.digest) != left.digest:
            continue  # the tag moved since the receipt: not the signature the delta meant
        entry.media_type, entry.size = manifest.media_type, manifest.size  # its own entry, made above
        known.append(ArtifactEntry(entry, manifest.digest, closure=Closure(manifests=[manifest])))
    for art in [*artifacts, *known]:
        if art.closure is None or attached(art) is None:
            continue
        for layer in signature_layers(art.closure.top):
            if layer.digest in capture.payloads or layer.size > MAX_PAYLOAD:
                continue
            try:
                capture.payloads[layer.digest] = b"".join(client.iter_blob(art.entry.repository, layer))
            except NotFound:
                continue
    return known
