"""``AIRLOCK_HOME``: where this machine keeps airlock's own state (the embedded database, keys, the
API token), ``~/.airlock`` unless the variable says otherwise.

A module of its own, importing nothing, so that a transfer command can ask whether a control
plane exists here without loading one (:mod:`airlock.wiring` loads SQLAlchemy and the services).
"""

from __future__ import annotations

import os
from pathlib import Path


def home_path() -> Path:
    """The home folder's path; it may not exist."""
    return Path(os.environ.get("AIRLOCK_HOME") or Path.home() / ".airlock").expanduser()


def home_dir() -> Path:
    """The home folder, created (mode 0700) when missing."""
    path = home_path()
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path
