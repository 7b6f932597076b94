"""Who executes a run: process tokens, and whether their process is still alive.

A run in Running records the token of the process executing it (``owner``) and that process
refreshes the run's ``updated_at`` every HEARTBEAT seconds. A run whose owner is gone was
interrupted; :meth:`airlock.pipelines.services.runs.RunService.recover` fails it, saying so.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import UTC, datetime
from pathlib import Path


def process_token() -> str:
    """Identifies this process across PID reuse: host, pid and the process's start time."""
    return f"{socket.gethostname()}:{os.getpid()}:{_start_time(os.getpid())}"


def owner_token() -> str:
    """A run owner's token: :func:`process_token` and one control plane of the process, so that two
    planes of one process (tests, a CLI beside its in-process server) tell their runs apart."""
    return f"{process_token()}:{uuid.uuid4().hex[:8]}"


# How long a run of another machine (a database shared by several servers) counts as alive
# without a heartbeat; its owner refreshes ``updated_at`` every HEARTBEAT seconds while it runs.
LEASE = 300.0
HEARTBEAT = 30.0


def process_alive(token: str | None, updated_at: datetime | None = None) -> bool:
    """Whether the process named by ``token`` may still run its run.

    A process of this machine is checked directly (pid and start time); one of another machine is
    taken to be alive while its heartbeat (``updated_at``) is younger than LEASE.
    """
    if not token:
        return False
    host, _, rest = token.partition(":")
    pid_text, _, start = rest.partition(":")
    start = start.partition(":")[0]  # an owner token may name a control plane within the process
    if host != socket.gethostname():
        if updated_at is None:
            return True
        if updated_at.tzinfo is None:
            updated_at = updated_at.replace(tzinfo=UTC)
        return (datetime.now(UTC) - updated_at).total_seconds() < LEASE
    if not pid_text.isdigit():
        return False
    return _start_time(int(pid_text)) == start


def _start_time(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rpartition(")")[2].split()[19]  # field 22, starttime in clock ticks since boot
