"""``airlock serve`` as a subprocess, and the ARM calls tests make to it."""

from __future__ import annotations

import ipaddress
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509

from airlock.testing.certificates import self_signed, write_key_and_cert
from airlock.testing.console import hermetic_environ
from airlock.testing.processes import free_port

__all__ = ["AirlockServer"]

_API = "?api-version=2025-06-01-preview"


class AirlockServer:
    """``airlock serve`` as a subprocess on a free port with its own ``AIRLOCK_HOME``; ``http`` is an
    httpx client carrying the home's bearer token. Logs go to ``<home>/../serve-<port>.log``.
    ``env`` adds to (or overrides) the test process's environment, e.g. ``AIRLOCK_STORAGE_HOSTS``. With
    ``tls`` it serves HTTPS with a self-signed certificate for 127.0.0.1; clients trust ``ca_cert``.
    ``args`` go on the command line after ``serve``'s own (e.g. ``-v``). ``hermetic`` starts from
    :func:`~airlock.testing.console.hermetic_environ` instead, as the console script's tests run it."""

    def __init__(
        self,
        home: Path,
        trigger_interval: float = 0.5,
        env: dict[str, str] | None = None,
        *,
        tls: bool = False,
        args: Sequence[str] = (),
        hermetic: bool = False,
    ) -> None:
        self.home = home
        self.args = list(args)
        self.port = free_port()
        self.env = {
            **(hermetic_environ() if hermetic else os.environ),
            "AIRLOCK_HOME": str(home),
            "AIRLOCK_TRIGGER_INTERVAL": str(trigger_interval),
            **(env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.ca_cert: Path | None = None
        self._key_path: Path | None = None
        if tls:
            self.ca_cert = home.parent / f"serve-{self.port}-cert.pem"
            self._key_path = home.parent / f"serve-{self.port}-key.pem"
            key, cert = self_signed("127.0.0.1", san=[x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
            write_key_and_cert(key, cert, self._key_path, self.ca_cert)
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """What an httpx client needs to trust this server."""
        return True if self.ca_cert is None else ssl.create_default_context(cafile=str(self.ca_cert))

    def start(self) -> AirlockServer:
        args = [str(Path(sys.executable).parent / "airlock"), "serve", "--port", str(self.port)]
        if self.ca_cert is not None and self._key_path is not None:
            args += ["--ssl-certfile", str(self.ca_cert), "--ssl-keyfile", str(self._key_path)]
        args += self.args
        with (self.home.parent / f"serve-{self.port}.log").open("ab") as log:
            self.proc = subprocess.Popen(args, env=self.env, stdout=log, stderr=log)
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(self.url + "/healthz", timeout=1, verify=self.verify).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert self.proc.poll() is None, (self.home.parent / f"serve-{self.port}.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "airlock serve did not start"
            time.sleep(0.1)
        token = (self.home / "api-token").read_text().strip()
        self.http = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=60, verify=self.verify
        )
        return self

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.http.close()

    def stop(self) -> None:
        # Our keep-alive connection first: uvicorn waits for open TLS connections before it exits.
        self.http.close()
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def put(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """PUT ``body`` at an ARM ``path``; asserts a 200/201."""
        r = self.http.put(path + _API, json=body)
        assert r.status_code in (200, 201), r.text
        out: dict[str, Any] = r.json()
        return out

    def get(self, path: str) -> dict[str, Any]:
        r = self.http.get(path + _API)
        assert r.status_code == 200, r.text
        out: dict[str, Any] = r.json()
        return out

    def wait_run(self, path: str, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            doc = self.get(path)
            if doc["properties"]["provisioningState"] in ("Succeeded", "Failed"):
                return doc
            assert time.monotonic() < deadline, f"{path} still running"
            time.sleep(0.2)
