"""Delta archives through the engine: what a hostile or stale delta catalog cannot make an import do."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from airlock.archive.format import CatalogArtifact, CatalogDelta, DeltaArtifact, DeltaReceipt
from airlock.errors import ArchiveError, UsageError
from airlock.oci.digest import Digest
from airlock.oci.reference import ArtifactReference, RegistryURL
from airlock.registry.client import RegistryClient
from airlock.storage.location import open_blob, parse_blob_uri
from airlock.testing import content
from airlock.testing.images import push_oci_image
from airlock.testing.registry_server import RegistryServer
from airlock.transfer.delta import DeltaBase, unchanged_references
from airlock.transfer.export import export_artifacts
from airlock.transfer.importer import import_archive
from airlock.transfer.receipt import RECEIPT_MEDIA_TYPE, Receipt, RepositoryHoldings
from airlock.transfer.rename import RenameMap


def test_a_delta_naming_an_invalid_mount_repository_is_refused_before_any_upload(
    tmp_path: Path, source_registry: RegistryServer, target_registry: RegistryServer
) -> None:
    image = push_oci_image(source_registry.url, "hostile/app", "1", seed=371, layer_size=1024)
    # A receipt read_receipt would refuse (its repository name is not one), made in memory.
    receipt = Receipt(
        schemaVersion=1,
        mediaType=RECEIPT_MEDIA_TYPE,
        registry=target_registry.url,
        createdAt=datetime.now(UTC),
        creator="test",
        blobs=[(d.removeprefix("sha256:"), size) for d, size in image.blobs],
        repositories={"../../evil": RepositoryHoldings(blobs=list(range(len(image.blobs))))},
    )
    blob = open_blob(parse_blob_uri((tmp_path / "delta.tar").as_uri()))
    source = RegistryClient(RegistryURL.parse(source_registry.url), use_auth_files=False)
    target = RegistryClient(RegistryURL.parse(target_registry.url), use_auth_files=False)
    try:
        done = export_artifacts(
            client=source,
            artifacts=[ArtifactReference.parse(image.reference)],
            target=blob,
            delta=DeltaBase(receipt, Digest.of(b"receipt"), "in memory"),
        )
        assert done.delta is not None and done.delta["blobsLeftOut"] == len(image.blobs)
        with pytest.raises(ArchiveError, match=r"in an invalid repository: invalid repository name"):
            import_archive(source=blob, client=target)
    finally:
        source.close()
        target.close()
    assert content.list_tags(target_registry.url, "hostile/app") == []
    assert not content.manifest_exists(target_registry.url, "hostile/app", image.digest)


def _left_out(reference: str, digest: str) -> CatalogDelta:
    receipt = DeltaReceipt(registry="http://x", createdAt=datetime.now(UTC), digest="sha256:" + "c" * 64)
    return CatalogDelta(receipt=receipt, blobs=[], artifacts=[DeltaArtifact(reference=reference, digest=digest)],
                        fullSize=0)  # fmt: skip


def _shipped(repository: str, tag: str, digest: str) -> CatalogArtifact:
    return CatalogArtifact(reference=f"{repository}:{tag}", repository=repository, tag=tag, digest=digest,
                           mediaType="application/vnd.oci.image.manifest.v1+json", size=1)  # fmt: skip


# Regression: only shipped artifacts were checked for sharing a tag, so one a delta left out as
# unchanged could share its tag with a shipped one of another digest and be reported unchanged.
def test_a_left_out_artifact_on_a_shipped_artifacts_tag_is_refused_unless_it_is_the_same() -> None:
    a, b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    with pytest.raises(ArchiveError, match=r"lists x/app:1 both as left out \(sha256:a+\) and shipped"):
        unchanged_references(_left_out("x/app:1", a), RenameMap(), [_shipped("x/app", "1", b)])
    for rules in (["z/=q/"], ["x/=m/"]):  # the catalog's own conflict, whatever the rename does with it
        with pytest.raises(ArchiveError, match=r"lists x/app:1 both as left out"):
            unchanged_references(_left_out("x/app:1", a), RenameMap.parse(rules), [_shipped("x/app", "1", b)])
    rename = RenameMap.parse(["x/=m/", "y/=m/"])
    with pytest.raises(UsageError, match=r"put x/app:1 \(sha256:a+\) and y/app:1 \(sha256:b+\) on one tag, m/app:1"):
        unchanged_references(_left_out("x/app:1", a), rename, [_shipped("y/app", "1", b)])
    # The same digest is no conflict, nor another tag, nor no delta.
    assert unchanged_references(_left_out("x/app:1", a), rename, [_shipped("y/app", "1", a)]) == ["m/app:1"]
    assert unchanged_references(_left_out("x/app:1", a), rename, [_shipped("y/app", "2", b)]) == ["m/app:1"]
    assert unchanged_references(None, rename, [_shipped("y/app", "1", b)]) == []
