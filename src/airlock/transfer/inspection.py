"""Copy a transfer blob between storages, and inspect one without importing it."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

from airlock.archive.format import BLOCK
from airlock.archive.reader import ArchiveReader, catalog_span
from airlock.errors import ArchiveError, BlobNotFound, IntegrityError
from airlock.oci.digest import Digest, Verifier
from airlock.storage.base import TRANSFER_CATEGORY, Blob, BlobInfo
from airlock.transfer.options import NoProgress, Progress
from airlock.transfer.pipelining import close_stream, counted


def copy_blob(
    source: Blob, target: Blob, *, overwrite: bool = False, progress: Progress | None = None
) -> dict[str, Any]:
    """Stream ``source`` to ``target`` (any storage to any storage), staged as every write is.

    The copy keeps the source's metadata and marks an airlock archive ``category=acr-transfer-blob``
    even if a previous copy tool stripped it. When the source has a Content-MD5 the bytes are
    checked against it, so a corrupted read fails instead of landing. The ``catalogDigest``
    reported is read from the catalog at the head of the stream; it vouches for the rest only once
    the members are checked against it (``inspect --verify`` on the target, or the import).

    Raises:
        BlobNotFound, BlobExists, StorageAuthError, StorageError, IntegrityError.
    """
    progress = progress or NoProgress()
    info = source.stat()
    if info is None:
        raise BlobNotFound(f"source blob {source.display} does not exist")
    raw = source.read()
    try:
        return _copy(source, target, raw, info, overwrite, progress)
    finally:
        close_stream(raw)


def _copy(
    source: Blob, target: Blob, raw: Iterator[bytes], info: BlobInfo, overwrite: bool, progress: Progress
) -> dict[str, Any]:
    first, chunks = _peek(raw, BLOCK)
    span = catalog_span(first)
    catalog_digest: Digest | None = None
    if span is not None:
        head, chunks = _peek(chunks, span)
        if len(head) == span:
            catalog_digest = Digest.of(head[BLOCK:])
    is_archive = catalog_digest is not None
    metadata = dict(info.metadata)
    if is_archive:
        metadata.update(TRANSFER_CATEGORY)
    progress.begin(info.size, f"copy → {target.display}")
    writer = target.writer(overwrite=overwrite, metadata=metadata)
    md5 = hashlib.md5()
    size = 0
    try:
        for chunk in chunks:
            md5.update(chunk)
            size += len(chunk)
            writer.write(chunk)
            progress.advance(len(chunk))
        if size != info.size:
            raise IntegrityError(f"copy of {source.display}: read {size} bytes, the blob has {info.size}")
        if info.content_md5 and md5.digest() != info.content_md5:
            raise IntegrityError(f"copy of {source.display}: content does not match the blob's Content-MD5")
        written: BlobInfo = writer.commit()
    except BaseException:
        writer.abort()
        raise
    return {
        "source": {"uri": source.display},
        "target": {"uri": target.display},
        "size": written.size,
        "catalogDigest": str(catalog_digest) if catalog_digest else None,
        "isTransferArchive": is_archive,
    }


def _peek(chunks: Iterator[bytes], n: int) -> tuple[bytes, Iterator[bytes]]:
    """The first ``n`` bytes (fewer if the stream is shorter) and an iterator over all of it.

    Only the chunks that hold the first ``n`` bytes are buffered (``n`` is at most a catalog's cap).
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


def inspect_archive(source: Blob, *, verify: bool = False, progress: Progress | None = None) -> dict[str, Any]:
    """Describe the archive at ``source``: its catalog and artifacts.

    The ``catalogDigest`` is reported at once (it is the catalog's own digest). With ``verify`` the
    whole archive is read and every member checked against the catalog, which verifies the
    catalogDigest for the entire archive.

    Raises:
        BlobNotFound, StorageAuthError, ArchiveError, IntegrityError.
    """
    info = source.stat()
    if info is None:
        raise BlobNotFound(f"blob {source.display} does not exist")
    chunks = source.read()
    try:
        return _describe(source, ArchiveReader(chunks), info.size, verify, progress)
    finally:
        close_stream(chunks)


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
            }
            for a in cat.artifacts
        ],
        "manifestCount": len(cat.manifests),
        "blobCount": len(cat.blobs),
        "contentSize": sum(b.size for b in cat.blobs) + sum(m.size for m in cat.manifests),
        "catalogDigest": str(reader.catalog_digest),
    }
    if verify:
        progress = progress or NoProgress()
        progress.begin(size, f"verify {source.display}")
        sizes = {m.digest: m.size for m in cat.manifests} | {b.digest: b.size for b in cat.blobs}
        seen: set[str] = set()
        for member in reader.blobs():
            d = member.blob_digest
            assert d is not None
            if sizes.get(str(d)) != member.size:
                raise ArchiveError(f"archive member {member.name} is not listed in the catalog with its size")
            Verifier(d, member.size, what=f"archive blob {d}").check(counted(reader.stream_member(member), progress))
            seen.add(str(d))
        reader.finish()
        missing = set(sizes) - seen
        if missing:
            raise ArchiveError(f"archive lacks {sorted(missing)[0]}, listed in its catalog (truncated?)")
        out["verified"] = True
    return out
