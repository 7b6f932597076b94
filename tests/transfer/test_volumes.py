"""Multi-volume bundles through the engine: ranged reads across volume boundaries, an export that
dies midway, and volume tables that do not add up."""

from __future__ import annotations

import functools
import os
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from airlock.archive.format import CATALOG_NAME, Catalog
from airlock.archive.reader import parse_catalog
from airlock.archive.volumes import parse_volume_size, requires_volumes, volume_table
from airlock.errors import AirlockError, ArchiveError, BlobExists, StorageError, UsageError
from airlock.oci.manifest import Descriptor
from airlock.oci.reference import ArtifactReference, RegistryURL
from airlock.registry.client import RegistryClient
from airlock.registry.retry import RetryPolicy
from airlock.storage.base import Blob
from airlock.storage.location import open_blob, parse_blob_uri
from airlock.testing import content
from airlock.testing.fault_proxy import Fault, FaultProxy
from airlock.testing.images import push_oci_image
from airlock.testing.polling import wait_until
from airlock.testing.registry_server import RegistryServer
from airlock.transfer.export import export_artifacts
from airlock.transfer.import_result import ImportResult
from airlock.transfer.importer import import_archive
from airlock.transfer.options import PipelineOption
from airlock.transfer.volume_export import BundleTarget, SplitWriter
from airlock.transfer.volume_source import Bundle, open_bundle

VOLUME = 64 * 1024
FAST = RetryPolicy(attempts=2, base=0.01, cap=0.05)


def client(url: str) -> RegistryClient:
    return RegistryClient(RegistryURL.parse(url), use_auth_files=False, retry=FAST, read_timeout=10)


def file_blob(path: Path) -> Blob:
    return open_blob(parse_blob_uri(path.as_uri()))


def catalog_of(first_volume: Path) -> tuple[Catalog, int]:
    data = first_volume.read_bytes()
    assert data[: len(CATALOG_NAME)] == CATALOG_NAME.encode()
    size = int(data[124:136].rstrip(b"\0 "), 8)
    return parse_catalog(data[512 : 512 + size]), size


def test_ranged_reads_of_large_blobs_map_across_volume_boundaries(
    tmp_path: Path, source_registry: RegistryServer, target_registry: RegistryServer
) -> None:
    app = push_oci_image(source_registry.url, "volx/app", "1", layers=4, layer_size=50 * 1024, seed=141)
    head = tmp_path / "b.tar"
    out = export_artifacts(
        client=client(source_registry.url),
        artifacts=[ArtifactReference.parse(app.reference)],
        target=file_blob(head),
        volume_size=VOLUME,
    )
    assert out.volumes is not None and len(out.volumes) >= 4  # 50 KiB layers: most straddle two volumes
    # Every blob by a ranged read of its own, each mapped onto the one or two volumes that hold it.
    result = import_archive(source=file_blob(head), client=client(target_registry.url), large_blob=1024, concurrency=3)
    assert result.imported == ["volx/app:1"] and result.blobs_uploaded == len(app.blobs)
    assert content.get_manifest(target_registry.url, "volx/app", "1")[2] == app.digest


def test_export_that_dies_midway_leaves_no_volume_and_a_retry_writes_them_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with RegistryServer.start(tmp_path / "src", name="dying-volumes") as source:
        app = push_oci_image(source.url, "volx/dying", "1", layers=5, layer_size=30 * 1024, seed=142)
        c = client(source.url)
        real = c.iter_blob
        out_dir = tmp_path / "out"
        out_dir.mkdir()
        killed: list[str] = []
        calls: list[str] = []
        committed: list[int] = []
        blob_count = len(app.blobs)  # the config and the layers; the export reads ahead, in archive order

        def dying(repository: str, desc: Descriptor, **kw: object) -> Iterator[bytes]:
            calls.append(str(desc.digest))
            if len(calls) == blob_count:  # the last blob's GET fails: the writer meets it in the last volume
                source.kill()
                killed.append(str(desc.digest))
            yield from real(repository, desc)

        real_commit = SplitWriter._commit

        def recorded(self: SplitWriter, i: int) -> None:
            real_commit(self, i)
            committed.append(i)

        monkeypatch.setattr(c, "iter_blob", dying)
        monkeypatch.setattr(SplitWriter, "_commit", recorded)
        with pytest.raises(AirlockError) as info:
            export_artifacts(
                client=c, artifacts=[ArtifactReference.parse(app.reference)], target=file_blob(out_dir / "b.tar"),
                volume_size=VOLUME, concurrency=1,
            )  # fmt: skip
        assert killed and "\n" not in str(info.value)
        assert committed  # volume 2 was committed before the fault reached the writer...
        assert os.listdir(out_dir) == []  # ...and is gone with the rest: no head, no volume
        source.restart()
        monkeypatch.undo()
        done = export_artifacts(
            client=client(source.url), artifacts=[ArtifactReference.parse(app.reference)],
            target=file_blob(out_dir / "b.tar"), volume_size=VOLUME,
        )  # fmt: skip
        assert done.volumes is not None
        assert sorted(os.listdir(out_dir)) == sorted(Path(v["uri"]).name for v in done.volumes)  # type: ignore[arg-type]


