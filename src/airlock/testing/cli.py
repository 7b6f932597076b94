"""The ``airlock`` console script as a subprocess, for tests that hold the CLI to its contract:
stdout is one JSON object; a failure is exactly one ``error: …`` line on stderr, no traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

AIRLOCK = Path(sys.executable).parent / "airlock"


@dataclass
class Run:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def where(self) -> str:
        head = f"airlock {' '.join(self.args)} -> {self.returncode}"
        return f"{head}\n--- stdout:\n{self.stdout}\n--- stderr:\n{self.stderr}"

    def json(self) -> Any:
        """The parsed stdout of a run that succeeded (asserted, with no traceback)."""
        assert self.returncode == 0, self.where()
        assert "Traceback" not in self.stdout + self.stderr, self.where()
        return json.loads(self.stdout)


def run_airlock(*args: str | Path, home: Path, timeout: float = 120.0) -> Run:
    """Run ``airlock ARGS`` hermetically: ``home`` as HOME and AIRLOCK_HOME's parent, no airlock or
    Azure settings from the environment, no progress bar, no colour."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRLOCK_", "AZURE_"))}
    env.update(HOME=str(home), AIRLOCK_HOME=str(home / ".airlock"), AIRLOCK_NO_PROGRESS="1", NO_COLOR="1")
    env["COLUMNS"] = "300"
    done = subprocess.run(
        [str(AIRLOCK), *map(str, args)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    return Run(tuple(map(str, args)), done.returncode, done.stdout, done.stderr)


def error_message(run: Run, code: int | tuple[int, ...] = 1, *, stdout_empty: bool = True) -> str:
    """Assert the failure contract — the exit code, one stderr line ``error: …``, no traceback,
    nothing on stdout (unless not ``stdout_empty``) — and return the message after ``error:``."""
    codes = (code,) if isinstance(code, int) else code
    assert run.returncode in codes, f"expected exit {codes}: {run.where()}"
    assert "Traceback" not in run.stdout + run.stderr, run.where()
    if stdout_empty:
        assert run.stdout == "", run.where()
    lines = run.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), run.where()
    return lines[0][len("error: ") :]
