"""Archive writer and strict reader: round trip, determinism, and hostile input (pure, no services)."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Literal

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
    MAX_CATALOG_SIZE,
    Catalog,
    CatalogBlob,
    CatalogSource,
    padded,
)
from airlock.archive.reader import ArchiveReader, catalog_span
from airlock.archive.writer import ArchiveWriter
from airlock.errors import ArchiveError
from airlock.oci.digest import Digest

BLOB_A = b"layer-a" * 1000
BLOB_B = b"config-b"
INDEX = b'{"schemaVersion":2,"manifests":[]}'


def _index_entry(index: bytes = INDEX) -> CatalogBlob:
    return CatalogBlob(digest=str(Digest.of(index)), size=len(index))


def _catalog(**over: object) -> Catalog:
    doc: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": CATALOG_MEDIA_TYPE,
        "createdAt": datetime(2026, 1, 1, tzinfo=UTC),
        "creator": "test",
        "source": CatalogSource(registry="https://src"),
        "artifacts": [],
        "index": _index_entry(),
        "manifests": [],
        "blobs": [CatalogBlob(digest=str(Digest.of(b)), size=len(b)) for b in (BLOB_A, BLOB_B)],
    }
    doc.update(over)
    return Catalog.model_validate(doc)


def build(
    *,
    catalog: bytes | None = None,
    blobs: tuple[bytes, ...] = (BLOB_A, BLOB_B),
    index: bytes = INDEX,
) -> bytes:
    out = bytearray()
    w = ArchiveWriter(out.extend)
    w.add_bytes(CATALOG_NAME, catalog if catalog is not None else _catalog(index=_index_entry(index)).to_bytes())
    w.add_bytes(LAYOUT_NAME, LAYOUT_BYTES)
    w.add_bytes(INDEX_NAME, index)
    for name in DIR_NAMES:
        w.add_dir(name)
    for b in blobs:
        w.add_bytes(BLOB_PREFIX + Digest.of(b).hex, b)
    assert w.close() == len(out)
    return bytes(out)


def chunked(data: bytes, size: int = 4096) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def read_all(data: bytes, chunk: int = 4096) -> tuple[dict[str, bytes], Digest]:
    """Every blob member's data, and the catalogDigest."""
    r = ArchiveReader(chunked(data, chunk))
    got = {m.name: r.read_member(m, 1 << 30) for m in r.blobs()}
    assert r.finish() == len(data)
    return got, r.catalog_digest


@pytest.mark.parametrize("chunk", [1, 7, 512, 4096, 1 << 20])
def test_round_trip_in_any_chunking(chunk: int) -> None:
    data = build()
    got, digest = read_all(data, chunk)
    assert got == {BLOB_PREFIX + Digest.of(b).hex: b for b in (BLOB_A, BLOB_B)}
    assert digest == Digest.of(_catalog().to_bytes())


def test_the_same_content_makes_the_same_archive() -> None:
    assert build() == build()


def test_stdlib_tarfile_reads_what_we_write() -> None:
    with tarfile.open(fileobj=io.BytesIO(build())) as tf:
        names = tf.getnames()
        assert names[:3] == [CATALOG_NAME, LAYOUT_NAME, INDEX_NAME]
        member = tf.extractfile(BLOB_PREFIX + Digest.of(BLOB_A).hex)
        assert member is not None and member.read() == BLOB_A


def test_layers_over_8_gib_get_base256_sizes() -> None:
    from airlock.archive.format import member_header

    header = member_header(BLOB_PREFIX + "0" * 64, 9 * 1024**3)
    info = tarfile.TarInfo.frombuf(header, "utf-8", "strict")
    assert info.size == 9 * 1024**3


# Unicode category Cs (surrogates), typed as the literal hypothesis wants (a bare ("Cs",) infers tuple[str]).
SURROGATES: tuple[Literal["Cs"]] = ("Cs",)