def test_volume_tables_that_do_not_add_up_are_refused(tmp_path: Path, source_registry: RegistryServer) -> None:
    app = push_oci_image(source_registry.url, "volx/table", "1", layers=3, layer_size=30 * 1024, seed=143)
    export_artifacts(
        client=client(source_registry.url), artifacts=[ArtifactReference.parse(app.reference)],
        target=file_blob(tmp_path / "b.tar"), volume_size=VOLUME,
    )  # fmt: skip
    catalog, size = catalog_of(tmp_path / "b.tar")
    table = volume_table(catalog, size)
    assert table is not None and [v.index for v in table] == [1, 2, 3]
    assert volume_table(catalog.model_copy(update={"requires": []}), size) is None  # an ordinary archive
    listed = catalog.volumes
    assert listed is not None
    adds_up = "volume table does not add up to the archive its catalog describes"
    bad = [  # (the table, what the refusal says)
        ([], r"requires volumes but lists 0 \(expected 1 to \d+\)"),  # none listed
        ([listed[1], listed[0]], "volume table is invalid at volume 2"),  # an index out of order
        (listed[:1], adds_up),  # one volume missing
        ([listed[0].model_copy(update={"size": listed[0].size - 512}), listed[1]], adds_up),  # sizes off
    ]
    for volumes, said in bad:
        with pytest.raises(ArchiveError, match=said):
            volume_table(catalog.model_copy(update={"volumes": volumes}), size)


def test_requires_volumes_reads_only_the_catalogs_requires() -> None:
    assert requires_volumes(b'{"requires": ["delta", "volumes"], "artifacts": "not looked at"}') is True
    assert requires_volumes(b'{"schemaVersion": 2, "artifacts": []}') is False
    for bad in (b"[]", b"not json", b'{"requires": "volumes"}', b'{"requires": [1]}'):
        assert requires_volumes(bad) is None, bad


def test_an_import_still_refuses_a_catalog_its_bundle_probe_did_not_parse(
    tmp_path: Path, source_registry: RegistryServer
) -> None:
    """The import's look for a bundle reads only the catalog's ``requires``; its reader checks the rest."""
    app = push_oci_image(source_registry.url, "volx/probe", "1", layers=1, layer_size=1024, seed=144)
    good, bad = tmp_path / "a.tar", tmp_path / "bad.tar"
    export_artifacts(client=client(source_registry.url), artifacts=[ArtifactReference.parse(app.reference)],
                     target=file_blob(good))  # fmt: skip
    bad.write_bytes(good.read_bytes().replace(b'{"schemaVersion":2,', b'{"schemaVersion":7,', 1))
    with pytest.raises(ArchiveError, match="schemaVersion 7"):
        import_archive(source=file_blob(bad), client=client(source_registry.url))


@pytest.mark.parametrize(
    ("text", "size"), [("4GiB", 4 << 30), ("700MB", 700_000_000), ("512KiB", 512 << 10), ("65536", 65536)]
)
def test_volume_sizes_parse_in_iec_and_si_units(text: str, size: int) -> None:
    assert parse_volume_size(text) == size


@pytest.mark.parametrize("text", ["", "4 GiBs", "-1MiB", "1KiB", "65535"])
def test_volume_sizes_that_are_not_sizes_or_too_small_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError, match="--volume-size"):
        parse_volume_size(text)


