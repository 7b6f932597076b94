"""Reading a secret from a file the user names (``--sas-token-file``), and SAS-token normalisation.

Secrets in key vaults are read through :mod:`airlock.secrets.resolver` and its stores.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from airlock.errors import SecretError

_MAX_SECRET = 64 * 1024


def read_secret_file(path: str, *, what: str) -> str:
    """The content of a secret file, stripped of surrounding whitespace.

    Raises:
        SecretError: missing, unreadable, empty, too large, or more than one line.
    """
    p = Path(path).expanduser()
    try:
        st = p.stat()
        if not stat.S_ISREG(st.st_mode) and not stat.S_ISFIFO(st.st_mode):
            raise SecretError(f"{what} file {p} is not a regular file")
        with p.open("r", encoding="utf-8") as f:
            text = f.read(_MAX_SECRET + 1)
    except FileNotFoundError:
        raise SecretError(f"{what} file {p} does not exist") from None
    except PermissionError:
        raise SecretError(f"{what} file {p} is not readable by user {os.getuid()}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretError(f"cannot read {what} file {p}: {type(exc).__name__}") from None
    text = text.strip()
    if not text:
        raise SecretError(f"{what} file {p} is empty")
    if len(text) > _MAX_SECRET or "\n" in text:
        raise SecretError(f"{what} file {p} must hold a single line")
    return text


def normalize_sas(token: str) -> str:
    """A SAS token without its leading '?' (az prints it without, ACR's docs store it with)."""
    token = token.strip()
    token = token[1:] if token.startswith("?") else token
    if "sig=" not in token:
        raise SecretError("the SAS token has no signature (sig=); expected the query string az generate-sas prints")
    return token
