"""One conformance suite, run against every storage backend: file:// and Azure Blob (real Azurite)."""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from airlock.errors import BlobExists, BlobNotFound, IntegrityError, StorageAuthError, StorageError, UsageError
from airlock.storage import partial_file
from airlock.storage.base import TRANSFER_CATEGORY, Blob, ResumableWriter
from airlock.storage.location import open_blob, parse_blob_uri
from airlock.testing import azurite as az
from airlock.testing.azurite import AzuriteServer

MakeBlob = Callable[[str], Blob]
CONTAINER = "conformance"


@pytest.fixture(scope="module")
def azure_sas(azurite: AzuriteServer) -> str:
    az.create_container(azurite, "srcacct", CONTAINER)
    return az.container_sas(azurite, "srcacct", CONTAINER, permissions="racwdl")


@pytest.fixture(params=["file", "azure"])
def make_blob(request: pytest.FixtureRequest, tmp_path: Path) -> MakeBlob:
    if request.param == "file":
        return lambda name: open_blob(parse_blob_uri((tmp_path / name).as_uri()))
    server: AzuriteServer = request.getfixturevalue("azurite")
    sas: str = request.getfixturevalue("azure_sas")
    prefix = secrets.token_hex(4)
    base = az.container_url(server, "srcacct", CONTAINER)
    return lambda name: open_blob(parse_blob_uri(f"{base}/{prefix}/{name}"), sas_token=sas)


def payload(n: int) -> bytes:
    return hashlib.shake_256(str(n).encode()).digest(n)


def write(blob: Blob, data: bytes, *, overwrite: bool = False, step: int = 100_000) -> None:
    w = blob.writer(overwrite=overwrite, metadata=dict(TRANSFER_CATEGORY))
    try:
        for i in range(0, len(data), step):
            w.write(data[i : i + step])
        info = w.commit()
    except BaseException:
        w.abort()
        raise
    assert info.size == len(data)
    assert info.content_md5 in (None, hashlib.md5(data).digest())  # Azure keeps one; a file does not


def read(blob: Blob, offset: int = 0, length: int | None = None) -> bytes:
    return b"".join(blob.read(offset, length))


@pytest.mark.parametrize("size", [0, 1, 8 * 1024 * 1024 + 3, 20 * 1024 * 1024])
def test_write_then_read_back(make_blob: MakeBlob, size: int) -> None:
    blob = make_blob(f"blob-{size}.tar")
    data = payload(size)
    write(blob, data, step=3 * 1024 * 1024 + 1)
    assert read(blob) == data
    info = blob.stat()
    assert info is not None and info.size == size


def test_nothing_is_visible_before_commit_and_abort_leaves_nothing(make_blob: MakeBlob) -> None:
    blob = make_blob("staged.tar")
    w = blob.writer(overwrite=False, metadata={})
    w.write(payload(9 * 1024 * 1024))
    assert blob.stat() is None
    w.abort()
    w.abort()  # idempotent
    assert blob.stat() is None


def test_no_overwrite_without_asking(make_blob: MakeBlob) -> None:
    blob = make_blob("exists.tar")
    write(blob, b"first")
    with pytest.raises(BlobExists, match="already exists"):
        blob.writer(overwrite=False, metadata={})
    write(blob, b"second", overwrite=True)
    assert read(blob) == b"second"


def test_blob_created_during_a_write_is_not_clobbered(make_blob: MakeBlob) -> None:
    blob = make_blob("race.tar")
    w = blob.writer(overwrite=False, metadata={})
    w.write(b"mine")
    write(make_blob("race.tar"), b"theirs")
    with pytest.raises(BlobExists):
        w.commit()
    assert read(blob) == b"theirs"


def test_ranged_reads(make_blob: MakeBlob) -> None:
    blob = make_blob("ranges.tar")
    data = payload(10 * 1024 * 1024)
    write(blob, data)
    for off, n in [(0, 10), (5, 1), (8 * 1024 * 1024 - 3, 7), (len(data) - 5, 5), (123, 9 * 1024 * 1024)]:
        assert read(blob, off, n) == data[off : off + n]