def test_export_over_a_larger_bundle_with_overwrite_blobs_removes_its_leftover_volumes(
    tmp_path: Path, source_registry: RegistryServer
) -> None:
    app = push_oci_image(source_registry.url, "volx/shrink", "1", layers=5, layer_size=30 * 1024, seed=144)
    art = [ArtifactReference.parse(app.reference)]
    first = export_artifacts(
        client=client(source_registry.url), artifacts=art, target=file_blob(tmp_path / "b.tar"), volume_size=VOLUME
    )
    second = export_artifacts(
        client=client(source_registry.url), artifacts=art, target=file_blob(tmp_path / "b.tar"),
        volume_size=2 * VOLUME, options=frozenset({PipelineOption.OVERWRITE_BLOBS}),
    )  # fmt: skip
    assert first.volumes is not None and second.volumes is not None
    assert len(second.volumes) < len(first.volumes)
    assert sorted(os.listdir(tmp_path)) == ["b.tar"] + [f"b.tar.00{i}" for i in range(2, len(second.volumes) + 1)]
    # Regression: an export that fits one blob, over them with OverwriteBlobs, left every volume of the
    # earlier bundle beside it (a bundle's volumes lie about it, and an inbox shows them as incomplete).
    for volume_size in (None, 64 * VOLUME):  # no volumes asked for; asked for, but it fits one
        export_artifacts(
            client=client(source_registry.url), artifacts=art, target=file_blob(tmp_path / "b.tar"),
            volume_size=volume_size, options=frozenset({PipelineOption.OVERWRITE_BLOBS}),
        )  # fmt: skip
        assert os.listdir(tmp_path) == ["b.tar"]
        export_artifacts(
            client=client(source_registry.url), artifacts=art, target=file_blob(tmp_path / "b.tar"),
            volume_size=VOLUME, options=frozenset({PipelineOption.OVERWRITE_BLOBS}),
        )  # fmt: skip
        assert len(os.listdir(tmp_path)) == len(first.volumes)


@pytest.mark.parametrize(
    ("case", "volume_size", "error", "says"),
    [
        ("too many volumes", 1024, UsageError, "volumes of 1024 bytes; at most 999"),
        ("a head larger than a volume", 4096, UsageError, "cannot hold the first volume of this export"),
        ("a later volume exists", VOLUME, BlobExists, "b.tar.003 already exists"),
        ("resume", VOLUME, UsageError, "a multi-volume export cannot be resumed"),
    ],
)
def test_a_dry_run_refuses_each_multi_volume_export_the_export_refuses_and_writes_nothing(
    tmp_path: Path, source_registry: RegistryServer, case: str, volume_size: int, error: type[Exception], says: str
) -> None:
    # Regression: the dry run returned before the volumes were planned, so it passed all four.
    app = push_oci_image(source_registry.url, "volx/dry", "1", layers=4, layer_size=300 * 1024, seed=146)
    if case == "a later volume exists":
        (tmp_path / "b.tar.003").write_bytes(b"an earlier bundle's")
    before = sorted(os.listdir(tmp_path))
    for dry_run in (True, False):
        with pytest.raises(error, match=re.escape(says)):
            export_artifacts(
                client=client(source_registry.url), artifacts=[ArtifactReference.parse(app.reference)],
                target=file_blob(tmp_path / "b.tar"), volume_size=volume_size, dry_run=dry_run,
                resume=case == "resume",
            )  # fmt: skip
        assert sorted(os.listdir(tmp_path)) == before


def test_a_bundle_copy_checks_its_kept_volumes_again_before_committing_and_a_suspended_one_keeps_what_it_committed(
    tmp_path: Path, source_registry: RegistryServer
) -> None:
    app = push_oci_image(source_registry.url, "volk/app", "1", layers=4, layer_size=50 * 1024, seed=142)
    head = tmp_path / "src" / "b.tar"
    head.parent.mkdir()
    export_artifacts(
        client=client(source_registry.url), artifacts=[ArtifactReference.parse(app.reference)],
        target=file_blob(head), volume_size=VOLUME,
    )  # fmt: skip
    bundle = open_bundle(file_blob(head))
    assert isinstance(bundle, Bundle) and len(bundle.volumes) > 3
    every = ["c.tar"] + [f"c.tar.{i:03d}" for i in range(2, len(bundle.volumes) + 1)]
    out = tmp_path / "out"
    out.mkdir()

    def copy(*, then: Callable[[SplitWriter], None]) -> None:
        writer = BundleTarget(bundle, file_blob(out / "c.tar"), resume=True).writer(overwrite=False, metadata={})
        for chunk in bundle.read():
            writer.write(chunk)
        then(writer)

    # A kept volume replaced after it was read back (here: touched) is not trusted at the commit.
    second = out / "c.tar.002"
    second.write_bytes((tmp_path / "src" / "b.tar.002").read_bytes())

    def touch_then_commit(writer: SplitWriter) -> None:
        os.utime(second, ns=(0, second.stat().st_mtime_ns + 10**9))
        with pytest.raises(StorageError, match=r"volume 2 .*c\.tar\.002 changed after it was checked to be kept"):
            writer.commit()
        writer.abort()

    copy(then=touch_then_commit)
    assert sorted(p.name for p in out.iterdir()) == ["c.tar.002"]  # the kept one stays; nothing else was written

    # Stopped while committing (the first volume's commit fails), a suspended copy keeps the later
    # volumes it committed, for a resume to keep in turn; aborted, it deletes them.
    def commit_into_a_first_volume(writer: SplitWriter, settle: Callable[[SplitWriter], None]) -> None:
        (out / "c.tar").write_bytes(b"appeared meanwhile")
        with pytest.raises(BlobExists):
            writer.commit()
        settle(writer)

    for settle, left in (
        (SplitWriter.suspend, every),
        (SplitWriter.abort, ["c.tar", "c.tar.002"]),
    ):
        copy(then=functools.partial(commit_into_a_first_volume, settle=settle))
        assert sorted(p.name for p in out.iterdir()) == left
        for name in [*left[2:], "c.tar"]:
            (out / name).unlink()


