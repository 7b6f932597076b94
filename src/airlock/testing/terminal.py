"""Run a command with stderr on a pseudo-terminal, as a user at a terminal would see it.

stdout stays a pipe (what a script reads); stderr is the slave side of a pty whose window is
``columns`` wide, so programs that draw progress only on a terminal draw it. The bytes written to
the terminal are kept; :attr:`TerminalRun.lines` is what was drawn, ANSI control sequences removed
and split at every line feed and carriage return (each redraw of a live line is one entry).
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import termios
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

# CSI (ESC [ ... final byte), OSC (ESC ] ... BEL/ST) and two-byte escapes (ESC 7, ESC =, ...).
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")


@dataclass
class TerminalRun:
    returncode: int
    stdout: str
    screen: bytes  # everything written to the terminal, as written

    @property
    def text(self) -> str:
        """The terminal output without control sequences."""
        return _ANSI.sub("", self.screen.decode("utf-8", errors="replace"))

    @property
    def lines(self) -> list[str]:
        """Every line drawn (split at LF and CR), trailing spaces removed, empty ones left out."""
        return [part.rstrip() for part in re.split(r"[\r\n]", self.text) if part.strip()]


def run_on_terminal(
    argv: Sequence[str], *, env: dict[str, str], columns: int = 80, rows: int = 24, timeout: float = 120.0
) -> TerminalRun:
    """Run ``argv`` with stdin from /dev/null, stdout to a pipe and stderr to a ``columns``-wide pty.

    Raises:
        subprocess.TimeoutExpired: the command ran longer than ``timeout`` (it is killed first).
    """
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    env = {**env, "COLUMNS": str(columns), "LINES": str(rows), "TERM": env.get("TERM", "xterm-256color")}
    try:
        proc = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave, env=env, start_new_session=True
        )
    finally:
        os.close(slave)
    out: list[bytes] = []
    reader = threading.Thread(target=lambda: out.append(proc.stdout.read() if proc.stdout else b""), daemon=True)
    reader.start()
    screen = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                proc.kill()
                proc.wait()
                raise subprocess.TimeoutExpired(list(argv), timeout, output=bytes(screen))
            ready, _, _ = select.select([master], [], [], min(left, 1.0))
            if not ready:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer closed the slave side
                break
            if not data:
                break
            screen += data
        returncode = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        reader.join(timeout=10)
    finally:
        os.close(master)
        if proc.stdout:
            proc.stdout.close()
    return TerminalRun(returncode, b"".join(out).decode("utf-8", errors="replace"), bytes(screen))
