"""A scale-out deployment for tests and benchmarks: one PostgreSQL database (migrated with
``airlock db upgrade``), one shared embedded-vault key, and on demand ``airlock serve`` replicas
and ``airlock worker`` processes, each with an ``AIRLOCK_HOME`` of its own, as an operator runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from airlock.testing.airlock_server import AirlockServer
from airlock.testing.console import Console

AIRLOCK = str(Path(sys.executable).with_name("airlock"))


class Deployment:
    """Processes sharing ``database_url``; :meth:`stop` ends them all (workers first, gracefully).

    ``stalled_after`` is ``AIRLOCK_QUEUE_STALLED_AFTER``: a killed worker's run resumes within
    about 1.5 times that. The trigger polls every ``trigger_interval`` seconds.
    """

    def __init__(self, root: Path, database_url: str, *, stalled_after: float = 6, trigger_interval: float = 1) -> None:
        self.root = root
        self.stalled_after = stalled_after
        self.env = {
            "AIRLOCK_DATABASE_URL": database_url,
            "AIRLOCK_VAULT_KEY_FILE": str(root / "vault.key"),
            "AIRLOCK_QUEUE_STALLED_AFTER": f"{stalled_after:g}",
            "AIRLOCK_TRIGGER_INTERVAL": f"{trigger_interval:g}",
        }
        self.servers: list[AirlockServer] = []
        self.workers: list[subprocess.Popen[bytes]] = []
        (root / "admin").mkdir(parents=True)
        Console(home=root / "admin", env=self.env).ok("db", "upgrade")

    def replica(self, token: str | None = None, *, worker: bool = False) -> AirlockServer:
        """An ``airlock serve`` (``--no-worker`` unless ``worker``). ``token``: the deployment's
        Owner token, copied to the replica's home as an operator does, so its client may use it."""
        home = self.root / f"replica{len(self.servers)}"
        home.mkdir()
        if token is not None:
            (home / "api-token").write_text(token + "\n")
        server = AirlockServer(home, env=self.env, args=[] if worker else ["--no-worker"]).start()
        self.servers.append(server)
        return server

    def worker(self, concurrency: int = 2, *extra: str) -> subprocess.Popen[bytes]:
        """An ``airlock worker`` process (``extra`` arguments after its own); its output goes to
        ``<root>/worker<N>.log``."""
        home = self.root / f"worker{len(self.workers)}"
        home.mkdir()
        env = {**os.environ, **self.env, "AIRLOCK_HOME": str(home)}
        args = [AIRLOCK, "worker", "--concurrency", str(concurrency), *extra]
        with (self.root / f"worker{len(self.workers)}.log").open("ab") as log:  # the child keeps its own copy
            proc = subprocess.Popen(args, env=env, stdout=log, stderr=log)
        self.workers.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.workers:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        for server in self.servers:
            server.stop()


SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
API = "?api-version=2025-03-01-preview"


def registry_path(group: str, registry: str) -> str:
    """The ARM path of a registry."""
    provider = "providers/Microsoft.ContainerRegistry/registries"
    return f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{group}/{provider}/{registry}"


def export_setup(server: AirlockServer, registry: str, login_server: str, out: Path) -> str:
    """Create ``registry`` (ARM path) on ``login_server`` with an export pipeline ``exportpipe`` to
    the folder ``out``; returns the pipeline's id."""
    server.put(registry, {"properties": {"loginServer": login_server}})
    pipeline = server.put(registry + "/exportPipelines/exportpipe", {"properties": {"target": {"uri": out.as_uri()}}})
    pid: str = pipeline["id"]
    return pid


def export_run(pipeline_id: str, artifact: str, blob: str) -> dict[str, Any]:
    """The body of an export run of one artifact into ``blob``."""
    request = {"pipelineResourceId": pipeline_id, "artifacts": [artifact], "target": {"name": blob}}
    return {"properties": {"request": request}}
