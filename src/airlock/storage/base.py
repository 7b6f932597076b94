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
