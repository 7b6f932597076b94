"""A listening socket that records whatever arrives: the attacker's (or an honest) endpoint in
confused-deputy tests.

Each connection's bytes are kept; once a request's headers are in, it is answered ``403`` with an
empty body and closed, so an HTTP client (the Azure SDK, urllib3) fails at once, without retrying.
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType


class Recorder:
    """Listens on ``127.0.0.1:<free port>`` until closed; use as a context manager."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self.port: int = self._sock.getsockname()[1]
        self._lock = threading.Lock()
        self._received: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"recorder-{self.port}", daemon=True)
        self._thread.start()

    @property
    def host(self) -> str:
        """``127.0.0.1:<port>``, as an ``AIRLOCK_STORAGE_HOSTS`` entry names it."""
        return f"127.0.0.1:{self.port}"

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                data = b""
                try:
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                    conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                except OSError:
                    pass
            with self._lock:
                self._received.append(data)

    @property
    def received(self) -> list[bytes]:
        """What each connection so far sent (its request line and headers, at least)."""
        with self._lock:
            return list(self._received)

    def everything(self) -> bytes:
        return b"\n".join(self.received)

    def wait_for(self, needle: bytes, timeout: float = 30, after: int = 0) -> bytes:
        """The first request from connection number ``after`` on that contains ``needle``; AssertionError
        when none arrives within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for data in self.received[after:]:
                if needle in data:
                    return data
            time.sleep(0.05)
        raise AssertionError(f"nothing containing {needle[:20]!r} reached 127.0.0.1:{self.port} in {timeout} s")

    def close(self) -> None:
        self._stop.set()
        self._sock.close()
        self._thread.join(5)

    def __enter__(self) -> Recorder:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
