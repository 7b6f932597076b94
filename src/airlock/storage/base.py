"""The storage interface every backend implements: one blob, addressed by URI.

A backend is chosen by the URI's form (see :mod:`airlock.storage.location`); the transfer engine
only ever sees :class:`Blob`, :class:`BlobWriter` and :class:`BlobInfo`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

# Metadata ACR's import trigger looks for (and that airlock's trigger looks for too).
TRANSFER_CATEGORY = {"category": "acr-transfer-blob"}


@dataclass(frozen=True)
class BlobInfo:
    """What a blob's properties say. ``content_md5`` is None where the backend keeps none."""

    size: int
    last_modified: datetime | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    content_md5: bytes | None = None
    etag: str | None = None  # identifies this version of the blob (changes when it is rewritten)


class BlobWriter(Protocol):
    """A staged write: nothing is visible at the blob's URI until :meth:`commit` returns.

    ``write`` may buffer and upload in the background; errors surface from ``write`` or
    ``commit``. After an error, or if the writer is dropped, call :meth:`abort` (idempotent) —
    it discards the staged data. The writer owns no caller-supplied buffers after ``write`` returns.
    """

    def write(self, data: bytes | memoryview) -> None: ...

    def commit(self) -> BlobInfo:
        """Make the blob visible atomically. Raises BlobExists if it appeared meanwhile (no overwrite)."""
        ...

    def abort(self) -> None: ...


@dataclass(frozen=True)
class Staged:
    """What an unfinished resumable write (killed, or stopped with :meth:`ResumableWriter.suspend`)
    left staged for a blob: never visible at the blob's URI, and never listed.

    ``size`` bytes can be kept. ``tag`` is the tag that write was started with (what the engine
    needs to know the plan it was writing); ``marks`` are the ``(label, end offset)`` of the
    checkpoints that survived, in order, the last one ending at ``size``. A backend whose staged
    bytes can be read back (``readable``: a local file) keeps neither tag nor marks: its reader
    verifies the bytes themselves, and every byte of ``size`` may be kept once verified.
    """

    size: int
    tag: str = ""
    marks: tuple[tuple[int, int], ...] = ()
    readable: bool = False


class ResumableWriter(BlobWriter, Protocol):
    """A staged write that a later one may continue (:meth:`Blob.resumable_writer`).

    ``abort`` discards the staged data, as for every writer (Azure cannot delete uncommitted
    blocks: they stay invisible until the service drops them, and :meth:`Blob.staged` may still
    report them, which is harmless: a block is marked only once what it ends was written whole);
    ``suspend`` keeps it for a resume.
    """

    def mark(self, label: int) -> None:
        """Checkpoint: the bytes written so far end a unit (an archive member) that ``label`` names.

        A resuming write may continue after the last mark that reached the storage. Raises what
        ``write`` raises (a mark may flush buffered bytes)."""
        ...

    def suspend(self) -> None:
        """Stop, keeping what was staged (up to the last mark) for a resume. Idempotent; after it,
        ``abort`` does nothing."""
        ...

    def check_kept(self, data: bytes | memoryview) -> None:
        """The kept bytes again, in order and in chunks of any size, before any new byte is written.

        A writer whose staged bytes cannot be read back (Azure) compares them with what it staged
        (the hashes its block ids carry) and hashes them into the blob's ``Content-MD5``; one that
        can (a local file, whose kept bytes a resume reads from the staged file itself) has nothing
        to compare them with. Giving none is allowed (an export, which has no longer the bytes);
        giving some, then committing before all were given, is not.

        Raises:
            IntegrityError: the bytes differ from the staged ones, or more were given than were kept
                (here or at ``commit``: fewer), or they were staged by a write that was not
                ``checkable``. StorageError: new bytes were already written.
        """
        ...


class Blob(Protocol):
    """One blob in some storage. ``display`` is its URI without credentials, for messages."""

    @property
    def display(self) -> str: ...

    def stat(self) -> BlobInfo | None:
        """The blob's properties, or None when it does not exist.

        Raises:
            StorageAuthError: the credential is refused or lacks read permission.
        """
        ...

    def read(self, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        """Stream ``length`` bytes (all, by default) from ``offset``, in chunks of any size.

        Raises:
            BlobNotFound, StorageAuthError, StorageError (the blob changed while being read).
        """
        ...

    def writer(self, *, overwrite: bool, metadata: dict[str, str]) -> BlobWriter:
        """Start a staged write. Fails early with BlobExists when the blob exists and not ``overwrite``."""
        ...

    def suffixed(self, suffix: str) -> Blob:
        """The blob whose name is this one's followed by ``suffix`` (a later volume of a bundle:
        ``batch1.tar`` → ``batch1.tar.002``), in the same directory or container, reached with the
        same credential. It need not exist."""
        ...

    def staged(self) -> Staged | None:
        """What an unfinished resumable write left for this blob, or None when nothing is staged.

        Raises:
            StorageAuthError: the credential cannot read the staged state (Azure: read permission).
        """
        ...

    def read_staged(self, offset: int, length: int) -> Iterator[bytes]:
        """Stream ``length`` staged bytes from ``offset`` (only when :meth:`staged` says ``readable``).

        Raises:
            StorageError: nothing staged, fewer bytes staged, or this backend cannot read them back.
        """
        ...

    def resumable_writer(
        self, *, overwrite: bool, metadata: dict[str, str], tag: str, keep: int, checkable: bool = False
    ) -> ResumableWriter:
        """Start a staged write that continues after the first ``keep`` staged bytes (0: start over,
        discarding anything staged). ``keep`` must be a staged ``size`` or mark offset that
        :meth:`staged` reported; ``tag`` (40 lower-case hex digits) is kept with the staged data so that
        :meth:`staged` can name it. One resumable writer per blob at a time. ``checkable``: a later
        resume will give the kept bytes again (:meth:`ResumableWriter.check_kept`), so a backend
        that cannot read staged bytes back keeps what it needs to compare them (Azure: a SHA-256
        of every block, which an export, which has not the bytes again, does not pay for).

        Raises:
            BlobExists: as :meth:`writer`. StorageError: ``keep`` is more than is staged, or another
            writer is writing this blob's staged data now.
        """
        ...

    def delete(self, *, if_match: str | None = None) -> None:
        """Delete the blob — only if its ``etag`` (from :meth:`stat`) is still ``if_match``, when given.

        Raises:
            BlobNotFound: it is not there. StorageError: it changed since ``if_match`` was read.
            StorageAuthError: no delete permission.
        """
        ...


class Container(Protocol):
    """A container (Azure) or directory (file) of blobs: what an import trigger watches."""

    @property
    def display(self) -> str: ...

    def list_blobs(self) -> Iterator[tuple[str, BlobInfo]]:
        """(name, properties with metadata) of every blob, in any order.

        Raises:
            BlobNotFound: the container does not exist.
            StorageAuthError: the credential lacks List permission.
        """
        ...

    def blob(self, name: str) -> Blob:
        """The blob called ``name`` in this container (which need not exist yet)."""
        ...
