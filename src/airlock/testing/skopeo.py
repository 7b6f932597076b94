"""Debian's ``/usr/bin/skopeo`` as an independent reference client."""

from __future__ import annotations

import subprocess
from pathlib import Path

from airlock.testing.processes import require_executable
from airlock.testing.registry_server import RegistryServer

__all__ = ["run_skopeo", "skopeo_oci_archive"]

SKOPEO_BIN = Path("/usr/bin/skopeo")


def run_skopeo(*args: str, check: bool = True, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """Run ``/usr/bin/skopeo --insecure-policy ARGS`` and return its text output.

    With ``check`` (the default) a non-zero exit raises RuntimeError carrying stderr. A missing
    binary raises RuntimeError as well.
    """
    binary = require_executable(SKOPEO_BIN, "skopeo (Debian package skopeo)")
    argv = [str(binary), "--insecure-policy", *args]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=timeout)
    if check and done.returncode != 0:
        raise RuntimeError(f"skopeo {' '.join(args)} failed ({done.returncode}):\n{done.stderr.strip()}")
    return done


def skopeo_oci_archive(registry: RegistryServer, ref: str, path: Path, name: str, *extra: str) -> Path:
    """``skopeo copy docker://REGISTRY/REF oci-archive:PATH:NAME`` (an OCI layout tar written by another
    tool); ``extra`` goes to skopeo (e.g. ``--all`` for every platform). Returns ``path``."""
    host = registry.url.split("://", 1)[1]
    run_skopeo("copy", "--src-tls-verify=false", *extra, f"docker://{host}/{ref}", f"oci-archive:{path}:{name}")
    return path
