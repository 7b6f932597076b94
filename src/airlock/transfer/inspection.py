"""Copy a transfer blob between storages, and inspect one without importing it."""

from __future__ import annotations

import hashlib
from collections.abc import Generator, Iterator
from typing import Any

from airlock.archive.format import BLOCK
from airlock.archive.keys import TrustedKeys
from airlock.archive.reader import MAX_TRAILER, ArchiveReader, is_airlock_head
from airlock.archive.signature import check_trusted, signature_json
from airlock.archive.sniff import sniff
from airlock.errors import ArchiveError, BlobNotFound, IntegrityError
from airlock.oci.digest import Digest, Verifier
from airlock.storage.base import TRANSFER_CATEGORY, Blob, BlobInfo
from airlock.transfer.copy_resume import CopyStart, check_resumable, copy_start, resumed_bytes, settle_copy
from airlock.transfer.delta import report as delta_report
from airlock.transfer.options import NoProgress, Progress
from airlock.transfer.pipelining import close_stream, counted
from airlock.transfer.platform_filter import platform_fields
from airlock.transfer.volume_export import BundleTarget, copy_target
from airlock.transfer.volume_source import Bundle, diagnosing, open_bundle, volume_note

# How much of the head of a blob that is not an airlock archive is looked at to say what it is.
_SNIFF_HEAD = 64 * 1024


def copy_blob(
    source: Blob, target: Blob, *, overwrite: bool = False, progress: Progress | None = None, resume: bool = False
) -> dict[str, Any]:
    """Stream ``source`` to ``target`` (any storage to any storage), staged as every write is.

    An airlock archive is verified as it streams, in the same single pass: the bytes written are
    the bytes the strict reader checks, every member against the catalog by digest and size, and
    the end of the archive too. Truncation, a flipped byte, a member the catalog does not list or
    data past the end fails the copy, and the target stays absent; the result says ``verified``.
    Any other blob (it does not begin with an airlock catalog) is copied as it is, unverified,
    with a ``note`` saying what it looks like; an empty one is refused. When the source has a Content-MD5 the bytes are
    checked against it as well. The copy keeps the source's metadata and marks an airlock archive
    ``category=acr-transfer-blob`` even if a previous copy tool stripped it. With ``resume`` it
    continues what an interrupted copy staged, checked as a whole all the same (see
    :mod:`airlock.transfer.copy_resume`); the result then says how many bytes were ``resumed``.
    The first volume of a multi-volume bundle copies every volume to the names beside ``target``
    (``volumes`` in the result), verified the same way, committing nothing before all is verified
    and the head last. Nothing of a bundle is staged for a resume; with ``resume``, the later
    volumes an interrupted copy committed are kept when they are the source's (by digest), and
    only the others are written.

    Raises:
        BlobNotFound, BlobExists, StorageAuthError, StorageError, IntegrityError, ArchiveError.
    """
    progress = progress or NoProgress()
    info = source.stat()
    if info is None:
        raise BlobNotFound(f"source blob {source.display} does not exist")
    if info.size == 0:
        # Nothing a transfer could need, and most often a failed export or copy upstream.
        raise ArchiveError(f"source blob {source.display} is empty (0 bytes): nothing was copied")
    start = copy_start(source, target, info, resume=resume)
    # The first volume of a bundle: every volume is copied, verified, from the start. A bundle's copy
    # stages nothing, so the source is probed unless what is staged shows it cannot be one (a staged
    # file that does not begin as an airlock archive: the probe's read is saved then).
    if not start.keep or _staged_airlock_head(target):
        source = open_bundle(source)
        if isinstance(source, Bundle):
            target = copy_target(source, target, resume=resume)
            info = source.stat() or info
            start = copy_start(source, target, info, resume=resume)
    raw = resumed_bytes(source, target, start)
    try:
        with diagnosing(source, outcome="; nothing was written"):
            result = _copy(source, target, raw, info, overwrite, progress, start)
    finally:
        close_stream(raw)
    kept = start.keep
    if isinstance(target, BundleTarget):
        result["volumes"] = target.volumes_json(head_verified=result["verified"] is True)
        kept += target.kept_bytes
    elif not result["isTransferArchive"] and (note := volume_note(source)):
        result["note"] = note
    return {**result, "resumed": {"bytes": kept}} if resume else result


def _staged_airlock_head(target: Blob) -> bool:
    """Whether what is staged for ``target`` may begin an airlock archive (True where it cannot be read)."""
    staged = target.staged()
    if staged is None or not staged.readable or staged.size < BLOCK:  # too little staged to tell
        return True
    return is_airlock_head(b"".join(target.read_staged(0, BLOCK)))


