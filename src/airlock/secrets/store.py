"""Reading secrets (SAS tokens, registry passwords) from files and secret stores, by URI.

Only files are supported in this version. Key-vault URIs (Azure Key Vault, HashiCorp Vault /
OpenBao) are recognised so that the error says what is missing rather than "bad URI".
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from urllib.parse import urlsplit

from airlock.errors import SecretError, UsageError

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


def read_secret_uri(uri: str, *, what: str) -> str:
    """The value of the secret at ``uri``.

    Raises:
        UsageError: the URI is not a secret URI, or its store is not supported yet.
    """
    parts = urlsplit(uri)
    if parts.scheme == "file":
        return read_secret_file(parts.path, what=what)
    host = parts.hostname or ""
    if parts.scheme == "https" and "/secrets/" in parts.path:
        kind = "Azure Key Vault" if ".vault." in host else "key vault"
        raise UsageError(
            f"{what}: secrets in {kind} ({host}) cannot be read by this version of airlock yet; "
            "use --sas-token-file for now"
        )
    if parts.scheme in ("vault", "openbao", "bao"):
        raise UsageError(f"{what}: HashiCorp Vault / OpenBao secrets cannot be read by this version yet")
    raise UsageError(
        f"{what}: unsupported secret URI scheme {parts.scheme or '(none)'!r}; expected "
        "https://<vault>.vault.azure.net/secrets/<name> or file:///path"
    )


def normalize_sas(token: str) -> str:
    """A SAS token without its leading '?' (az prints it without, ACR's docs store it with)."""
    token = token.strip()
    token = token[1:] if token.startswith("?") else token
    if "sig=" not in token:
        raise SecretError("the SAS token has no signature (sig=); expected the query string az generate-sas prints")
    return token