def test_concurrent_ranged_reads_of_one_blob(make_blob: MakeBlob, caplog: pytest.LogCaptureFixture) -> None:
    """An import reads a large blob by a ranged read of its own beside the main read: several reads
    of one blob at once must each get their bytes, and warn about nothing on the user's terminal
    (regression: the Azure SDK's pool of 10 connections overflowed, and urllib3 warned on each)."""
    blob = make_blob("concurrent.tar")
    data = payload(16 * 1024 * 1024)
    write(blob, data, step=1024 * 1024)
    spans = [(i * 1024 * 1024, 10 * 1024 * 1024) for i in range(6)]
    caplog.set_level(logging.WARNING)
    with ThreadPoolExecutor(max_workers=len(spans)) as pool:
        got = list(pool.map(lambda span: read(blob, *span), spans))
    assert got == [data[off : off + n] for off, n in spans]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_missing_blob(make_blob: MakeBlob) -> None:
    blob = make_blob("missing.tar")
    assert blob.stat() is None
    with pytest.raises(BlobNotFound):
        read(blob)
    with pytest.raises(BlobNotFound):
        blob.delete()


def test_delete(make_blob: MakeBlob) -> None:
    blob = make_blob("delete-me.tar")
    write(blob, b"x")
    blob.delete()
    assert blob.stat() is None


# --- Azure-specific contract: what ACR's import trigger needs, and SAS failures -------------------


def test_azure_blob_carries_category_and_content_md5(azurite: AzuriteServer, azure_sas: str) -> None:
    blob = open_blob(parse_blob_uri(az.container_url(azurite, "srcacct", CONTAINER) + "/md5.tar"), sas_token=azure_sas)
    data = payload(9 * 1024 * 1024)
    write(blob, data)
    props = az.blob_properties(azurite, "srcacct", CONTAINER, "md5.tar")
    assert props.metadata == {"category": "acr-transfer-blob"}
    content_md5 = props.content_settings.content_md5
    assert content_md5 is not None
    assert bytes(content_md5) == hashlib.md5(data).digest()


@pytest.mark.parametrize(
    ("permissions", "expiry_delta", "op", "message"),
    [
        ("rl", timedelta(hours=1), "write", "permission"),
        ("racwdl", timedelta(hours=-1), "write", "expired"),
        ("wl", timedelta(hours=1), "read", "permission"),
        ("racwl", timedelta(hours=1), "delete", "permission"),
    ],
    ids=["read-only-sas-write", "expired-sas", "write-only-sas-read", "no-delete-permission"],
)
def test_bad_sas_tokens_give_clear_errors_without_the_signature(
    azurite: AzuriteServer, azure_sas: str, permissions: str, expiry_delta: timedelta, op: str, message: str
) -> None:
    base = az.container_url(azurite, "srcacct", CONTAINER)
    good = open_blob(parse_blob_uri(f"{base}/sas-{op}.tar"), sas_token=azure_sas)
    if op != "write":
        write(good, b"content", overwrite=True)
    sas = az.container_sas(
        azurite, "srcacct", CONTAINER, permissions=permissions, expiry=datetime.now(UTC) + expiry_delta
    )
    blob = open_blob(parse_blob_uri(f"{base}/sas-{op}.tar"), sas_token=sas)
    with pytest.raises(StorageAuthError) as info:
        if op == "write":
            write(blob, b"x", overwrite=True)
        elif op == "read":
            read(blob)
        else:
            blob.delete()
    text = str(info.value)
    assert message in text
    assert base in text  # names the blob
    signature = dict(p.split("=", 1) for p in sas.split("&"))["sig"]
    assert signature not in text and "sig=" not in text


def test_sas_for_another_container_is_refused(azurite: AzuriteServer) -> None:
    az.create_container(azurite, "srcacct", "other")
    sas = az.container_sas(azurite, "srcacct", "other", permissions="racwdl")
    blob = open_blob(parse_blob_uri(az.container_url(azurite, "srcacct", CONTAINER) + "/x.tar"), sas_token=sas)
    with pytest.raises(StorageAuthError, match="another"):
        write(blob, b"x")