def test_deleting_an_imported_bundle_leaves_every_volume_when_a_later_one_was_replaced_since_it_was_opened(
    tmp_path: Path, source_registry: RegistryServer
) -> None:
    """Regression: DeleteSourceBlobOnSuccess checked the first volume's etag only, and deleted the
    later volumes of the next bundle of that name, landed while this one was imported."""
    app = push_oci_image(source_registry.url, "voldel/app", "1", layers=3, layer_size=40 * 1024, seed=143)
    head = tmp_path / "b.tar"
    export_artifacts(
        client=client(source_registry.url),
        artifacts=[ArtifactReference.parse(app.reference)],
        target=file_blob(head),
        volume_size=VOLUME,
    )
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names[:2] == ["b.tar", "b.tar.002"] and len(names) >= 3
    bundle = open_bundle(file_blob(head))
    assert isinstance(bundle, Bundle)
    info = bundle.stat()
    assert info is not None
    etag = info.etag
    later = tmp_path / "b.tar.002"
    os.utime(later, ns=(later.stat().st_atime_ns, later.stat().st_mtime_ns + 10**9))  # landed again
    with pytest.raises(StorageError, match=r"volume 2 of \d+ of bundle .* changed since it was read; no volume"):
        bundle.delete(if_match=etag)
    assert sorted(p.name for p in tmp_path.iterdir()) == names

    open_bundle(file_blob(head)).delete(if_match=etag)  # opened as it is now: all of it goes
    assert list(tmp_path.iterdir()) == []


def test_an_import_whose_bundle_is_replaced_meanwhile_succeeds_and_keeps_every_volume(
    tmp_path: Path, source_registry: RegistryServer, target_registry: RegistryServer
) -> None:
    """Regression: with DeleteSourceBlobOnSuccess, a volume replaced while the import ran (the next
    bundle of that name landing) failed the import after every tag was written. It is not the
    import's to delete: the import succeeds, deletes nothing and says so."""
    app = push_oci_image(source_registry.url, "voldel/kept", "1", layers=3, layer_size=40 * 1024, seed=145)
    head = tmp_path / "b.tar"
    export_artifacts(
        client=client(source_registry.url), artifacts=[ArtifactReference.parse(app.reference)],
        target=file_blob(head), volume_size=VOLUME,
    )  # fmt: skip
    names = sorted(p.name for p in tmp_path.iterdir())
    held = threading.Event()
    with FaultProxy(target_registry.url) as proxy:
        hang = proxy.add(Fault("PUT", "/manifests/", hold=held))
        done: list[object] = []
        worker = threading.Thread(
            target=lambda: done.append(
                import_archive(
                    source=file_blob(head),
                    client=client(proxy.url),
                    options=frozenset({PipelineOption.DELETE_SOURCE_BLOB_ON_SUCCESS}),
                )
            )
        )
        worker.start()
        try:
            wait_until(lambda: hang.hits == 1, what="the import's first manifest PUT, held")
            later = tmp_path / "b.tar.002"
            os.utime(later, ns=(later.stat().st_atime_ns, later.stat().st_mtime_ns + 10**9))  # landed again
        finally:
            held.set()
            worker.join(60)
    (result,) = done
    assert isinstance(result, ImportResult) and result.imported == ["voldel/kept:1"] and not result.source_deleted
    assert sorted(p.name for p in tmp_path.iterdir()) == names
    assert content.get_manifest(target_registry.url, "voldel/kept", "1")[2] == app.digest