def _copy(
    source: Blob,
    target: Blob,
    raw: Iterator[bytes],
    info: BlobInfo,
    overwrite: bool,
    progress: Progress,
    start: CopyStart,
) -> dict[str, Any]:
    first, chunks = _peek(raw, _SNIFF_HEAD)
    is_archive = is_airlock_head(first[:BLOCK])
    check_resumable(source, info, start, is_archive=is_archive)
    metadata = dict(info.metadata)
    if is_archive:
        metadata.update(TRANSFER_CATEGORY)
    progress.begin(info.size, f"copy → {target.display}")
    writer = target.resumable_writer(
        overwrite=overwrite, metadata=metadata, tag=start.tag, keep=start.keep, checkable=True
    )
    # Only a source that keeps a Content-MD5 is checked against one; a file has none, and MD5 costs
    # ~1.8 CPU s/GiB on the thread that streams.
    md5 = hashlib.md5() if info.content_md5 else None
    size = 0

    def tee() -> Generator[bytes, None, None]:
        # Each chunk goes to the target as the reader (or the plain copy) asks for it: one pass,
        # nothing held but the chunk in hand.
        nonlocal size
        for chunk in chunks:
            if md5 is not None:
                md5.update(chunk)
            if size < start.keep:  # kept: compared with what is staged, not written again
                try:
                    writer.check_kept(chunk if size + len(chunk) <= start.keep else chunk[: start.keep - size])
                except IntegrityError as exc:
                    raise IntegrityError(f"{exc} (copy again without --resume)") from None
            if size + len(chunk) > start.keep:
                writer.write(chunk[max(0, start.keep - size) :])
                writer.mark(0)
            size += len(chunk)
            progress.advance(len(chunk))
            yield chunk

    catalog_digest: Digest | None = None
    note: str | None = None
    stream = tee()
    try:
        if is_archive:
            try:
                reader = ArchiveReader(stream, name=source.display)
                catalog_digest = reader.catalog_digest
                verify_members(reader)
            except ArchiveError as exc:
                raise ArchiveError(f"copy of {source.display}: {exc}; nothing was written") from None
            except IntegrityError as exc:
                raise IntegrityError(f"copy of {source.display}: {exc}; nothing was written") from None
        else:
            looks_like = sniff(lambda off, n: first[off : off + n]).looks_like
            note = f"not an airlock transfer blob (it looks like {looks_like}): copied as it is, unverified"
            for _ in stream:
                pass
        if size != info.size:
            raise IntegrityError(f"copy of {source.display}: read {size} bytes, the blob has {info.size}")
        if md5 is not None and md5.digest() != info.content_md5:
            raise IntegrityError(f"copy of {source.display}: content does not match the blob's Content-MD5")
        written: BlobInfo = writer.commit()
    except BaseException as exc:
        settle_copy(writer, exc)  # a transient failure keeps what is staged, for --resume
        raise
    finally:
        stream.close()
    return {
        "source": {"uri": source.display},
        "target": {"uri": target.display},
        "size": written.size,
        "catalogDigest": str(catalog_digest) if catalog_digest else None,
        "isTransferArchive": is_archive,
        "verified": is_archive,
        **({"note": note} if note else {}),
    }


def _peek(chunks: Iterator[bytes], n: int) -> tuple[bytes, Iterator[bytes]]:
    """The first ``n`` bytes (fewer if the stream is shorter) and an iterator over all of it.

    Only the chunks that hold the first ``n`` bytes are buffered.
    """
    head: list[bytes] = []
    got = 0
    for chunk in chunks:
        head.append(chunk)
        got += len(chunk)
        if got >= n:
            break

    def again() -> Iterator[bytes]:
        yield from head
        yield from chunks

    return b"".join(head)[:n], again()


def verify_members(reader: ArchiveReader, progress: Progress | None = None) -> None:
    """Read the rest of the archive, checking every member against the catalog by digest and size,
    and its end (the end marker, nothing after it).

    Raises:
        ArchiveError: a member the catalog does not list (or of another size), one it lists
            missing, truncation, anything after the end. IntegrityError: a member's content.
    """
    cat = reader.catalog
    sizes = {m.digest: m.size for m in cat.manifests} | {b.digest: b.size for b in cat.blobs}
    seen: set[str] = set()
    for member in reader.blobs():
        d = member.blob_digest
        assert d is not None
        if sizes.get(str(d)) != member.size:
            raise ArchiveError(f"archive member {member.name} is not listed in the catalog with its size")
        pieces = reader.stream_member(member)
        Verifier(d, member.size, what="archive blob").check(counted(pieces, progress) if progress else pieces)
        seen.add(str(d))
    reader.finish()
    missing = set(sizes) - seen
    if missing:
        raise ArchiveError(f"archive lacks {sorted(missing)[0]}, listed in its catalog (truncated?)")


