"""The resumable staged write of a local file: a hidden ``.name.airlock-partial`` beside the target.

The name is fixed so that a run after a killed one finds the bytes it wrote; an exclusive
``flock`` on it keeps two writers apart (the kernel drops the lock of a killed process). Commit
links it into place (:func:`link_if_absent` when not overwriting), as the ``O_TMPFILE`` writer of
:mod:`airlock.storage.filesystem` does with its anonymous inode.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import time
from datetime import UTC, datetime
from pathlib import Path

from airlock.errors import BlobExists, IntegrityError, StorageError
from airlock.storage.base import BlobInfo

PARTIAL_SUFFIX = ".airlock-partial"
LOCK_WAIT = 10.0  # seconds a writer waits for another one's lock (a run being taken over stops within 1 s)


def partial_path(path: Path) -> Path:
    """Where a resumable write of ``path`` stages: hidden, so containers never list it."""
    return path.with_name(f".{path.name}{PARTIAL_SUFFIX}")


def write_all(fd: int, data: bytes | memoryview, path: Path) -> int:
    """Write all of ``data`` to ``fd`` (``os.write`` may write less) and return its length.

    Raises:
        StorageError: the write failed (a full disk, an I/O error), naming ``path``.
    """
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except OSError as exc:
        raise StorageError(f"writing {path.as_uri()} failed: {exc.strerror}") from None
    return len(data)


def sync_directory(directory: Path) -> None:
    """fsync ``directory``, so that an entry just linked or renamed in it survives a crash."""
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


# What link() answers on a file system without hard links: FAT32 and exFAT (removable media, the
# media volumes are for) give EPERM, FUSE file systems EPERM or ENOSYS.
_NO_HARD_LINKS = frozenset({errno.EPERM, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP})


def link_if_absent(staged: Path, target: Path) -> bool:
    """Give the file ``staged`` the name ``target`` unless that exists: a hard link, atomic. Where
    the file system has no hard links, ``staged`` is renamed onto ``target`` instead, under an
    exclusive ``flock`` of ``target``'s directory after checking that ``target`` is absent: atomic
    against other airlock writers (they take the same lock), not against other programs writing
    that name in the same instant, nor against an overwriting writer (it takes no lock). Returns
    whether ``staged`` was renamed; if not, the caller unlinks it.

    Raises:
        FileExistsError: ``target`` exists.
        OSError: any other failure of link or rename.
    """
    try:
        os.link(staged, target)
        return False
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS:
            raise
    lock_fd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        if os.path.lexists(target):
            raise FileExistsError(errno.EEXIST, "File exists", str(target))
        os.rename(staged, target)
    finally:
        os.close(lock_fd)  # releases the lock
    return True


def discard_partial(path: Path) -> None:
    """Remove the staged file of ``path`` left by an interrupted resumable write, now that ``path``
    was written another way (the first volume of a bundle is, and a plain copy): nothing could
    resume it, and on removable media it is hidden space lost. Left alone when another writer
    holds its lock (that writer is running) or it is not a regular file."""
    staged = partial_path(path)
    try:
        fd = os.open(staged, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK)  # no FIFO or device is waited on
    except OSError:
        return  # none (the usual case), or not ours to open
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held, named = os.fstat(fd), os.stat(staged, follow_symlinks=False)
        if stat.S_ISREG(held.st_mode) and (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino):
            os.unlink(staged)  # under the lock: no writer can have opened it meanwhile (see __init__)
    except OSError:
        pass  # locked by a running writer, or gone already
    finally:
        os.close(fd)


class PartialFileWriter:
    """See :class:`airlock.storage.base.ResumableWriter`. Continues after the first ``keep`` bytes
    of the staged file (truncating whatever follows them); ``keep=0`` starts it over.

    Raises (at construction):
        StorageError: another writer holds the staged file, or it is shorter than ``keep``.
    """

    def __init__(self, path: Path, *, overwrite: bool, keep: int) -> None:
        self.path = path
        self.partial = partial_path(path)
        self.overwrite = overwrite
        self._done = False
        self._fd = self._locked()
        try:
            staged = os.fstat(self._fd).st_size
            if keep > staged:
                if staged == 0:  # created just now: the staged bytes went (committed, discarded) meanwhile
                    os.unlink(self.partial)  # under the lock: a writer polling for it re-opens by name
                raise StorageError(f"cannot resume {path.as_uri()}: {keep} bytes to keep, {staged} staged")
            os.ftruncate(self._fd, keep)
            os.lseek(self._fd, keep, os.SEEK_SET)
        except OSError as exc:
            self.abort()
            raise StorageError(f"cannot write {path.as_uri()}: {exc.strerror}") from None
        except StorageError:
            self.suspend()
            raise
        self._size = keep
        self._keep = keep
        self._given = 0  # kept bytes given again (check_kept)

    def _locked(self) -> int:
        """A descriptor of the staged file, holding its lock: waits (up to ``LOCK_WAIT`` s) for
        another writer to finish, and opens again when that one committed or discarded the file
        meanwhile (the inode it locked is then the target's, or gone)."""
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                fd = os.open(self.partial, os.O_CREAT | os.O_RDWR, 0o644)
            except OSError as exc:
                raise StorageError(f"cannot write {self.path.as_uri()}: {exc.strerror}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                if time.monotonic() >= deadline:
                    raise StorageError(
                        f"cannot write {self.path.as_uri()}: another airlock process is writing it now"
                    ) from None
                time.sleep(0.05)
                continue
            held = os.fstat(fd)
            try:
                named = os.stat(self.partial)
            except FileNotFoundError:
                named = None
            if named is not None and (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino):
                return fd
            os.close(fd)  # locked an inode that is no longer the staged file: open it again

    def write(self, data: bytes | memoryview) -> None:
        self._size += write_all(self._fd, data, self.path)

    def mark(self, label: int) -> None:
        del label  # the staged bytes are read back and verified by a resuming run: nothing to keep

    def check_kept(self, data: bytes | memoryview) -> None:
        # A resume reads the kept bytes from the staged file itself: only their count can be checked.
        if self._size > self._keep:
            raise StorageError(f"write {self.path.as_uri()}: the kept bytes are given again before any new ones")
        if self._given + len(data) > self._keep:
            raise IntegrityError(f"{self.path.as_uri()}: more bytes given again than were staged ({self._keep})")
        self._given += len(data)

    def commit(self) -> BlobInfo:
        if self._given and self._given != self._keep:
            self.abort()
            raise IntegrityError(f"{self.path.as_uri()}: {self._given} of {self._keep} staged bytes were given again")
        try:
            os.fsync(self._fd)
            if self.overwrite:
                os.replace(self.partial, self.path)
            else:
                # Renamed (no hard links): the name may already be a waiting writer's new partial.
                if not link_if_absent(self.partial, self.path):
                    os.unlink(self.partial)
        except FileExistsError:
            self.abort()
            raise BlobExists(
                f"blob {self.path.as_uri()} was created by someone else while this one was written",
                blob=self.path.as_uri(),
            ) from None
        except OSError as exc:
            self.abort()
            raise StorageError(f"cannot commit {self.path.as_uri()}: {exc.strerror}") from None
        self.suspend()  # the staged name is gone: nothing left to discard
        sync_directory(self.path.parent)  # the new directory entry survives a crash too
        return BlobInfo(size=self._size, last_modified=datetime.now(UTC))

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        try:
            # Unlinked while the lock is held, so no other writer can have opened it meanwhile.
            os.unlink(self.partial)
        except FileNotFoundError:
            pass
        finally:
            os.close(self._fd)

    def suspend(self) -> None:
        if not self._done:
            self._done = True
            os.close(self._fd)
