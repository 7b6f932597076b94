"""Export → copy → import through Azure storage (Azurite): between accounts, a read-only SAS, HTTPS."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from airlock.errors import IntegrityError, StorageAuthError
from airlock.storage.location import open_blob, parse_blob_uri
from airlock.testing import azurite as az
from airlock.testing import content
from airlock.testing.azurite import AzuriteServer
from airlock.testing.content import PushedArtifact
from airlock.testing.registry_server import RegistryServer
from airlock.testing.round_trip import assert_same_content, client, export_all, fresh_registry, refs, tagged
from airlock.transfer.export import export_artifacts
from airlock.transfer.import_result import ImportResult
from airlock.transfer.importer import import_archive
from airlock.transfer.inspection import copy_blob, inspect_archive
from airlock.transfer.options import PipelineOption as Opt


def test_through_azure_storage_with_copy_between_accounts(
    azurite: AzuriteServer, source_registry: RegistryServer, samples: list[PushedArtifact], tmp_path: Path
) -> None:
    for account in ("srcacct", "dstacct"):
        az.create_container(azurite, account, "transfer")
    export_sas = az.container_sas(azurite, "srcacct", "transfer", permissions="alrw")
    import_sas = az.container_sas(azurite, "dstacct", "transfer", permissions="racwdl")
    src_uri = az.container_url(azurite, "srcacct", "transfer") + "/batch1.tar"
    dst_uri = az.container_url(azurite, "dstacct", "transfer") + "/batch1.tar"
    src = open_blob(parse_blob_uri(src_uri), sas_token=export_sas)
    exported = export_all(source_registry, samples, src)
    props = az.blob_properties(azurite, "srcacct", "transfer", "batch1.tar")
    assert props.metadata.get("category") == "acr-transfer-blob"
    landed = tmp_path / "landed.tar"
    landed.write_bytes(az.download_blob(azurite, "srcacct", "transfer", "batch1.tar"))
    # The Content-MD5 (hashed block by block on its own thread) is the MD5 of the bytes that landed.
    md5 = props.content_settings.content_md5
    assert md5 is not None, "the export set no Content-MD5"
    assert bytes(md5) == hashlib.md5(landed.read_bytes()).digest()
    assert content.catalog_digest_of(landed) == str(exported.catalog_digest)

    read_sas = az.container_sas(azurite, "srcacct", "transfer", permissions="rl")
    copied = copy_blob(
        open_blob(parse_blob_uri(src_uri), sas_token=read_sas),
        open_blob(parse_blob_uri(dst_uri), sas_token=import_sas),
    )
    assert copied["catalogDigest"] == str(exported.catalog_digest)
    assert az.blob_properties(azurite, "dstacct", "transfer", "batch1.tar").metadata["category"] == "acr-transfer-blob"

    with fresh_registry(tmp_path) as reg:
        result: ImportResult = import_archive(
            source=open_blob(parse_blob_uri(dst_uri), sas_token=import_sas),
            client=client(reg),
            catalog_digest=exported.catalog_digest,
            options=frozenset({Opt.DELETE_SOURCE_BLOB_ON_SUCCESS}),
            large_blob=4096,  # the larger layers take ranged reads of their own from Azure
        )
        assert result.source_deleted
        assert "batch1.tar" not in az.list_blob_names(azurite, "dstacct", "transfer")
        for artifact in tagged(samples):
            assert_same_content(source_registry, reg, artifact)


def test_export_with_a_read_only_sas_fails_clearly_and_writes_nothing(
    azurite: AzuriteServer, source_registry: RegistryServer, samples: list[PushedArtifact]
) -> None:
    az.create_container(azurite, "srcacct", "readonly")
    sas = az.container_sas(azurite, "srcacct", "readonly", permissions="rl")
    uri = az.container_url(azurite, "srcacct", "readonly") + "/b.tar"
    with pytest.raises(StorageAuthError) as info:
        export_artifacts(
            client=client(source_registry),
            artifacts=refs("samples/legacy:v2"),
            target=open_blob(parse_blob_uri(uri), sas_token=sas),
        )
    assert "permission" in str(info.value) and uri in str(info.value)
    assert "sig=" not in str(info.value)
    assert az.list_blob_names(azurite, "srcacct", "readonly") == []


def test_https_only_sas_over_https_azurite(
    tmp_path: Path,
    source_registry: RegistryServer,
    samples: list[PushedArtifact],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with AzuriteServer.start(tmp_path / "azs", accounts=("secure",), https=True) as server:
        assert server.ca_cert is not None
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(server.ca_cert))
        az.create_container(server, "secure", "transfer")
        sas = az.container_sas(server, "secure", "transfer", permissions="racwdl", https_only=True)
        assert "spr=https" in sas
        uri = az.container_url(server, "secure", "transfer") + "/tls.tar"
        assert uri.startswith("https://")
        blob = open_blob(parse_blob_uri(uri), sas_token=sas)
        exported = export_artifacts(client=client(source_registry), artifacts=refs("charts/mychart:0.1.0"), target=blob)
        info = inspect_archive(blob, verify=True)
        assert info["catalogDigest"] == str(exported.catalog_digest)


def test_a_copy_checks_a_source_content_md5_and_a_copy_from_a_file_still_gets_one(
    azurite: AzuriteServer, tmp_path: Path
) -> None:
    az.create_container(azurite, "srcacct", "md5")
    sas = az.container_sas(azurite, "srcacct", "md5", permissions="racwdl")
    data = b"not an archive: copied as it is " * 4096
    local = tmp_path / "notes.bin"
    local.write_bytes(data)
    # From a file (which keeps no Content-MD5, so the copy hashes nothing itself): the target's
    # Content-MD5 is still the MD5 of the bytes, hashed by the Azure writer.
    uri = az.container_url(azurite, "srcacct", "md5") + "/notes.bin"
    copied = copy_blob(open_blob(parse_blob_uri(str(local))), open_blob(parse_blob_uri(uri), sas_token=sas))
    assert copied["size"] == len(data) and not copied["verified"]
    md5 = az.blob_properties(azurite, "srcacct", "md5", "notes.bin").content_settings.content_md5
    assert md5 is not None and bytes(md5) == hashlib.md5(data).digest()

    # From Azure, whose Content-MD5 says other bytes: refused, and nothing is written.
    with az.service_client(azurite, "srcacct") as service:
        blob = service.get_blob_client("md5", "notes.bin")
        settings = blob.get_blob_properties().content_settings
        settings.content_md5 = bytearray(hashlib.md5(b"other bytes").digest())
        blob.set_http_headers(content_settings=settings)
    landed = tmp_path / "landed.bin"
    with pytest.raises(IntegrityError, match="content does not match the blob's Content-MD5"):
        copy_blob(open_blob(parse_blob_uri(uri), sas_token=sas), open_blob(parse_blob_uri(str(landed))))
    assert list(tmp_path.iterdir()) == [local]


def test_an_https_only_sas_used_over_http_is_refused_saying_so(
    azurite: AzuriteServer, source_registry: RegistryServer, samples: list[PushedArtifact]
) -> None:
    """Regression: the refusal listed every cause of a 403 but the one (expired, another key, ...)."""
    az.create_container(azurite, "srcacct", "httpsonly")
    sas = az.container_sas(azurite, "srcacct", "httpsonly", permissions="racwl", https_only=True)
    uri = az.container_url(azurite, "srcacct", "httpsonly") + "/b.tar"
    with pytest.raises(StorageAuthError, match=r"AuthorizationProtocolMismatch\): the SAS token is valid over https"):
        export_artifacts(
            client=client(source_registry),
            artifacts=refs("samples/legacy:v2"),
            target=open_blob(parse_blob_uri(uri), sas_token=sas),
        )
    assert az.list_blob_names(azurite, "srcacct", "httpsonly") == []