def inspect_archive(
    source: Blob, *, verify: bool = False, progress: Progress | None = None, trusted: TrustedKeys | None = None
) -> dict[str, Any]:
    """Describe the archive at ``source``: its catalog and artifacts.

    The ``catalogDigest`` is reported at once (it is the catalog's own digest). With ``verify`` the
    whole archive is read and every member checked against the catalog, which verifies the
    catalogDigest for the entire archive. The first volume of a multi-volume bundle is described
    with every volume (``volumes``), each stat-ed; with ``verify`` each is read whole and checked
    against the first volume's table, and a bad one is named by its index. With ``trusted``, the
    signature is checked first (before ``verify`` reads the rest) and the result says which key signed.

    Raises:
        BlobNotFound, StorageAuthError, ArchiveError, IntegrityError.
        BundleNotTrusted: ``trusted`` is given and the bundle is unsigned, signed by another key, or altered.
    """
    info = source.stat()
    if info is None:
        raise BlobNotFound(f"blob {source.display} does not exist")
    source = open_bundle(source)  # the first volume of a bundle: every volume is stat-ed (and verified)
    info = source.stat() or info
    chunks = source.read()
    try:
        reader = ArchiveReader(chunks, read_range=source.read, name=source.display)
        if not verify:
            _check_size(source, reader, info.size)
        if trusted is not None:
            check_trusted(source.display, reader.catalog, reader.catalog_bytes, reader.signature, trusted)
        with diagnosing(source):
            out = _describe(source, reader, info.size, verify, progress)
        if trusted is not None:
            out["signature"] = signature_json(reader.catalog, trusted=True)
    finally:
        close_stream(chunks)
    if isinstance(source, Bundle):  # verified: every member of the first volume was checked too
        out["volumes"] = source.to_json(head_verified=out.get("verified") is True)
    return out


def _check_size(source: Blob, reader: ArchiveReader, size: int) -> None:
    """The blob must be exactly as long as its catalog implies and end with the end marker (plus at
    most the zero padding the reader accepts): a cheap check for truncation and appended data.

    Raises:
        ArchiveError: it is shorter or longer, or its last bytes are not zeros.
    """
    expected = reader.expected_size
    hint = "copy it again; `airlock inspect --verify` checks every member"
    if size < expected:
        raise ArchiveError(
            f"transfer blob {source.display} is truncated: {size} bytes, its catalog implies {expected}; {hint}"
        )
    if size > expected + MAX_TRAILER:
        raise ArchiveError(
            f"transfer blob {source.display} has {size - expected} bytes past its end: {size} bytes, "
            f"its catalog implies {expected}; {hint}"
        )
    chunks = source.read(expected - 2 * BLOCK, size - expected + 2 * BLOCK)
    try:
        tail = b"".join(chunks)  # at most MAX_TRAILER and the end marker
    finally:
        close_stream(chunks)
    if tail[: 2 * BLOCK].strip(b"\0"):
        raise ArchiveError(
            f"transfer blob {source.display} does not end with the archive's end marker (its last member is "
            f"cut or overwritten); {hint}"
        )
    if tail[2 * BLOCK :].strip(b"\0"):
        raise ArchiveError(
            f"transfer blob {source.display} has data past its end: {size - expected} bytes after the end marker; "
            f"{hint}"
        )


def _describe(
    source: Blob, reader: ArchiveReader, size: int, verify: bool, progress: Progress | None
) -> dict[str, Any]:
    cat = reader.catalog
    out: dict[str, Any] = {
        "uri": source.display,
        "size": size,
        "schemaVersion": cat.schema_version,
        "createdAt": cat.created_at.isoformat(),
        "creator": cat.creator,
        "source": {"registry": cat.source.registry},
        "artifacts": [
            {
                "reference": a.reference,
                "digest": a.digest,
                "mediaType": a.media_type,
                **({"artifactType": a.artifact_type} if a.artifact_type else {}),
                **({"subject": a.subject} if a.subject else {}),
                **platform_fields(a),
                **({"origin": a.origin.to_json()} if a.origin else {}),
            }
            for a in cat.artifacts
        ],
        **({"exportRecord": cat.export_record.model_dump(mode="json", by_alias=True)} if cat.export_record else {}),
        **({"requires": cat.requires} if cat.requires else {}),
        "manifestCount": len(cat.manifests),
        "blobCount": len(cat.blobs),
        "contentSize": sum(b.size for b in cat.blobs) + sum(m.size for m in cat.manifests),
        "catalogDigest": str(reader.catalog_digest),
        **({"signature": signature} if (signature := signature_json(cat)) is not None else {}),
    }
    if cat.delta is not None:  # some blobs are expected in the target, not here
        out["requires"] = list(cat.requires)
        out["delta"] = delta_report(cat.delta, size)
    if verify:
        progress = progress or NoProgress()
        progress.begin(size, f"verify {source.display}")
        verify_members(reader, progress)
        out["verified"] = True
    return out
