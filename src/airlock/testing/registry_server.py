"""CNCF distribution 2.8 (Debian's ``/usr/bin/docker-registry``) on a free loopback port, optionally
behind htpasswd Basic auth or Bearer token auth from a :class:`~airlock.testing.token_server.TokenServer`.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import ssl
import subprocess
from pathlib import Path
from typing import Any

from cryptography import x509

from airlock.testing.certificates import self_signed, write_key_and_cert
from airlock.testing.processes import ManagedProcess, free_port, http_answers, on_a_free_port, require_executable
from airlock.testing.token_server import TokenServer

__all__ = ["RegistryServer"]

REGISTRY_BIN = Path("/usr/bin/docker-registry")
HTPASSWD_BIN = Path("/usr/bin/htpasswd")

REGISTRY_READY_TIMEOUT = 15.0


class RegistryServer(ManagedProcess):
    """CNCF distribution 2.8 serving from ``workdir/<name>-data`` on ``127.0.0.1:<port>``.

    Use :meth:`start`; the instance is a context manager that stops the server on exit.
    ``auth`` is the htpasswd (user, password) pair, or None; with ``token_auth`` clients must get a
    Bearer token from that :class:`TokenServer`. With ``tls`` it serves https with a self-signed
    certificate for 127.0.0.1/localhost; clients must trust ``ca_cert``.
    """

    _ready_timeout = REGISTRY_READY_TIMEOUT

    def __init__(
        self,
        workdir: Path,
        *,
        name: str,
        port: int,
        htpasswd: tuple[str, str] | None,
        token_auth: TokenServer | None,
        tls: bool = False,
    ) -> None:
        super().__init__(workdir, name, port)
        if htpasswd is not None and token_auth is not None:
            raise ValueError("choose htpasswd or token_auth, not both")
        self.auth = htpasswd
        self.token_auth = token_auth
        self.data_dir = workdir / f"{name}-data"
        self.config_path = workdir / f"{name}-config.yml"
        # One secret for the server's lifetime so upload state survives restart().
        self._secret = secrets.token_hex(16)
        self.ca_cert: Path | None = None
        self._key_path: Path | None = None
        if tls:
            self.ca_cert = workdir / f"{name}-cert.pem"
            self._key_path = workdir / f"{name}-key.pem"
            key, cert = self_signed(
                "127.0.0.1",
                san=[x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")],
            )
            write_key_and_cert(key, cert, self._key_path, self.ca_cert)

    @classmethod
    def start(
        cls,
        workdir: Path,
        *,
        name: str = "registry",
        htpasswd: tuple[str, str] | None = None,
        token_auth: TokenServer | None = None,
        tls: bool = False,
    ) -> RegistryServer:
        """Write config (and htpasswd file) under ``workdir``, start the registry, wait until it answers.

        Raises RuntimeError when the binary is missing or the server does not come up within 15 s
        (the message carries the tail of ``workdir/<name>.log``).
        """
        require_executable(REGISTRY_BIN, "docker-registry (Debian package docker-registry)")
        workdir = Path(workdir).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        made: list[RegistryServer] = []

        def start() -> RegistryServer:
            made.append(cls(workdir, name=name, port=free_port(), htpasswd=htpasswd, token_auth=token_auth, tls=tls))
            made[-1].data_dir.mkdir(parents=True, exist_ok=True)
            made[-1]._write_config()
            made[-1]._launch()
            return made[-1]

        return on_a_free_port(start, log=lambda: made[-1].log_path, busy="address already in use", lines=5)

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``, as used in image references."""
        return f"127.0.0.1:{self._port}"

    @property
    def scheme(self) -> str:
        return "http" if self.ca_cert is None else "https"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (``https://`` with ``tls``; no trailing slash)."""
        return f"{self.scheme}://{self.host}"

    def ssl_context(self) -> ssl.SSLContext | None:
        """An SSL context trusting ``ca_cert``, or None for plain http."""
        if self.ca_cert is None:
            return None
        return ssl.create_default_context(cafile=str(self.ca_cert))

    def _write_config(self) -> None:
        config: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.data_dir)},
                "delete": {"enabled": True},
                "cache": {"blobdescriptor": "inmemory"},
                # Purging runs at start-up and would race tests that restart() mid-upload.
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": {
                "addr": self.host,
                "secret": self._secret,
                "headers": {"X-Content-Type-Options": ["nosniff"]},
            },
        }
        if self.ca_cert is not None:
            config["http"]["tls"] = {"certificate": str(self.ca_cert), "key": str(self._key_path)}
        if self.auth is not None:
            htpasswd_path = self.workdir / f"{self.name}.htpasswd"
            htpasswd_path.write_text(_bcrypt_htpasswd(*self.auth))
            config["auth"] = {"htpasswd": {"realm": "basic-realm", "path": str(htpasswd_path)}}
        elif self.token_auth is not None:
            config["auth"] = {
                "token": {
                    "realm": self.token_auth.realm,
                    "service": self.token_auth.service,
                    "issuer": self.token_auth.issuer,
                    "rootcertbundle": str(self.token_auth.cert_path),
                }
            }
        # JSON is YAML, and json.dumps quotes every string safely, so no YAML dependency is needed.
        self.config_path.write_text(json.dumps(config, indent=2) + "\n")

    def _argv(self) -> list[str]:
        return [str(REGISTRY_BIN), "serve", str(self.config_path)]

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        # Distribution lets REGISTRY_* variables override the config file; stray ones must not leak in.
        for key in [k for k in env if k.startswith("REGISTRY_")]:
            del env[key]
        return env

    def _probe(self) -> bool:
        return http_answers(f"{self.url}/v2/", self.ssl_context())


def _bcrypt_htpasswd(user: str, password: str) -> str:
    require_executable(HTPASSWD_BIN, "htpasswd (Debian package apache2-utils)")
    # Distribution 2.8 accepts only bcrypt entries; -b puts the password on the command line,
    # acceptable for throwaway test credentials.
    done = subprocess.run([str(HTPASSWD_BIN), "-Bbn", user, password], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"htpasswd failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout.strip() + "\n"
