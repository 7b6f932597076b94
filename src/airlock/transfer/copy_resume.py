"""``airlock copy --resume``: continue a copy from what an interrupted one staged at the target.

The copy stages resumably (:meth:`Blob.resumable_writer`), marking as it writes. A resuming copy
keeps the staged bytes and reads the source from there on (a ranged read), but still checks the
whole: the kept bytes are read again — from the staged file itself on a local target, from the
source on Azure (whose uncommitted blocks cannot be read) — and pass, with the rest, through the
strict archive reader and the source's Content-MD5, so a staged part that is not the source's
fails the copy as any corruption does. Azure's blocks are kept only when the tag they carry names
this source's version (its URI, etag and size), and the kept bytes are given to the writer again
(:meth:`ResumableWriter.check_kept`), which compares each block with the SHA-256 its id carries:
a source rewritten in place with its version unchanged (a FAT stick's 2 s clock) fails the copy
too. A blob that is not an airlock archive and has no Content-MD5 cannot be checked that way, so
it is not resumed.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass

from airlock.errors import AirlockError, UsageError
from airlock.storage.base import Blob, BlobInfo, ResumableWriter


@dataclass(frozen=True)
class CopyStart:
    """Where a copy's write starts: after ``keep`` staged bytes, under ``tag``."""

    tag: str
    keep: int = 0


def copy_tag(source: Blob, info: BlobInfo) -> str:
    """40 hex digits naming the source's version, which staged Azure blocks carry."""
    return hashlib.sha256(f"{source.display}|{info.etag}|{info.size}".encode()).hexdigest()[:40]


def copy_start(source: Blob, target: Blob, info: BlobInfo, *, resume: bool) -> CopyStart:
    """What a copy of ``source`` (whose properties are ``info``) to ``target`` keeps of what is staged."""
    tag = copy_tag(source, info)
    if not resume:
        return CopyStart(tag)
    staged = target.staged()
    if staged is None or (not staged.readable and staged.tag != tag) or staged.size > info.size:
        return CopyStart(tag)  # nothing staged for this version of the source: from the start
    return CopyStart(tag, staged.size)


def resumed_bytes(source: Blob, target: Blob, start: CopyStart) -> Iterator[bytes]:
    """The source's bytes, the first ``start.keep`` of them read back from the staged target (or,
    where it cannot be read, from the source again), the rest by a ranged read of the source."""
    if not start.keep:
        return source.read()
    staged = target.staged()
    kept = target.read_staged(0, start.keep) if staged is not None and staged.readable else source.read(0, start.keep)
    return itertools.chain(kept, source.read(start.keep))


def check_resumable(source: Blob, info: BlobInfo, start: CopyStart, *, is_archive: bool) -> None:
    """Refuse to resume what nothing could check.

    Raises:
        UsageError: resuming a blob that is not an airlock archive and has no Content-MD5.
    """
    if start.keep and not is_archive and info.content_md5 is None:
        raise UsageError(
            f"cannot resume the copy of {source.display}: it is not an airlock archive and has no Content-MD5, "
            "so the staged bytes could not be checked; copy without --resume"
        )


def settle_copy(writer: ResumableWriter, exc: BaseException) -> None:
    """After a failed copy: keep what is staged when the failure may pass (a transient storage or
    network error, an interruption); discard it otherwise (a cut or tampered source, a full disk)."""
    if isinstance(exc, KeyboardInterrupt) or (isinstance(exc, AirlockError) and exc.transient):
        writer.suspend()
    else:
        writer.abort()
