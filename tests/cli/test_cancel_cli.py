"""Canceling a pipeline run (issue 11): ``airlock acr pipeline-run cancel`` against a real
``airlock serve``. A running export stops, leaves no blob, and frees its worker slot; a finished
run cannot be canceled."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from airlock.testing.airlock_server import AirlockServer
from airlock.testing.console import Console
from airlock.testing.images import push_oci_image
from airlock.testing.polling import wait_until
from airlock.testing.registry_server import RegistryServer

RG = "cancelrg"


def _state(cli: Console, name: str) -> str:
    doc = cli.ok("acr", "pipeline-run", "show", "-g", RG, "-r", "cancelreg", "-n", name).json()
    state: str = doc["properties"]["provisioningState"]
    return state


def _connected_to(port: int) -> bool:
    """Whether some process holds an established TCP connection to 127.0.0.1:``port`` (the kernel
    completes the handshake even while the listening process is stopped)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[2].split(":")[1], 16) == port and fields[3] == "01":
            return True
    return False


def test_cancel_stops_a_running_export_leaves_no_blob_and_frees_the_worker(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    server = AirlockServer(tmp_path / "home", env={"AIRLOCK_CONCURRENCY": "1"}).start()
    registry = RegistryServer.start(tmp_path / "reg", name="cancel-source")
    try:
        image = push_oci_image(registry.url, "cancel/app", "1", layers=3, layer_size=1024 * 1024, seed=91)
        owner = (server.home / "api-token").read_text().strip()
        cli = Console(home=tmp_path, env={"AIRLOCK_ENDPOINT": server.url, "AIRLOCK_TOKEN": owner})
        cli.ok("acr", "create", "-g", RG, "-n", "cancelreg", "--login-server", registry.url)
        cli.ok(
            "acr",
            "export-pipeline",
            "create",
            "-g",
            RG,
            "-r",
            "cancelreg",
            "-n",
            "cancelexport",
            "-c",
            out.as_uri(),
            "-z",
            "OverwriteBlobs",
        )
        create = [
            "acr",
            "pipeline-run",
            "create",
            "-g",
            RG,
            "-r",
            "cancelreg",
            "-p",
            "cancelexport",
            "-t",
            "export",
        ]
        assert registry.pid is not None
        os.kill(registry.pid, signal.SIGSTOP)  # the run starts, then hangs on its first request
        try:
            cli.ok(*create, "-n", "longrun1", "-b", "long.tar", "--artifacts", image.reference, "--no-wait")
            port = int(registry.url.rsplit(":", 1)[1])
            wait_until(lambda: _connected_to(port), timeout=30, what="the run to reach the registry")
            asked = cli.ok(
                "acr", "pipeline-run", "cancel", "-g", RG, "-r", "cancelreg", "-n", "longrun1", "--no-wait"
            ).json()
            assert asked["properties"]["response"]["cancelRequested"] is True
            assert asked["properties"]["provisioningState"] != "Canceled"  # it stops at its next check
        finally:
            os.kill(registry.pid, signal.SIGCONT)
        wait_until(lambda: _state(cli, "longrun1") == "Canceled", timeout=60, what="the run to stop")
        run = cli.ok("acr", "pipeline-run", "show", "-g", RG, "-r", "cancelreg", "-n", "longrun1").json()
        assert "canceled" in run["properties"]["response"]["pipelineRunErrorMessage"]
        assert sorted(p.name for p in out.iterdir()) == []  # no blob, not even a partial one
        again = cli("acr", "pipeline-run", "cancel", "-g", RG, "-r", "cancelreg", "-n", "longrun1")
        assert "only a queued or running run can be canceled" in again.only_error(1)
        # The only worker is free again: the next run executes and succeeds.
        done = cli.ok(*create, "-n", "nextrun1", "-b", "next.tar", "--artifacts", image.reference).json()
        assert done["properties"]["provisioningState"] == "Succeeded"
        assert [p.name for p in out.iterdir()] == ["next.tar"]
    finally:
        registry.stop()
        server.stop()
