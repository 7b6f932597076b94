"""A FAT32 file system, as on the USB sticks that carry bundles across: no hard links, files under
4 GiB. Made in a file with ``mkfs.vfat`` (dosfstools) and mounted with ``fusefat`` (FUSE, no
root, no loop device); both come from Debian and ``scripts/bootstrap.sh`` installs them.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from airlock.testing.polling import wait_until
from airlock.testing.processes import require_executable

MKFS_VFAT = Path("/usr/sbin/mkfs.vfat")
FUSEFAT = Path("/usr/bin/fusefat")
FUSERMOUNT = Path("/usr/bin/fusermount")


@contextmanager
def fat32_mount(directory: Path, *, size_mib: int = 64) -> Iterator[Path]:
    """A new FAT32 file system of ``size_mib`` MiB mounted at ``directory/mnt`` (yielded), read-write;
    unmounted afterwards, even when the body fails.

    Raises:
        RuntimeError: dosfstools or fusefat is not installed.
        AssertionError: the file system was not mounted within 15 s.
    """
    mkfs = require_executable(MKFS_VFAT, "mkfs.vfat (Debian's dosfstools)")
    fusefat = require_executable(FUSEFAT, "fusefat (Debian's fusefat)")
    fusermount = require_executable(FUSERMOUNT, "fusermount (Debian's fuse)")
    image, mountpoint = directory / "fat32.img", directory / "mnt"
    mountpoint.mkdir(parents=True)
    with open(image, "wb") as handle:
        handle.truncate(size_mib * 1024 * 1024)
    subprocess.run([str(mkfs), "-F", "32", str(image)], check=True, capture_output=True, timeout=60)
    # rw+: fusefat mounts read-only unless told that writing is wanted.
    mount = [str(fusefat), "-o", "rw+", str(image), str(mountpoint)]
    subprocess.run(mount, check=True, capture_output=True, timeout=60)
    try:
        wait_until(lambda: os.path.ismount(mountpoint), timeout=15, what=f"FAT32 mounted at {mountpoint}")
        yield mountpoint
    finally:
        subprocess.run([str(fusermount), "-u", str(mountpoint)], check=False, capture_output=True, timeout=60)
