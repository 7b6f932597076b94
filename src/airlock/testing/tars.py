"""Taking a tar apart and putting it back, for tests that craft damaged or hostile archives."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

Members = list[tuple[tarfile.TarInfo, bytes]]


def members(path: Path) -> Members:
    """Every member of the tar at ``path`` with its data (b"" for links and directories), in order."""
    out: Members = []
    with tarfile.open(path) as tf:
        for info in tf.getmembers():
            f = tf.extractfile(info) if info.isfile() else None
            out.append((info, f.read() if f else b""))
    return out


def pack(items: Members, *, format: int = tarfile.GNU_FORMAT) -> bytes:
    """A tar of ``items`` (sizes set from the data), in ``format`` (GNU, as airlock writes, by default)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=format) as tf:
        for info, data in items:
            info.size = len(data) if info.isfile() else 0
            tf.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return buf.getvalue()
