"""Delta archives through the engine: what a hostile or stale delta catalog cannot make an import do."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from airlock.errors import ArchiveError
from airlock.oci.digest import Digest
from airlock.oci.reference import ArtifactReference, RegistryURL
from airlock.registry.client import RegistryClient
from airlock.storage.location import open_blob, parse_blob_uri
from airlock.testing import content
from airlock.testing.images import push_oci_image
from airlock.testing.registry_server import RegistryServer
from airlock.transfer.delta import DeltaBase
from airlock.transfer.export import export_artifacts
from airlock.transfer.importer import import_archive
from airlock.transfer.receipt import RECEIPT_MEDIA_TYPE, Receipt, RepositoryHoldings


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