def test_uri_parsing() -> None:
    loc = parse_blob_uri("https://myacct.blob.core.windows.net/transfer/dir/b.tar")
    assert (loc.account, loc.container, loc.blob) == ("myacct", "transfer", "dir/b.tar")
    loc = parse_blob_uri("http://127.0.0.1:10000/devstoreaccount1/transfer/b.tar")
    assert (loc.account_url, loc.container, loc.blob) == (
        "http://127.0.0.1:10000/devstoreaccount1",
        "transfer",
        "b.tar",
    )
    loc = parse_blob_uri("https://acct.blob.core.chinacloudapi.cn/c0ntainer/b")
    assert loc.account == "acct"
    for bad in [
        "s3://bucket/key",
        "file://relative/path",
        "https://a.blob.core.windows.net/transfer/b?sv=1&sig=x",
        "https://a.blob.core.windows.net/TR/b",
        "https://a.blob.core.windows.net/transfer",
        "127.0.0.1:10000/acct/transfer/b",
        "/tmp/",
    ]:
        with pytest.raises(UsageError) as info:
            parse_blob_uri(bad)
        assert "sig=x" not in str(info.value)


def test_plain_paths_are_local_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Absolute and relative paths mean file:// URIs, as skopeo and oras take them."""
    monkeypatch.chdir(tmp_path)
    assert parse_blob_uri("/tmp/x.tar").path == Path("/tmp/x.tar")
    assert parse_blob_uri("out/x.tar").path == tmp_path / "out" / "x.tar"
    assert parse_blob_uri("./x.tar").path == tmp_path / "x.tar"
    assert parse_blob_uri(f"file://{tmp_path}/x.tar").path == tmp_path / "x.tar"


def test_conditional_delete_spares_a_blob_rewritten_meanwhile(make_blob: MakeBlob) -> None:
    """DeleteSourceBlobOnSuccess deletes only the version it imported, never a newer export."""
    blob = make_blob("conditional.tar")
    write(blob, b"version one")
    first = blob.stat()
    assert first is not None and first.etag
    write(blob, b"version two, longer", overwrite=True)
    with pytest.raises(StorageError, match="changed since"):
        blob.delete(if_match=first.etag)
    assert read(blob) == b"version two, longer"
    current = blob.stat()
    assert current is not None
    blob.delete(if_match=current.etag)
    assert blob.stat() is None


# -- resumable writes (export and copy --resume) --

KIB = 1024


def tag_of(name: str) -> str:
    """A resumable write's tag (40 hex digits) for ``name``."""
    return hashlib.sha256(name.encode()).hexdigest()[:40]


PLAN1, PLAN2 = tag_of("plan1"), tag_of("plan2")


def staged_write(
    blob: Blob, parts: list[bytes], *, tag: str, keep: int = 0, marked: int | None = None, checkable: bool = False
) -> None:
    """Write ``parts`` resumably, marking after each of the first ``marked`` (all by default), then suspend."""
    w = blob.resumable_writer(
        overwrite=False, metadata=dict(TRANSFER_CATEGORY), tag=tag, keep=keep, checkable=checkable
    )
    for label, part in enumerate(parts):
        w.write(part)
        if marked is None or label < marked:
            w.mark(label)
    w.suspend()
    w.abort()  # a no-op after suspend


def test_a_suspended_resumable_write_is_invisible_and_a_resume_keeps_its_marked_bytes(make_blob: MakeBlob) -> None:
    blob = make_blob("resumable.tar")
    a, b, c, d = payload(100 * KIB), payload(90 * KIB), payload(70 * KIB), payload(30 * KIB)
    staged_write(blob, [a, b, c], tag=PLAN1, marked=2)  # c is written but not marked
    assert blob.stat() is None
    staged = blob.staged()
    assert staged is not None
    if staged.readable:  # a file: every byte, read back by the resuming engine
        assert staged.size == len(a + b + c) and b"".join(blob.read_staged(0, staged.size)) == a + b + c
    else:  # Azure: the blocks up to the last mark that landed, named by the tag
        assert staged.tag == PLAN1
        assert staged.marks == ((0, len(a)), (1, len(a + b)))
        assert staged.size == len(a + b)
        with pytest.raises(StorageError, match="cannot be read back"):
            blob.read_staged(0, 1)
    w = blob.resumable_writer(overwrite=False, metadata=dict(TRANSFER_CATEGORY), tag=PLAN1, keep=len(a + b))
    w.write(d)
    info = w.commit()
    assert info.size == len(a + b + d)
    assert read(blob) == a + b + d
    assert blob.staged() is None


def given_again(writer: ResumableWriter, data: bytes, step: int = 7_001) -> None:
    for i in range(0, len(data), step):
        writer.check_kept(data[i : i + step])


