"""The harness's servers, and what they share: free ports, required binaries, process lifetimes.

:class:`ManagedProcess` is a server in its own process group (registry, Azurite, OpenBao);
:class:`InProcessHTTPServer` one in a thread of the test process (token server, fake key vault).

A missing component is an error, never a reason to skip: tests must fail loudly so that nobody
mistakes "not run" for "passed". Every server owns its process group; ``stop()`` leaves nothing behind.
"""

from __future__ import annotations

import abc
import atexit
import contextlib
import http.client
import http.server
import os
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, ClassVar, Self, TypeVar

READY_TIMEOUT = 15.0  # a server's wait for its first answer, unless its class sets another
STOP_TIMEOUT = 10.0
LOG_TAIL_LINES = 40


T = TypeVar("T")


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago (the usual bind-to-0 race applies)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def refusing_port() -> Iterator[int]:
    """A TCP port on 127.0.0.1 that refuses connections for as long as the block runs: bound, never
    listening. Where nothing must answer, a port :func:`free_port` found free will not do: a server
    another test starts meanwhile (another worker's) may take it, and answer."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        yield port


def on_a_free_port(start: Callable[[], T], *, log: Callable[[], Path], busy: str, lines: int = 10) -> T:
    """``start()`` (which picks a free port and launches the server), again on a fresh port when
    it fails because the port was taken meanwhile: a port found free can be bound by another
    process before the server binds it. ``log()`` is the last attempt's log; ``busy`` the text
    its tail shows then. Three attempts. Raises the last attempt's RuntimeError."""
    for attempt in range(3):
        try:
            return start()
        except RuntimeError:
            if attempt == 2 or busy not in log_tail(log(), lines):
                raise
    raise AssertionError("unreachable: the last attempt raises")


def require_executable(path: Path, what: str) -> Path:
    """``path``, when it is an executable file; else RuntimeError saying how to install ``what``."""
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise RuntimeError(
            f"{what} not found at {path}: run `make test` or `bash scripts/bootstrap.sh` to install it "
            "(tests fail rather than skip when a component is missing)"
        )
    return path


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` of a server's log, for the error that says it did not come up."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"<no log at {path}: {exc}>"
    return "\n".join(text.splitlines()[-lines:])


# Servers still running when the interpreter exits (a test run interrupted before its finalizers, a
# crashed demo) would otherwise outlive it, holding ports and files.
_LIVE: set[ManagedProcess] = set()


@atexit.register
def _kill_leftovers() -> None:
    for server in list(_LIVE):
        server.kill()


class ManagedProcess(abc.ABC):
    """A server process in its own process group, logging to ``workdir/<name>.log``."""

    _ready_timeout: ClassVar[float] = READY_TIMEOUT

    def __init__(self, workdir: Path, name: str, port: int) -> None:
        self.workdir = workdir
        self.name = name
        self._port = port
        self.log_path = workdir / f"{name}.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def port(self) -> int:
        return self._port

    @property
    def running(self) -> bool:
        """Whether the server process is alive (it may have crashed on its own)."""
        return self._proc is not None and not self._leader_exited()

    @property
    def pid(self) -> int | None:
        """The server's pid (also its process group id) while started, else None."""
        return self._proc.pid if self._proc is not None else None

    @abc.abstractmethod
    def _argv(self) -> list[str]:
        """The server's command line."""

    def _env(self) -> dict[str, str] | None:
        return None

    @abc.abstractmethod
    def _probe(self) -> bool:
        """Return True once the server gives any HTTP answer."""

    def _launch(self) -> None:
        if self.running:
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self._reap()  # a server that died on its own still holds its log handle and zombie
        self._log = self.log_path.open("ab")
        self._log.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} starting {self._argv()}\n".encode())
        self._log.flush()
        self._proc = subprocess.Popen(
            self._argv(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self._env(),
            cwd=self.workdir,
            start_new_session=True,
        )
        _LIVE.add(self)
        deadline = time.monotonic() + self._ready_timeout
        while True:
            if self._leader_exited():
                proc = self._proc
                self._reap()
                raise RuntimeError(
                    f"{self.name} exited with status {proc.returncode} before becoming ready; "
                    f"log {self.log_path}:\n{log_tail(self.log_path)}"
                )
            if self._probe():
                return
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(
                    f"{self.name} not ready on port {self._port} after {self._ready_timeout:.0f}s; "
                    f"log {self.log_path}:\n{log_tail(self.log_path)}"
                )
            time.sleep(0.05)

    def _leader_exited(self) -> bool:
        # WNOWAIT leaves an exited leader as a zombie: its pid, and so the process group id,
        # cannot be reused until _reap(), which makes the group SIGKILL there safe.
        assert self._proc is not None
        if self._proc.returncode is not None:
            return True
        try:
            info = os.waitid(os.P_PID, self._proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return info is not None

    def _signal_group(self, sig: signal.Signals) -> None:
        assert self._proc is not None
        if self._proc.returncode is not None:
            return  # reaped: the group id may belong to someone else by now
        # Signalling the group (id = leader pid, thanks to start_new_session) also reaches children.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, sig)

    def _reap(self) -> None:
        if self._proc is not None:
            # Children may outlive a leader that exited; kill the group before releasing its id.
            self._signal_group(signal.SIGKILL)
            self._proc.wait()
            self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        _LIVE.discard(self)

    def stop(self) -> None:
        """Terminate gracefully (SIGTERM, SIGKILL after 10 s); then nothing of it runs. No-op when stopped."""
        if self._proc is None:
            return
        if not self._leader_exited():
            self._signal_group(signal.SIGTERM)
            deadline = time.monotonic() + STOP_TIMEOUT
            while not self._leader_exited() and time.monotonic() < deadline:
                time.sleep(0.02)
        self._reap()

    def kill(self) -> None:
        """Kill the whole process group with SIGKILL, as a crash would; a no-op when stopped."""
        if self._proc is None:
            return
        self._signal_group(signal.SIGKILL)
        self._reap()

    def restart(self) -> None:
        """Stop if running, then start again on the same port with the same storage and settings."""
        self.stop()
        self._launch()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def http_answers(url: str, context: ssl.SSLContext | None = None) -> bool:
    """True when anything at ``url`` answers HTTP, whatever the status."""
    try:
        with urllib.request.urlopen(url, timeout=1.0, context=context):
            return True
    except urllib.error.HTTPError as exc:
        exc.close()
        return True
    except (OSError, http.client.HTTPException):
        return False


class InProcessHTTPServer:
    """Base of the small HTTP servers the tests run in a thread (token server, fake key vault):
    subclasses set ``_httpd`` and ``_thread`` when they start; :meth:`stop` ends both."""

    _httpd: http.server.HTTPServer | None = None
    _thread: threading.Thread | None = None

    def stop(self) -> None:
        """Shut the HTTP server down and join its thread; a no-op when stopped."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT)
            self._thread = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
