"""The order in which an import pushes manifests: subjects before their referrers, level by level."""

from __future__ import annotations

from airlock.archive.format import CatalogArtifact
from airlock.oci.digest import Digest
from airlock.oci.manifest import OCI_MANIFEST
from airlock.transfer.publish import ArtifactEntry, _referrer_levels


def _entry(name: str, subject: Digest | None = None) -> ArtifactEntry:
    digest = Digest.of(name.encode())
    ref = f"team/app@{digest}"
    entry = CatalogArtifact(
        reference=ref,
        repository="team/app",
        digest=str(digest),
        mediaType=OCI_MANIFEST,
        size=1,
        subject=str(subject) if subject else None,
    )
    return ArtifactEntry(entry=entry, digest=digest)


def test_a_signature_on_an_sbom_is_pushed_after_the_sbom_which_is_pushed_after_the_image() -> None:
    image = _entry("image")
    sbom = _entry("sbom", subject=image.digest)
    signature = _entry("signature-of-sbom", subject=sbom.digest)
    foreign = _entry("signature-of-an-image-not-in-the-archive", subject=Digest.of(b"elsewhere"))
    # Sorted with referrers last, as publish() hands them over; the signature happens to come first.
    levels = _referrer_levels([image, signature, sbom, foreign])
    assert [[a.entry.reference for a in group] for group in levels] == [
        [image.entry.reference],
        [sbom.entry.reference, foreign.entry.reference],
        [signature.entry.reference],
    ]
