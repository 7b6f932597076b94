"""The source trigger and multi-volume bundles (issue 12), with a real `airlock serve` driven by the
console script: a bundle is imported once every volume has landed, and until then it is reported
as incomplete, with the volumes it waits for and for how long."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from airlock.testing import content
from airlock.testing.airlock_server import AirlockServer
from airlock.testing.console import Console
from airlock.testing.images import push_oci_image
from airlock.testing.polling import wait_until
from airlock.testing.registry_server import RegistryServer

RG = "volrg"
REPO = "trig/app"
SUB = "00000000-0000-0000-0000-000000000000"
REGISTRY = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.ContainerRegistry/registries/dstreg"
PIPELINE = REGISTRY + "/importPipelines/inbox"


def land(source: Path, inbox: Path, name: str) -> None:
    """Put a copy of ``source`` in ``inbox`` as ``name`` at once (written beside it, then renamed)."""
    staged = inbox.parent / f".{name}.part"
    shutil.copyfile(source, staged)
    os.replace(staged, inbox / name)


def test_source_trigger_waits_for_every_volume_and_reports_incomplete_bundles_recording_each_skip_once(
    tmp_path: Path, source_registry: RegistryServer, target_registry: RegistryServer
) -> None:
    app = push_oci_image(source_registry.url, REPO, "1.0", seed=131, layers=5, layer_size=30 * 1024)
    outbox, inbox = tmp_path / "outbox", tmp_path / "inbox"
    for directory in (outbox, inbox, tmp_path / "local", tmp_path / "client"):
        directory.mkdir()
    local = Console(home=tmp_path / "local")
    exported = local.ok(
        "export", "--source-registry", source_registry.url, "-a", app.reference, "--target", outbox / "batch1.tar",
        "--volume-size", "64KiB",
    ).json()  # fmt: skip
    volumes = [Path(v["uri"].removeprefix("file://")) for v in exported["volumes"]]
    assert len(volumes) == 4

    server = AirlockServer(tmp_path / "home", trigger_interval=0.3).start()
    try:
        token = (tmp_path / "home" / "api-token").read_text().strip()
        cli = Console(home=tmp_path / "client", env={"AIRLOCK_ENDPOINT": server.url, "AIRLOCK_TOKEN": token})
        cli.ok("acr", "create", "-g", RG, "-n", "dstreg", "--login-server", target_registry.url, "-o", "none")
        cli.ok(
            "acr", "import-pipeline", "create", "-g", RG, "-r", "dstreg", "-n", "inbox", "-c", inbox.as_uri(),
            "-e", "True", "--options", "DeleteSourceBlobOnSuccess", "-o", "none",
        )  # fmt: skip

        # Polled over HTTP (a console script per poll is slow on a busy machine); shown by the CLI below.
        def report() -> dict[str, Any]:
            found: dict[str, Any] = server.get(PIPELINE)["properties"].get("sourceTriggerReport") or {}
            return found

        def waiting() -> dict[str, dict[str, Any]]:
            return {b["blob"]: b for b in report().get("incompleteBundles", [])}

        def runs() -> list[dict[str, Any]]:
            listed: list[dict[str, Any]] = server.get(REGISTRY + "/pipelineRuns")["value"]
            return listed

        # The bundle without its third volume, and a later volume whose first volume never comes.
        for index in (1, 2, 4):
            land(volumes[index - 1], inbox, volumes[index - 1].name)
        land(volumes[1], inbox, "lost.tar.002")
        (inbox / "notes.txt").write_text("not a bundle\n")  # passed over, while the report keeps changing
        bundles = wait_until(
            lambda: (w := waiting()) and "batch1.tar" in w and "lost.tar" in w and w,
            timeout=30,
            what="the trigger to report both incomplete bundles",
        )
        shown = cli.ok(
            "acr", "import-pipeline", "show", "-g", RG, "-r", "dstreg", "-n", "inbox",
            "--query", "properties.sourceTriggerReport.incompleteBundles",
        ).json()  # fmt: skip
        assert {b["blob"]: b["missingVolumes"] for b in shown} == {"batch1.tar": [3], "lost.tar": [1]}, shown
        batch = bundles["batch1.tar"]
        assert (batch["volumes"], batch["missingVolumes"]) == (4, [3]), batch
        assert batch["waitingSeconds"] >= 0 and batch["waitingSince"].endswith("Z"), batch
        assert bundles["lost.tar"]["missingVolumes"] == [1], bundles["lost.tar"]
        # Later volumes are never imported (nor reported passed over) on their own; nothing started.
        skipped = {item["blob"] for item in report().get("skipped", [])}
        assert not skipped & {"batch1.tar", "batch1.tar.002", "batch1.tar.004", "lost.tar.002"}, skipped
        assert cli.ok("acr", "pipeline-run", "list", "-g", RG, "-r", "dstreg").json() == []
        # The wait is counted, poll after poll.
        wait_until(lambda: waiting()["batch1.tar"]["waitingSeconds"] >= 2, timeout=30, what="the wait to be counted")
        assert runs() == [] and content.list_tags(target_registry.url, REPO) == []
        # The report was rewritten poll after poll as the wait grew; the skip is in the audit trail once.
        assert "notes.txt" in {item["blob"] for item in report().get("skipped", [])}
        skips = cli.ok("audit", "list", "--action", "trigger.skip").json()
        assert [e["resources"][1] for e in skips] == ["notes.txt"], skips

        # The last volume lands: the bundle is imported once, every volume verified, then deleted.
        land(volumes[2], inbox, volumes[2].name)
        wait_until(
            lambda: (r := runs()) and r[0]["properties"]["provisioningState"] in ("Succeeded", "Failed") and r,
            timeout=60,
            what="the triggered import to end",
        )
        (run,) = cli.ok("acr", "pipeline-run", "list", "-g", RG, "-r", "dstreg").json()
        assert run["properties"]["provisioningState"] == "Succeeded", run["properties"]
        assert run["properties"]["request"]["source"]["name"] == "batch1.tar"
        assert run["properties"]["response"]["catalogDigest"] == exported["catalogDigest"]
        assert content.list_tags(target_registry.url, REPO) == ["1.0"]
        # DeleteSourceBlobOnSuccess: every volume; what is not a bundle stays
        assert sorted(p.name for p in inbox.iterdir()) == ["lost.tar.002", "notes.txt"]
        assert wait_until(
            lambda: list(waiting()) == ["lost.tar"], timeout=30, what="the imported bundle to leave the report"
        )
        assert len(runs()) == 1
    finally:
        server.stop()
