"""``file:///abs/path`` blobs on a local filesystem.

Staging uses an anonymous ``O_TMPFILE`` inode in the target directory, linked into place on
commit, so a process killed mid-write leaves nothing behind at all. Where the filesystem lacks
``O_TMPFILE`` a hidden ``.name.airlock-partial-*`` file is used instead.

Resumable writes (exports, copies) stage in a hidden file of a fixed name beside the target,
``.name.airlock-partial`` (see :mod:`airlock.storage.partial_file`), so that a later run can find
what a killed one wrote; it is never listed, and it carries no metadata.
"""

from __future__ import annotations

import errno
import io
import os
import queue
import secrets
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from airlock.errors import BlobChanged, BlobExists, BlobNotFound, StorageError, UsageError
from airlock.storage.base import BlobInfo, Staged
from airlock.storage.partial_file import (
    PartialFileWriter,
    discard_partial,
    link_if_absent,
    partial_path,
    sync_directory,
    write_all,
)

_READ = 1024 * 1024  # bounded-window pipelines count bytes; 1 MiB keeps reads cheap and windows fine-grained


class FileBlob:
    """A blob stored as one regular file. See :class:`airlock.storage.base.Blob` for contracts."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def display(self) -> str:
        return self.path.as_uri()

    def stat(self) -> BlobInfo | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"cannot stat {self.display}: {exc.strerror}") from None
        return BlobInfo(
            size=st.st_size,
            last_modified=datetime.fromtimestamp(st.st_mtime, UTC),
            etag=f"{st.st_ino}-{st.st_mtime_ns}-{st.st_size}",
        )

    def read(self, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        # Checked now so a missing blob fails at the call; the file is opened lazily so that an
        # iterator that is never started holds no descriptor.
        try:
            self.path.stat()
        except FileNotFoundError:
            raise BlobNotFound(f"blob {self.display} does not exist") from None
        except OSError as exc:
            raise StorageError(f"cannot open {self.display}: {exc.strerror}") from None
        return self._chunks(offset, length)

    def _chunks(self, offset: int, length: int | None) -> Iterator[bytes]:
        try:
            f = io.FileIO(self.path, "rb")
        except OSError as exc:
            raise StorageError(f"cannot open {self.display}: {exc.strerror}") from None
        with f:
            f.seek(offset)
            if hasattr(os, "posix_fadvise"):
                os.posix_fadvise(f.fileno(), offset, length or 0, os.POSIX_FADV_SEQUENTIAL)
            if length is not None and length <= _READ_AHEAD_MIN:
                yield from self._read(f, length)
            else:
                # A reader thread keeps the disk busy while the consumer hashes and uploads: profiling
                # showed import's main thread waiting on cold 1 MiB reads for half its time.
                yield from _read_ahead(self._read(f, length), depth=_READ_AHEAD_DEPTH)

    def _read(self, f: io.FileIO, length: int | None) -> Iterator[bytes]:
        left = length
        while left is None or left > 0:
            chunk = f.read(_READ if left is None else min(_READ, left))
            if not chunk:
                break
            if left is not None:
                left -= len(chunk)
            yield chunk
        if left:
            raise StorageError(f"{self.display}: ended {left} bytes early (truncated?)")

    def writer(self, *, overwrite: bool, metadata: dict[str, str]) -> FileWriter:
        del metadata  # a plain file has no place for it; the archive is self-describing
        if not overwrite and self.path.exists():
            raise BlobExists(f"blob {self.display} already exists", blob=self.display)
        if not self.path.parent.is_dir():
            raise BlobNotFound(f"cannot write {self.display}: directory {self.path.parent} does not exist")
        return FileWriter(self.path, overwrite=overwrite)

    def suffixed(self, suffix: str) -> FileBlob:
        return FileBlob(self.path.with_name(self.path.name + suffix))

    def staged(self) -> Staged | None:
        try:
            return Staged(size=partial_path(self.path).stat().st_size, readable=True)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"cannot stat the staged part of {self.display}: {exc.strerror}") from None

    def read_staged(self, offset: int, length: int) -> Iterator[bytes]:
        partial = FileBlob(partial_path(self.path))
        try:
            return partial.read(offset, length)
        except BlobNotFound:
            raise StorageError(f"nothing is staged for {self.display}") from None

    def resumable_writer(
        self, *, overwrite: bool, metadata: dict[str, str], tag: str, keep: int, checkable: bool = False
    ) -> PartialFileWriter:
        del metadata, tag  # a plain file has no place for them; the staged bytes are read back instead
        if not overwrite and self.path.exists():
            raise BlobExists(f"blob {self.display} already exists", blob=self.display)
        if not self.path.parent.is_dir():
            raise BlobNotFound(f"cannot write {self.display}: directory {self.path.parent} does not exist")
        return PartialFileWriter(self.path, overwrite=overwrite, keep=keep)

    def delete(self, *, if_match: str | None = None) -> None:
        if if_match is not None:
            info = self.stat()
            if info is None:
                raise BlobNotFound(f"blob {self.display} does not exist")
            if info.etag != if_match:
                raise BlobChanged(f"blob {self.display} changed since it was read; not deleted")
        try:
            self.path.unlink()
        except FileNotFoundError:
            raise BlobNotFound(f"blob {self.display} does not exist") from None
        except OSError as exc:
            raise StorageError(f"cannot delete {self.display}: {exc.strerror}") from None


class FileWriter:
    """Staged file write; see :class:`airlock.storage.base.BlobWriter`."""

    def __init__(self, path: Path, *, overwrite: bool) -> None:
        self.path = path
        self.overwrite = overwrite
        self._size = 0
        self._temp_name: Path | None = None
        try:
            if not os.path.isdir("/proc/self/fd"):  # needed to link the anonymous inode at commit
                raise OSError(errno.EOPNOTSUPP, "no /proc")
            self._fd = os.open(path.parent, os.O_TMPFILE | os.O_WRONLY, 0o644)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT):
                raise StorageError(f"cannot write {path.as_uri()}: {exc.strerror}") from None
            self._temp_name = path.with_name(f".{path.name}.airlock-partial-{secrets.token_hex(6)}")
            try:
                self._fd = os.open(self._temp_name, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except OSError as exc2:
                raise StorageError(f"cannot write {path.as_uri()}: {exc2.strerror}") from None
        self._closed = False

    def write(self, data: bytes | memoryview) -> None:
        self._size += write_all(self._fd, data, self.path)

    def commit(self) -> BlobInfo:
        try:
            os.fsync(self._fd)
            if self._temp_name is None:
                staged = self.path.with_name(f".{self.path.name}.airlock-commit-{secrets.token_hex(6)}")
                # linkat(AT_SYMLINK_FOLLOW) on /proc/self/fd names the anonymous inode; CPython
                # only calls linkat (not link) when a dir fd is given.
                dir_fd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
                try:
                    os.link(f"/proc/self/fd/{self._fd}", staged.name, dst_dir_fd=dir_fd, follow_symlinks=True)
                finally:
                    os.close(dir_fd)
            else:
                staged = self._temp_name
            try:
                if self.overwrite:
                    os.replace(staged, self.path)
                else:
                    link_if_absent(staged, self.path)
            finally:
                try:
                    os.unlink(staged)  # gone already after a successful replace
                except FileNotFoundError:
                    pass
            self._temp_name = None
        except FileExistsError:
            raise BlobExists(
                f"blob {self.path.as_uri()} was created by someone else while this one was written",
                blob=self.path.as_uri(),
            ) from None
        except OSError as exc:
            raise StorageError(f"cannot commit {self.path.as_uri()}: {exc.strerror}") from None
        finally:
            self.abort()
        discard_partial(self.path)  # an interrupted resumable write of this name can no longer resume
        sync_directory(self.path.parent)  # the new directory entry survives a crash too
        # No Content-MD5: a file has nowhere to keep it, and hashing would cost a second pass over
        # every byte on the hot path (the archive's own sha256 is its integrity check).
        return BlobInfo(size=self._size, last_modified=datetime.now(UTC))

    def abort(self) -> None:
        if not self._closed:
            self._closed = True
            os.close(self._fd)
        if self._temp_name is not None:
            try:
                os.unlink(self._temp_name)
            except FileNotFoundError:
                pass
            self._temp_name = None


_READ_AHEAD_MIN = 4 * 1024 * 1024
_READ_AHEAD_DEPTH = 4  # chunks of _READ bytes held ahead of the consumer


def _read_ahead(chunks: Iterator[bytes], *, depth: int) -> Iterator[bytes]:
    """Yield ``chunks`` as read by a helper thread up to ``depth`` chunks ahead.

    Errors of the source are raised in the consumer; closing the generator stops the thread.
    """
    q: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def put(item: object) -> bool:
        """Queue ``item`` unless the consumer has gone; False when it has."""
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for chunk in chunks:
                if not put(chunk):
                    return
            put(end)
        except BaseException as exc:  # handed to the consumer, which raises it
            put(exc)
        finally:
            chunks.close()  # type: ignore[attr-defined]

    thread = threading.Thread(target=produce, name="file-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is end:
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, bytes)
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)


class FileContainer:
    """A directory of blobs. Hidden files (staging names) are never listed."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def display(self) -> str:
        return self.path.as_uri()

    def list_blobs(self) -> Iterator[tuple[str, BlobInfo]]:
        try:
            entries = sorted(os.scandir(self.path), key=lambda e: e.name)
        except FileNotFoundError:
            raise BlobNotFound(f"container {self.display} does not exist") from None
        except PermissionError:
            raise StorageError(f"cannot list {self.display}: permission denied") from None
        for entry in entries:
            if entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
                continue
            info = FileBlob(Path(entry.path)).stat()
            if info is not None:
                yield entry.name, info

    def blob(self, name: str) -> FileBlob:
        if "/" in name or name in ("", ".", "..") or name.startswith("."):
            raise UsageError(f"invalid blob name {name!r} for container {self.display}")
        return FileBlob(self.path / name)