@settings(max_examples=300, deadline=None)
@given(
    name=st.text(st.characters(blacklist_categories=SURROGATES, blacklist_characters="\0"), max_size=120),
    size=st.one_of(st.integers(0, 2**40), st.sampled_from([0, 511, 512, 8**11 - 1, 8**11])),
    directory=st.booleans(),
)
def test_member_headers_are_tarfiles_own_byte_for_byte(name: str, size: int, directory: bool) -> None:
    # member_header fills a template in for blob members; tarfile is the reference it must match.
    from airlock.archive.format import member_header

    info = tarfile.TarInfo(name)
    info.size = 0 if directory else size
    info.mode = 0o755 if directory else 0o644
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.mtime, info.uname, info.gname = 0, "", ""
    expected = info.tobuf(format=tarfile.GNU_FORMAT, encoding="utf-8", errors="strict")
    assert member_header(name, size, directory=directory) == expected


def _tar(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _prefix() -> list[tuple[tarfile.TarInfo, bytes]]:
    return [
        _file(CATALOG_NAME, _catalog().to_bytes()),
        _file(LAYOUT_NAME, LAYOUT_BYTES),
        _file(INDEX_NAME, INDEX),
    ]


def _link(name: str, target: str, kind: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, b""


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ([*_prefix(), _file("../evil", b"x")], "unexpected member"),
        ([*_prefix(), _file("/etc/passwd", b"x")], "unexpected member"),
        ([*_prefix(), _file("blobs/sha256/../../x", b"x")], "unexpected member"),
        ([*_prefix(), _link(BLOB_PREFIX + "a" * 64, "/etc/shadow", tarfile.SYMTYPE)], "symbolic link"),
        ([*_prefix(), _link(BLOB_PREFIX + "a" * 64, CATALOG_NAME, tarfile.LNKTYPE)], "hard link"),
        ([*_prefix(), _file(BLOB_PREFIX + "a" * 64, b"x"), _file(BLOB_PREFIX + "a" * 64, b"y")], "duplicate"),
        ([_file(LAYOUT_NAME, LAYOUT_BYTES), *_prefix()], "not an airlock transfer blob"),
        ([*_prefix()[:1], _file(INDEX_NAME, b"{}"), _file(LAYOUT_NAME, LAYOUT_BYTES)], "out of order"),
        ([*_prefix(), _file(CATALOG_NAME, b"{}")], "duplicate"),
        ([*_prefix(), _file("blobs/sha256/" + "A" * 64, b"x")], "unexpected member"),
    ],
    ids=[
        "dotdot",
        "absolute",
        "dotdot-in-blobs",
        "symlink",
        "hardlink",
        "duplicate-blob",
        "wrong-first",
        "wrong-order",
        "second-catalog",
        "uppercase-digest",
    ],
)
def test_hostile_members_are_refused(members: list[tuple[tarfile.TarInfo, bytes]], message: str) -> None:
    data = _tar(members)
    with pytest.raises(ArchiveError, match=message):
        read_all(data)


def test_pax_headers_are_refused() -> None:
    info, data = _file(BLOB_PREFIX + "b" * 64, b"x")
    info.pax_headers = {"comment": "y" * 1000}
    # The airlock prefix as the writer makes it, then one member with a pax extended header.
    prefix = b"".join(i.tobuf(tarfile.GNU_FORMAT) + d.ljust(padded(len(d)), b"\0") for i, d in _prefix())
    pax_member = info.tobuf(tarfile.PAX_FORMAT) + data.ljust(512, b"\0")
    with pytest.raises(ArchiveError, match="pax header"):
        read_all(prefix + pax_member + bytes(1024))


def test_a_whole_pax_format_archive_is_refused_at_its_first_header() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for i, d in _prefix():
            tf.addfile(i, io.BytesIO(d))
    with pytest.raises(ArchiveError, match="header airlock does not write"):
        read_all(buf.getvalue())


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda i: setattr(i, "mtime", 1), "header"),
        (lambda i: setattr(i, "uname", "evil"), "header"),
        (lambda i: setattr(i, "mode", 0o4755), "header"),
    ],
    ids=["mtime", "owner", "setuid"],
)
def test_security_headers_must_be_the_writers_byte_for_byte(change: Any, where: str) -> None:
    """The catalogDigest covers the members' content; the reader accepts nothing else that varies,
    so no bytes can cross the gap beside the content unseen."""
    members = _prefix()
    change(members[2][0])  # index.json's header
    with pytest.raises(ArchiveError, match="header airlock does not write"):
        read_all(_tar(members))


