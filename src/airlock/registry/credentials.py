"""Registry credentials: explicit ones, or from Docker/Podman auth files and credential helpers.

Lookup order for a host (first hit wins), as docker, podman and skopeo do:
``$REGISTRY_AUTH_FILE``, ``$XDG_RUNTIME_DIR/containers/auth.json``,
``~/.config/containers/auth.json``, ``$DOCKER_CONFIG/config.json`` (default ``~/.docker``).
In each file: ``credHelpers[host]``, then ``auths[host]``, then ``credsStore``.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airlock.errors import AuthenticationError

log = logging.getLogger(__name__)

# A credential helper that hangs must not hang a transfer forever.
_HELPER_TIMEOUT = 30.0


@dataclass(frozen=True)
class Credentials:
    """A username and password, or an OAuth2 refresh token (``identity_token``, as ACR issues).

    ``repr`` hides the secret parts so a credential can never reach a log by accident.
    """

    username: str = ""
    password: str = ""
    identity_token: str = ""

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password=<redacted>)"

    def __bool__(self) -> bool:
        return bool(self.username or self.password or self.identity_token)


def _auth_files() -> list[Path]:
    files: list[Path] = []
    if os.environ.get("REGISTRY_AUTH_FILE"):
        files.append(Path(os.environ["REGISTRY_AUTH_FILE"]))
    if os.environ.get("XDG_RUNTIME_DIR"):
        files.append(Path(os.environ["XDG_RUNTIME_DIR"]) / "containers" / "auth.json")
    home = Path.home()
    files.append(home / ".config" / "containers" / "auth.json")
    docker_dir = Path(os.environ["DOCKER_CONFIG"]) if os.environ.get("DOCKER_CONFIG") else home / ".docker"
    files.append(docker_dir / "config.json")
    return files


def _host_keys(host: str) -> list[str]:
    # Entries are written in many forms over the years; docker's own lookup normalises these.
    keys = [host, f"https://{host}", f"http://{host}", f"https://{host}/v1/", f"https://{host}/v2/"]
    if host in ("docker.io", "registry-1.docker.io", "index.docker.io"):
        keys.append("https://index.docker.io/v1/")
    return keys


def _from_helper(helper: str, host: str) -> Credentials | None:
    exe = shutil.which(f"docker-credential-{helper}")
    if exe is None:
        raise AuthenticationError(
            f"credential helper docker-credential-{helper} (configured for {host}) is not on PATH"
        )
    try:
        proc = subprocess.run(
            [exe, "get"], input=host, capture_output=True, text=True, timeout=_HELPER_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        raise AuthenticationError(f"credential helper docker-credential-{helper} timed out for {host}") from None
    if proc.returncode != 0:
        # "credentials not found in native keychain" is the helpers' way to say "none"
        if "not found" in (proc.stdout + proc.stderr).lower():
            return None
        raise AuthenticationError(
            f"credential helper docker-credential-{helper} failed for {host} (exit {proc.returncode})"
        )
    try:
        doc = json.loads(proc.stdout)
        user, secret = str(doc.get("Username", "")), str(doc.get("Secret", ""))
    except (ValueError, AttributeError):
        raise AuthenticationError(f"credential helper docker-credential-{helper} gave unreadable output") from None
    if user == "<token>":
        return Credentials(identity_token=secret)
    return Credentials(username=user, password=secret)


def _from_entry(entry: Any, host: str, path: Path) -> Credentials | None:
    if not isinstance(entry, dict):
        return None
    if entry.get("identitytoken"):
        return Credentials(username=str(entry.get("username", "")), identity_token=str(entry["identitytoken"]))
    if entry.get("auth"):
        try:
            user, _, password = base64.b64decode(str(entry["auth"])).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise AuthenticationError(f"{path}: the 'auth' entry for {host} is not base64 'user:password'") from None
        return Credentials(username=user, password=password)
    if entry.get("username"):
        return Credentials(username=str(entry["username"]), password=str(entry.get("password", "")))
    return None


def credentials_for(host: str) -> Credentials | None:
    """Credentials for ``host`` (``name[:port]``) from the auth files, or None if there are none.

    Raises:
        AuthenticationError: a configured credential helper is missing or failed, or a file is corrupt.
    """
    for path in _auth_files():
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as exc:
            raise AuthenticationError(f"cannot read registry auth file {path}: {exc}") from None
        if not isinstance(doc, dict):
            continue
        helpers = doc.get("credHelpers") or {}
        auths = doc.get("auths") or {}
        for key in _host_keys(host):
            if isinstance(helpers, dict) and key in helpers:
                return _from_helper(str(helpers[key]), host)
            if isinstance(auths, dict) and key in auths:
                found = _from_entry(auths[key], host, path)
                if found:
                    log.debug("using credentials for %s from %s", host, path)
                    return found
        if doc.get("credsStore"):
            found = _from_helper(str(doc["credsStore"]), host)
            if found:
                return found
    return None
