"""An import's last step: the order it pushes manifests in (subjects before their referrers, level by
level), and which tags it checks for conflicts first."""

from __future__ import annotations

import json

from airlock.archive.format import CatalogArtifact
from airlock.oci.digest import Digest
from airlock.oci.manifest import OCI_INDEX, OCI_MANIFEST, Manifest
from airlock.oci.reference import RegistryURL
from airlock.registry.client import RegistryClient
from airlock.testing.images import push_oci_image
from airlock.testing.registry_server import RegistryServer
from airlock.transfer.graph import Closure
from airlock.transfer.publish import ArtifactEntry, _referrer_levels
from airlock.transfer.tag_conflicts import check_tag_conflicts


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


# Regression: the conflict check exempted a sha256-<hex> tag (a referrers index, merged on import) on
# the catalog's word that it is an index; a hostile catalog calling an image one then had it PUT over
# the target's index, without OverwriteTags, dropping the referrers listed there.
def test_a_fallback_tag_whose_manifest_is_not_an_index_is_checked_for_conflicts(
    target_registry: RegistryServer,
) -> None:
    subject = Digest.of(b"some subject")
    tag = f"sha256-{subject.hex}"
    there = push_oci_image(target_registry.url, "conflict/app", tag, layers=1, layer_size=512, seed=401)
    raw = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {
        "mediaType": "application/vnd.oci.image.config.v1+json", "digest": str(Digest.of(b"{}")), "size": 2,
    }, "layers": []}).encode()  # fmt: skip
    image = Manifest.parse(raw, media_type=None, where="test image")
    entry = CatalogArtifact(
        reference=f"conflict/app:{tag}", repository="conflict/app", tag=tag, digest=str(image.digest),
        mediaType=OCI_INDEX, size=len(raw),  # what the catalog claims
    )  # fmt: skip
    art = ArtifactEntry(entry=entry, digest=image.digest, closure=Closure(manifests=[image]))
    failed: list[str] = []
    client = RegistryClient(RegistryURL.parse(target_registry.url), use_auth_files=False)
    try:
        check_tag_conflicts(client, [art], fail=lambda a, exc: failed.append(str(exc)))
    finally:
        client.close()
    assert failed == [
        f"artifact conflict/app:{tag}: tag already points to {there.digest} in the target registry, not "
        f"{image.digest} (use the OverwriteTags option to move it)"
    ]