def test_security_padding_must_be_zeros() -> None:
    data = bytearray(build())
    # The catalog's data ends inside its last 512-byte block: hide a byte in its padding.
    span = catalog_span(bytes(data[:512]))
    assert span is not None and span % 512
    data[span] = ord("H")
    with pytest.raises(ArchiveError, match="padding"):
        read_all(bytes(data))


def test_security_oci_layout_must_be_the_writers() -> None:
    members = _prefix()
    members[1] = _file(LAYOUT_NAME, b'{"imageLayoutVersion":"1.0.0","hidden":"x"}')
    with pytest.raises(ArchiveError, match="oci-layout"):
        read_all(_tar(members))


def test_truncated_archive_is_refused_at_every_cut() -> None:
    data = build()
    for cut in range(0, len(data) - 1024, 997):
        with pytest.raises(ArchiveError):
            read_all(data[:cut])


def test_flipped_header_byte_fails_the_checksum() -> None:
    data = bytearray(build())
    data[0] ^= 0x01  # first header's name
    with pytest.raises(ArchiveError, match="checksum"):
        read_all(bytes(data))


def test_oversized_catalog_is_refused_before_reading_it() -> None:
    # Header claims a huge catalog; the reader must refuse on the header, not buffer the data.
    info = tarfile.TarInfo(CATALOG_NAME)
    info.size = MAX_CATALOG_SIZE + 1
    header = info.tobuf(format=tarfile.GNU_FORMAT)

    def stream() -> Iterator[bytes]:
        yield header
        while True:  # endless: if the reader tried to buffer it, the test would hang
            yield bytes(1 << 20)

    with pytest.raises(ArchiveError, match="over the"):
        ArchiveReader(stream())


@pytest.mark.parametrize(
    ("catalog", "message"),
    [
        (b"{not json", "not valid JSON"),
        (json.dumps({"schemaVersion": 3}).encode(), "schemaVersion 3"),
        (json.dumps({"schemaVersion": 1}).encode(), "export the artifacts again"),
        (_catalog(requires=["teleport"]).to_bytes(), "requires features this airlock does not support: teleport"),
        (_catalog(requires=["delta"]).to_bytes(), "delta section without requiring 'delta', or the reverse"),
        (json.dumps({"schemaVersion": 2, "mediaType": CATALOG_MEDIA_TYPE}).encode(), "invalid"),
        (_catalog().to_bytes().replace(b'"size":7000', b'"size":"big"'), "invalid"),
    ],
    ids=[
        "garbage",
        "future-version",
        "version-1",
        "unknown-feature",
        "delta-without-section",
        "missing-fields",
        "wrong-type",
    ],
)
def test_bad_catalogs(catalog: bytes, message: str) -> None:
    with pytest.raises(ArchiveError, match=message):
        ArchiveReader(chunked(build(catalog=catalog)))


def test_unknown_catalog_fields_are_ignored_for_forward_compatibility() -> None:
    doc = json.loads(_catalog().to_bytes())
    doc["signatures"] = [{"keyid": "x"}]
    doc["volume"] = {"index": 1, "count": 1}
    got, _ = read_all(build(catalog=json.dumps(doc).encode()))
    assert len(got) == 2


def test_data_after_the_end_marker_is_refused() -> None:
    with pytest.raises(ArchiveError, match="after its end marker"):
        read_all(build() + b"\x01")
    got, _ = read_all(build() + bytes(9216))  # zero record padding, as GNU tar writes, is fine
    assert len(got) == 2


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzz_mutated_archives_only_ever_raise_archive_errors(data: st.DataObject) -> None:
    """Random byte flips, cuts and insertions: the reader raises ArchiveError or reads it; nothing else."""
    raw = bytearray(build())
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        pos = data.draw(st.integers(0, len(raw) - 1))
        if op == "flip":
            raw[pos] ^= data.draw(st.integers(1, 255))
        elif op == "cut":
            del raw[pos : pos + data.draw(st.integers(1, 2048))]
        else:
            raw[pos:pos] = data.draw(st.binary(min_size=1, max_size=600))
        if not raw:
            raw = bytearray(b"\0")
    try:
        read_all(bytes(raw), chunk=data.draw(st.sampled_from([1, 511, 4096])))
    except ArchiveError:
        pass


