"""How the benchmarks measure: :func:`drop_caches` (the page cache, before a cold step), :func:`run_process` and
:class:`Proc` (a process's wall time, peak RSS and CPU time), :func:`airlock_argv` and :func:`compile_airlock`
(airlock's CLI, its bytecode compiled once into ``PYCACHE_DIR``), :class:`Run` (one timed step of ``bench.run``),
the CPU seconds of the machine and of one process from ``/proc`` and :func:`wait_for_quiet` (an idle machine
before a step), :class:`StepFailed` and ``_checked`` (a step's process that failed), and :class:`NullSink` (a
seekable sink for downloads that keep nothing).
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import airlock
from bench.workspace import WORK_DIR, MiB

PROCESS_TIMEOUT = 3600.0


def drop_caches() -> bool:
    """Flush dirty pages and drop the page cache; False when not permitted (then only the flush happened)."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError:
        return False
    return True


@dataclass
class Proc:
    argv: list[str]
    seconds: float
    rss_kib: int
    cpu_seconds: float  # user + system of the process
    returncode: int
    stdout: str
    stderr: str


TIME_BIN = Path("/usr/bin/time")
# Fallback when GNU time is missing: a minimal Python that forks, execs and reports the child's rusage.
_RSS_WRAPPER = (
    "import os,sys\n"
    "pid=os.fork()\n"
    "if pid==0:\n"
    "    try: os.execvp(sys.argv[2],sys.argv[2:])\n"
    "    finally: os._exit(127)\n"
    "_,st,ru=os.wait4(pid,0)\n"
    "open(sys.argv[1],'w').write(f'0 {ru.ru_maxrss} {ru.ru_utime} {ru.ru_stime}\\n')\n"
    "sys.exit(os.waitstatus_to_exitcode(st) & 255)\n"
)


def run_process(argv: Sequence[str], *, timeout: float = PROCESS_TIMEOUT) -> Proc:
    """Run ``argv``; its wall time, peak RSS and CPU time.

    RSS and CPU come from GNU time (``/usr/bin/time -f '%e %M %U %S'``), or else from a tiny forking wrapper: ``wait4``
    on a child spawned directly from this process would report *our* RSS, because CPython spawns with vfork
    and Linux folds the pre-exec memory's high-water mark into the child's ``ru_maxrss``.
    """
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile("r", suffix=".rss") as rss_file,
    ):
        if TIME_BIN.is_file():
            wrapped = [str(TIME_BIN), "-f", "%e %M %U %S", "-o", rss_file.name, *argv]
        else:
            wrapped = [sys.executable, "-S", "-c", _RSS_WRAPPER, rss_file.name, *argv]
        started = time.perf_counter()
        proc = subprocess.Popen(wrapped, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        seconds = time.perf_counter() - started
        rss_kib, cpu = 0, 0.0
        with contextlib.suppress(ValueError, IndexError):
            # GNU time writes "Command exited with non-zero status N" first when the command failed.
            fields = rss_file.read().split()[-3:]
            rss_kib, cpu = int(fields[0]), float(fields[1]) + float(fields[2])
        out.seek(0)
        err.seek(0)
        return Proc(
            list(argv),
            seconds,
            rss_kib,
            cpu,
            proc.returncode,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
        )


def airlock_argv() -> list[str]:
    """The command that runs airlock's CLI, with its bytecode compiled (see :func:`compile_airlock`)."""
    compile_airlock()
    script = Path(sys.executable).with_name("airlock")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "airlock"]


PYCACHE_DIR = WORK_DIR / "pycache"


@functools.cache
def compile_airlock() -> None:
    """Make every airlock process this benchmark starts load compiled bytecode, as an installed airlock does.

    pip compiles a wheel's modules when it installs them; this checkout is an editable install, and where
    ``PYTHONDONTWRITEBYTECODE`` is set (this machine sets it) nothing ever writes airlock's ``.pyc`` files,
    so every run compiled all of its modules again: 0.27 s of a 2.6 s export of 200 small images (medians of
    6, back to back). So: compile them once into ``bench/work/pycache`` and point the children there
    (``PYTHONPYCACHEPREFIX``, which the children inherit from this process's environment).
    """
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(PYCACHE_DIR)
    package = Path(airlock.__file__).parent
    done = subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(package)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"compiling airlock's modules failed: {done.stdout}{done.stderr}")


@dataclass
class Run:
    op: str
    rep: int
    bytes: int
    seconds: float = 0.0
    rss_mib: float | None = None
    cpu_seconds: float | None = None  # user + system of the measured airlock/skopeo process(es)
    other_cpu: float | None = None  # cores busy outside the benchmark's processes during the step (noise)
    server_cpu: float | None = None  # user + system of the registries and Azurite during the step
    busy_cores: float | None = None  # the whole machine's busy cores during the step (2.0 = saturated here)
    cache_dropped: bool = False
    ok: bool = True
    error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def mib_s(self) -> float:
        return self.bytes / MiB / self.seconds if self.ok and self.seconds > 0 else 0.0


_TICK = os.sysconf("SC_CLK_TCK")


def _system_busy() -> float:
    """CPU seconds the whole machine spent busy (user, nice, system, irq, softirq; not idle, iowait, steal)."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq = values[:7]
    return (user + nice + system + irq + softirq) / _TICK


def _process_cpu(pid: int | None) -> float:
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(v) for v in fields[11:15]) / _TICK  # utime, stime, cutime, cstime


def wait_for_quiet(max_wait: float, own_cpu: Callable[[], float] = lambda: 0.0) -> float:
    """Wait (at most ``max_wait`` s) until processes other than ours use under 0.15 cores; return the wait."""
    started = time.perf_counter()
    while time.perf_counter() - started < max_wait:
        busy, own = _system_busy(), own_cpu()
        time.sleep(0.5)
        if (_system_busy() - busy) - (own_cpu() - own) < 0.15 * 0.5:
            break
    return time.perf_counter() - started


class StepFailed(Exception):
    """A benchmark step whose command failed or whose target does not hold what was sent."""


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _checked(proc: Proc, what: str) -> Proc:
    if proc.returncode != 0:
        raise StepFailed(f"{what} exited {proc.returncode}:\n{_tail(proc.stderr) or _tail(proc.stdout)}")
    return proc


class NullSink(io.RawIOBase):
    """A seekable sink that discards everything (the SDK's parallel download needs seek)."""

    def __init__(self) -> None:
        self.pos = 0
        self.total = 0

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        n = len(data)
        self.pos += n
        self.total += n
        return n

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = offset if whence == 0 else self.pos + offset
        return self.pos

    def tell(self) -> int:
        return self.pos
