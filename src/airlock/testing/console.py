"""The ``airlock`` console script run as a user runs it: a subprocess with a hermetic environment.

Used by tests that check what a user sees (exit codes, the one error line, help text, progress).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

AIRLOCK = Path(sys.executable).parent / "airlock"
# Settings a developer's shell may carry that would change what the command does.
_DROPPED_PREFIXES = ("AIRLOCK_", "AZURE_")
_DROPPED = {
    "REGISTRY_AUTH_FILE",
    "DOCKER_CONFIG",
    "XDG_RUNTIME_DIR",
    "REQUESTS_CA_BUNDLE",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "PYTHONDONTWRITEBYTECODE",
}


def hermetic_environ() -> dict[str, str]:
    """The test process's environment without the settings that would change what airlock does
    (``AIRLOCK_*``, ``AZURE_*``, registry logins, CA bundles), bytecode cached outside the repository:
    each command is a new interpreter, and recompiling airlock's modules every time doubles the cost."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_DROPPED_PREFIXES) and k not in _DROPPED}
    env["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / f"airlock-test-pycache-{os.getuid()}")
    return env


@dataclass
class Result:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float = 0.0

    def json(self) -> Any:
        assert self.returncode == 0, self.where()
        assert "Traceback" not in self.stderr, self.where()
        return json.loads(self.stdout)

    def only_error(self, code: int | tuple[int, ...], *, stdout_empty: bool = True) -> str:
        """The strict failure contract: exit ``code`` (or one of them), nothing on stdout (unless not
        ``stdout_empty``), stderr exactly one ``error: ...`` line; returns the message without the prefix."""
        codes = (code,) if isinstance(code, int) else code
        assert self.returncode in codes, f"exit {self.returncode}, expected {codes}: {self.where()}"
        assert "Traceback" not in self.stdout + self.stderr, self.where()
        if stdout_empty:
            assert self.stdout == "", self.where()
        lines = self.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), self.where()
        return lines[0].removeprefix("error: ")

    def error(self, code: int) -> str:
        """The one ``error: ...`` line of a failure with exit ``code`` (asserted), without the prefix."""
        assert self.returncode == code, self.where()
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("error: ")]
        assert len(errors) == 1, self.where()
        assert "Traceback" not in self.stderr, self.where()
        return errors[0].removeprefix("error: ")

    def where(self) -> str:
        return (
            f"airlock {' '.join(self.args)} exited {self.returncode}\n--- stdout:\n{self.stdout}\n"
            f"--- stderr:\n{self.stderr}"
        )


@dataclass
class Console:
    """``airlock`` bound to one ``AIRLOCK_HOME`` (and HOME, so no stored registry logins leak in)."""

    home: Path
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None

    def _env(self) -> dict[str, str]:
        env = hermetic_environ()
        env.update(
            HOME=str(self.home),
            AIRLOCK_HOME=str(self.home / ".airlock"),
            AIRLOCK_NO_PROGRESS="1",
            NO_COLOR="1",
            COLUMNS="80",
        )
        env.update(self.env)
        return env

    def start(self, *args: str | Path) -> subprocess.Popen[str]:
        """``airlock ARGS`` started in the background (to kill it mid-way); its output is captured."""
        return subprocess.Popen(
            [str(AIRLOCK), *map(str, args)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self._env(),
            cwd=self.cwd or self.home,
        )

    def __call__(self, *args: str | Path, stdin: str | None = None, timeout: float = 120.0) -> Result:
        start = time.monotonic()
        done = subprocess.run(
            [str(AIRLOCK), *map(str, args)],
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=self._env(),
            cwd=self.cwd or self.home,
            timeout=timeout,
            check=False,
        )
        return Result(tuple(map(str, args)), done.returncode, done.stdout, done.stderr, time.monotonic() - start)

    def ok(self, *args: str | Path, stdin: str | None = None) -> Result:
        run = self(*args, stdin=stdin)
        assert run.returncode == 0, run.where()
        assert "Traceback" not in run.stdout + run.stderr, run.where()
        return run

    def parallel(self, *commands: tuple[str | Path, ...]) -> list[Result]:
        """Each of ``commands`` run as by :meth:`__call__`, at most eight at once (they are separate
        interpreters, so independent commands need not wait on each other's start-up); results in order."""
        with ThreadPoolExecutor(max_workers=min(8, len(commands) or 1)) as pool:
            return list(pool.map(lambda argv: self(*argv), commands))


Run = Result  # the name the archive CLI tests use


def run_airlock(*args: str | Path, home: Path, timeout: float = 120.0) -> Result:
    """Run ``airlock ARGS`` hermetically with ``home`` as HOME, on a wide terminal (see :class:`Console`)."""
    return Console(home=home, env={"COLUMNS": "300"})(*args, timeout=timeout)


def error_message(run: Result, code: int | tuple[int, ...] = 1, *, stdout_empty: bool = True) -> str:
    """The failure contract (:meth:`Result.only_error`); returns the message after ``error:``."""
    return run.only_error(code, stdout_empty=stdout_empty)