def test_security_member_name_with_trailing_newline_is_refused() -> None:
    """Regression: '$' in the name pattern matched before a trailing newline, letting a second copy
    of a blob past the duplicate check."""
    name = BLOB_PREFIX + Digest.of(BLOB_A).hex
    data = _tar([*_prefix(), _file(name, BLOB_A), _file(name + "\n", BLOB_A)])
    with pytest.raises(ArchiveError, match="unexpected member"):
        read_all(data)


def test_security_catalog_digests_are_validated_as_archive_errors() -> None:
    doc = json.loads(_catalog().to_bytes())
    doc["blobs"][0]["digest"] = doc["blobs"][0]["digest"] + "\n"
    with pytest.raises(ArchiveError, match="invalid"):
        ArchiveReader(chunked(build(catalog=json.dumps(doc).encode())))


def test_the_catalog_digest_covers_index_json() -> None:
    """index.json is the one member the importer does not check by digest itself: the reader
    checks it against the catalog, so the catalogDigest covers it."""
    other = b'{"schemaVersion":2,"manifests":[{"digest":"x"}]}'
    with pytest.raises(ArchiveError, match=r"index\.json is not the one its catalog names"):
        ArchiveReader(chunked(build(catalog=_catalog().to_bytes(), index=other)))


def test_catalog_span_finds_the_catalog_from_the_first_block() -> None:
    data = build()
    span = catalog_span(data[:512])
    assert span is not None
    assert Digest.of(data[512:span]) == Digest.of(_catalog().to_bytes())
    assert catalog_span(b"not a tar" * 100) is None
    assert catalog_span(data[:100]) is None


def test_a_caller_may_stop_reading_a_member_early() -> None:
    r = ArchiveReader(chunked(build(), 100))
    names = []
    for m in r.blobs():
        names.append(m.name)
        next(iter(r.stream_member(m)))  # take one piece, drop the rest
    r.finish()
    assert len(names) == 2


def _reopening(data: bytes, chunk: int = 100) -> tuple[ArchiveReader, list[int]]:
    opened: list[int] = []

    def reopen(offset: int) -> Iterator[bytes]:
        opened.append(offset)
        return chunked(data[offset:], chunk)

    return ArchiveReader(chunked(data, chunk), reopen=reopen), opened


def test_skip_member_jumps_over_the_data_and_stays_in_step() -> None:
    data = build()
    counted: list[int] = []
    opened: list[int] = []

    def reopen(offset: int) -> Iterator[bytes]:
        opened.append(offset)
        return chunked(data[offset:], 100)

    r = ArchiveReader(chunked(data, 100), reopen=reopen, on_bytes=counted.append)
    skipped = 0
    names = []
    for m in r.blobs():
        names.append(m.name)
        assert r.skip_member(m)
        skipped += m.size
        assert data[opened[-1] - m.size : opened[-1]] == (BLOB_A if m.size == len(BLOB_A) else BLOB_B)
    assert r.finish() == len(data)
    assert names == [BLOB_PREFIX + Digest.of(b).hex for b in (BLOB_A, BLOB_B)]
    assert sum(counted) == len(data) - skipped  # the skipped data is counted by whoever reads it


def test_skip_member_is_refused_without_reopen_or_after_a_partial_read() -> None:
    plain = ArchiveReader(chunked(build(), 100))
    assert not plain.skip_member(next(plain.blobs()))
    r, opened = _reopening(build())
    m = next(r.blobs())
    next(iter(r.stream_member(m)))
    assert not r.skip_member(m) and opened == []


def test_security_a_skipped_members_padding_is_still_checked() -> None:
    data = bytearray(build())
    with tarfile.open(fileobj=io.BytesIO(bytes(data))) as tf:
        member = tf.getmember(BLOB_PREFIX + Digest.of(BLOB_A).hex)
    assert member.size % 512
    data[member.offset_data + member.size] = ord("H")
    r, _ = _reopening(bytes(data))
    with pytest.raises(ArchiveError, match="padding"):
        for m in r.blobs():
            r.skip_member(m)