def test_a_resume_given_the_kept_bytes_again_commits_the_whole_with_its_content_md5(make_blob: MakeBlob) -> None:
    blob = make_blob("given-again.tar")
    a, b, c, d = payload(100 * KIB), payload(90 * KIB), payload(70 * KIB), payload(30 * KIB)
    staged_write(blob, [a, b, c], tag=PLAN1, marked=2, checkable=True)
    staged = blob.staged()
    assert staged is not None
    keep = len(a + b)
    w = blob.resumable_writer(overwrite=False, metadata=dict(TRANSFER_CATEGORY), tag=PLAN1, keep=keep, checkable=True)
    given_again(w, a + b)  # a copy reads them anyway: from the source (Azure), or the staged file
    w.write(d)
    info = w.commit()
    assert read(blob) == a + b + d and blob.staged() is None
    stat = blob.stat()
    assert stat is not None
    if staged.readable:
        assert info.content_md5 is None and stat.content_md5 is None  # a file keeps none
    else:  # Azure: checked against the hashes in the kept blocks' ids, then hashed with the new bytes
        assert info.content_md5 == stat.content_md5 == hashlib.md5(a + b + d).digest()


# Regression: a copy --resume to Azure kept the staged blocks unchecked (they cannot be read back)
# and said "verified": a staged block that was not the source's bytes was committed as they were.
@pytest.mark.parametrize("make_blob", ["azure"], indirect=True)  # a file's kept bytes are read from itself
def test_a_resume_refuses_kept_bytes_given_again_that_are_not_the_staged_ones(make_blob: MakeBlob) -> None:
    blob = make_blob("not-staged.tar")
    a, b = payload(100 * KIB), payload(90 * KIB)
    staged_write(blob, [a, b], tag=PLAN1, checkable=True)
    w = blob.resumable_writer(overwrite=False, metadata={}, tag=PLAN1, keep=len(a + b), checkable=True)
    other = bytearray(b)
    other[1000] ^= 1
    with pytest.raises(IntegrityError, match=rf"staged block 1 \(bytes {len(a)}-{len(a + b) - 1}\) is not the source"):
        given_again(w, a + bytes(other))
    w.abort()
    assert blob.stat() is None
    # A write that was not checkable (an export's) hashed nothing: its kept blocks cannot be checked.
    staged_write(blob, [a, b], tag=PLAN2)
    w = blob.resumable_writer(overwrite=False, metadata={}, tag=PLAN2, keep=len(a + b), checkable=True)
    with pytest.raises(IntegrityError, match="staged block 0 was written without its content hash"):
        given_again(w, a + b)
    w.abort()
    assert blob.stat() is None


def test_a_resume_refuses_more_or_fewer_kept_bytes_than_it_kept_and_any_after_new_ones(make_blob: MakeBlob) -> None:
    blob = make_blob("miscounted.tar")
    a, b = payload(100 * KIB), payload(90 * KIB)
    staged_write(blob, [a, b], tag=PLAN1, checkable=True)
    keep = len(a + b)
    w = blob.resumable_writer(overwrite=False, metadata={}, tag=PLAN1, keep=keep, checkable=True)
    with pytest.raises(IntegrityError, match="more bytes given again than were staged"):
        given_again(w, a + b + b"x")
    w.abort()
    staged_write(blob, [a, b], tag=PLAN1, checkable=True)
    w = blob.resumable_writer(overwrite=False, metadata={}, tag=PLAN1, keep=keep, checkable=True)
    given_again(w, a)
    with pytest.raises(IntegrityError, match=f"{len(a)} of .*{keep} staged bytes were given again"):
        w.commit()
    assert blob.stat() is None
    staged_write(blob, [a, b], tag=PLAN1, checkable=True)
    w = blob.resumable_writer(overwrite=False, metadata={}, tag=PLAN1, keep=keep, checkable=True)
    w.write(b"new")
    with pytest.raises(StorageError, match="kept bytes are given again before any new ones"):
        w.check_kept(a)
    w.abort()
    assert blob.stat() is None


def test_a_resumable_write_from_zero_replaces_what_was_staged(make_blob: MakeBlob) -> None:
    blob = make_blob("restart.tar")
    staged_write(blob, [payload(100 * KIB), payload(80 * KIB)], tag=tag_of("old"))
    w = blob.resumable_writer(overwrite=False, metadata={}, tag=tag_of("new"), keep=0)
    w.write(b"fresh")
    w.commit()
    assert read(blob) == b"fresh"
    assert blob.staged() is None


