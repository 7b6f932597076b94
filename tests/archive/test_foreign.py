"""Blobs that are not airlock archives: what the sniffer calls them, and the OCI layout tar scanner
(pure, no services; the CLI guards are in tests/cli/test_archive_cli.py)."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airlock.archive.format import (
    BLOB_PREFIX,
    CATALOG_MEDIA_TYPE,
    CATALOG_NAME,
    DIR_NAMES,
    INDEX_NAME,
    LAYOUT_BYTES,
    LAYOUT_NAME,
    Catalog,
)
from airlock.archive.layout import scan_layout
from airlock.archive.reader import ArchiveReader
from airlock.archive.sniff import DOCKER_SAVE, EMPTY, GZIP, OCI_LAYOUT, TAR, UNKNOWN, ZSTD, sniff
from airlock.archive.writer import ArchiveWriter
from airlock.errors import ArchiveError, NotATransferBlob
from airlock.oci.digest import Digest


def chunked(data: bytes, size: int = 4096) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def build() -> bytes:
    """A small airlock archive, as the writer makes it."""
    blobs = (b"layer" * 999, b"config")
    index = b'{"schemaVersion":2,"manifests":[]}'
    catalog = Catalog.model_validate(
        {
            "schemaVersion": 2,
            "mediaType": CATALOG_MEDIA_TYPE,
            "createdAt": datetime(2026, 1, 1, tzinfo=UTC),
            "creator": "test",
            "source": {"registry": "https://src"},
            "artifacts": [],
            "index": {"digest": str(Digest.of(index)), "size": len(index)},
            "manifests": [],
            "blobs": [{"digest": str(Digest.of(b)), "size": len(b)} for b in blobs],
        }
    )
    out = bytearray()
    w = ArchiveWriter(out.extend)
    w.add_bytes(CATALOG_NAME, catalog.to_bytes())
    w.add_bytes(LAYOUT_NAME, LAYOUT_BYTES)
    w.add_bytes(INDEX_NAME, index)
    for name in DIR_NAMES:
        w.add_dir(name)
    for b in blobs:
        w.add_bytes(BLOB_PREFIX + Digest.of(b).hex, b)
    w.close()
    return bytes(out)


def _tar(files: list[tuple[str, bytes]], fmt: int = tarfile.USTAR_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


BLOB = b"a layer" * 5000
INDEX = json.dumps({"schemaVersion": 2, "manifests": []}).encode()
LAYOUT_FILES = [
    ("blobs/sha256/" + Digest.of(BLOB).hex, BLOB),
    ("index.json", INDEX),
    ("oci-layout", b'{"imageLayoutVersion": "1.0.0"}'),
]


def _at(data: bytes) -> Callable[[int, int], bytes]:
    return lambda offset, n: data[offset : offset + n]


def _ranged(data: bytes) -> Callable[[int, int], Iterator[bytes]]:
    return lambda offset, n: chunked(data[offset : offset + n], 1000)


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"", EMPTY),
        (gzip.compress(b"x" * 1000), GZIP),
        (b"\x28\xb5\x2f\xfd" + bytes(100), ZSTD),
        (_tar(LAYOUT_FILES), OCI_LAYOUT),
        (_tar(list(reversed(LAYOUT_FILES))), OCI_LAYOUT),
        (_tar([("manifest.json", b"[]"), ("repositories", b"{}")]), DOCKER_SAVE),
        (_tar([("c" * 64 + "/layer.tar", bytes(600))]), DOCKER_SAVE),
        (_tar([("notes.txt", b"hi")]), TAR),
        (b"plain text, no tar here\n" * 40, UNKNOWN),
    ],
    ids=[
        "empty",
        "gzip",
        "zstd",
        "oci-layout",
        "oci-layout-index-first",
        "docker-save",
        "docker-legacy",
        "tar",
        "text",
    ],
)
def test_sniff_names_what_a_blob_is(data: bytes, kind: str) -> None:
    assert sniff(_at(data)).kind == kind


def test_the_reader_raises_not_a_transfer_blob_with_the_kind_and_the_blobs_name() -> None:
    with pytest.raises(
        NotATransferBlob, match=r"^not an airlock transfer blob \(it looks like a gzip stream\): x.gz; "
    ) as e:
        ArchiveReader(iter([gzip.compress(build())]), name="x.gz")
    assert e.value.kind == GZIP


def test_archive_size_is_exactly_what_the_writer_writes() -> None:
    data = build()
    assert ArchiveReader(chunked(data)).expected_size == len(data)


def test_scan_layout_finds_blobs_wherever_index_json_is() -> None:
    for files in (LAYOUT_FILES, list(reversed(LAYOUT_FILES))):
        data = _tar(files)
        tar = scan_layout(_ranged(data), size=len(data), name="t")
        member = tar.blobs[Digest.of(BLOB)]
        assert data[member.offset : member.offset + member.size] == BLOB
        assert tar.index == INDEX


def test_scan_layout_reads_pax_paths_and_sizes() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, payload in LAYOUT_FILES:
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            info.pax_headers = {"path": "./" + name, "comment": "é" * 10}
            tf.addfile(info, io.BytesIO(payload))
    data = buf.getvalue()
    tar = scan_layout(_ranged(data), size=len(data), name="t")
    assert Digest.of(BLOB) in tar.blobs


def test_scan_layout_jumps_over_large_members_with_ranged_reads() -> None:
    big = bytes(3 * 1024 * 1024)
    data = _tar([("blobs/sha256/" + Digest.of(big).hex, big), *LAYOUT_FILES[1:]])
    opened: list[int] = []

    def read_range(offset: int, n: int) -> Iterator[bytes]:
        opened.append(offset)
        return chunked(data[offset : offset + n], 64 * 1024)

    tar = scan_layout(read_range, size=len(data), name="t")
    assert tar.blobs[Digest.of(big)].size == len(big)
    # The first 1 MiB window, then the one past the 3 MiB member: the rest of its data was never read.
    assert opened == [0, 512 + len(big)]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzz_mutated_layout_tars_only_ever_raise_archive_errors(data: st.DataObject) -> None:
    tar = bytearray(_tar(LAYOUT_FILES, tarfile.PAX_FORMAT))
    for _ in range(data.draw(st.integers(1, 8))):
        tar[data.draw(st.integers(0, len(tar) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(tar)))
    blob = bytes(tar[:cut])
    try:
        scan_layout(_ranged(blob), size=len(blob), name="t")
    except ArchiveError:
        pass
    sniff(_at(blob))  # never raises