def test_a_resume_cannot_keep_more_than_was_staged(make_blob: MakeBlob) -> None:
    blob = make_blob("short.tar")
    staged_write(blob, [payload(100 * KIB)], tag=PLAN2)
    with pytest.raises(StorageError, match="cannot resume"):
        blob.resumable_writer(overwrite=False, metadata={}, tag=PLAN2, keep=200 * KIB)


def test_an_aborted_resumable_write_leaves_no_blob(make_blob: MakeBlob) -> None:
    blob = make_blob("aborted.tar")
    w = blob.resumable_writer(overwrite=False, metadata={}, tag=tag_of("plan3"), keep=0)
    w.write(payload(100 * KIB))
    w.mark(0)
    w.abort()
    assert blob.stat() is None


def test_two_resumable_writers_of_one_file_are_kept_apart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(partial_file, "LOCK_WAIT", 0.3)  # how long the second one waits for the first
    blob = open_blob(parse_blob_uri((tmp_path / "busy.tar").as_uri()))
    first = blob.resumable_writer(overwrite=False, metadata={}, tag="", keep=0)
    try:
        first.write(b"x" * 10)
        with pytest.raises(StorageError, match="another airlock process is writing it"):
            blob.resumable_writer(overwrite=False, metadata={}, tag="", keep=0)
    finally:
        first.abort()
    assert blob.staged() is None and list(tmp_path.iterdir()) == []


def test_a_writer_that_waited_for_another_ones_commit_never_touches_the_committed_file(tmp_path: Path) -> None:
    target = tmp_path / "raced.tar"
    blob = open_blob(parse_blob_uri(target.as_uri()))
    first = blob.resumable_writer(overwrite=True, metadata={}, tag="", keep=0)
    first.write(b"first")
    committed = threading.Timer(0.2, first.commit)  # while the second one waits for the lock
    committed.start()
    second = blob.resumable_writer(overwrite=True, metadata={}, tag="", keep=0)
    committed.join()
    assert target.read_bytes() == b"first"  # the second locked a fresh staged file, not the committed inode
    second.write(b"second")
    second.commit()
    assert target.read_bytes() == b"second" and blob.staged() is None


# Regression: a resuming writer that waited for another one, which then committed (or discarded)
# the staged file, created a fresh one, found it shorter than what it meant to keep, and left it
# behind: a 0-byte hidden partial beside the target.
@pytest.mark.parametrize("first_ends", ["commit", "abort"])
def test_a_resuming_writer_whose_staged_bytes_went_meanwhile_leaves_no_partial(tmp_path: Path, first_ends: str) -> None:
    target = tmp_path / "raced.tar"
    blob = open_blob(parse_blob_uri(target.as_uri()))
    first = blob.resumable_writer(overwrite=False, metadata={}, tag="", keep=0)
    first.write(b"x" * 10)
    ended = threading.Timer(0.2, getattr(first, first_ends))  # while the second one waits for the lock
    ended.start()
    with pytest.raises(StorageError, match=r"cannot resume .*10 bytes to keep, 0 staged"):
        blob.resumable_writer(overwrite=False, metadata={}, tag="", keep=10)
    ended.join()
    assert blob.staged() is None
    assert sorted(p.name for p in tmp_path.iterdir()) == (["raced.tar"] if first_ends == "commit" else [])


# Regression: an interrupted resumable write's hidden partial outlived every later write of the same
# name that did not go through it (a bundle's first volume, a plain writer): hidden space lost on a
# stick, and a partial that no run would ever resume.
def test_a_plain_write_of_a_name_removes_its_stale_partial_unless_a_writer_holds_it(tmp_path: Path) -> None:
    target = tmp_path / "b.tar"
    blob = open_blob(parse_blob_uri(target.as_uri()))
    interrupted = blob.resumable_writer(overwrite=False, metadata={}, tag="", keep=0)
    interrupted.write(b"x" * 100)
    interrupted.suspend()  # as a killed or failed run leaves it, for --resume
    running = blob.resumable_writer(overwrite=True, metadata={}, tag="", keep=100)  # takes it over: holds the lock
    plain = blob.writer(overwrite=True, metadata={})
    plain.write(b"y")
    plain.commit()
    assert partial_file.partial_path(target).exists()  # a running writer's is left alone
    running.suspend()
    again = blob.writer(overwrite=True, metadata={})
    again.write(b"z")
    again.commit()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.tar"]
    assert target.read_bytes() == b"z"
