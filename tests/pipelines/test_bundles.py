"""The source trigger's view of multi-volume bundles: later volumes an earlier bundle of the same
name left behind are told apart from the bundle's own before any import starts."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from airlock.oci.reference import ArtifactReference, RegistryURL
from airlock.pipelines.plane import ControlPlane
from airlock.pipelines.trigger import SourceTrigger
from airlock.registry.client import RegistryClient
from airlock.storage.location import open_blob, parse_blob_uri
from airlock.testing.images import push_oci_image
from airlock.testing.polling import wait_until
from airlock.testing.registry_server import RegistryServer
from airlock.transfer.export import export_artifacts
from airlock.wiring import open_control_plane

SUB = "00000000-0000-0000-0000-000000000000"


def _bundle(registry: RegistryServer, reference: str, head: Path) -> list[Path]:
    export_artifacts(
        client=RegistryClient(RegistryURL.parse(registry.url), use_auth_files=False),
        artifacts=[ArtifactReference.parse(reference)],
        target=open_blob(parse_blob_uri(head.as_uri())),
        volume_size=64 * 1024,
    )
    return sorted(head.parent.glob(head.name + "*"))


def _land(volume: Path, inbox: Path, name: str, *, age: float = 0) -> None:
    staged = inbox.parent / f".{name}.part"
    shutil.copyfile(volume, staged)
    if age:
        then = time.time() - age
        os.utime(staged, (then, then))
    os.replace(staged, inbox / name)


def _waiting(cp: ControlPlane, pipeline: str) -> dict[str, dict[str, Any]]:
    doc = cp.pipelines.get(SUB, "rg", "dstreg", "importPipelines", pipeline).document()
    report = doc["properties"].get("sourceTriggerReport") or {}
    return {b["blob"]: b for b in report.get("incompleteBundles", [])}


def test_later_volumes_an_earlier_bundle_of_the_name_left_start_no_import_whichever_lands_first(
    tmp_path: Path, source_registry: RegistryServer, target_registry: RegistryServer
) -> None:
    """Regression: every volume but the last is exactly the volume size, so the trigger took last
    night's batch.tar.002 for tonight's and started an import at once, which failed naming a volume
    that was still on its way (once more for each volume that landed)."""
    bundles = []
    for tag, seed in (("1", 401), ("2", 402)):  # same sizes, other bytes: volumes of one size each
        image = push_oci_image(source_registry.url, "stale/app", tag, layers=3, layer_size=40 * 1024, seed=seed)
        (tmp_path / tag).mkdir()
        bundles.append(_bundle(source_registry, image.reference, tmp_path / tag / "batch.tar"))
    old, new = bundles
    assert len(old) == len(new) >= 3 and [p.stat().st_size for p in old] == [p.stat().st_size for p in new]
    later = list(range(2, len(new) + 1))

    cp = open_control_plane(tmp_path / "home")
    cp.registries.put(SUB, "rg", "dstreg", {"properties": {"loginServer": target_registry.url}})
    trigger = SourceTrigger(cp, interval=3600)
    started: list[str] = []

    def pipeline(name: str) -> Path:
        inbox = tmp_path / name
        inbox.mkdir()
        body = {"properties": {"source": {"uri": inbox.as_uri()}, "options": ["OverwriteTags"]}}
        cp.pipelines.put(SUB, "rg", "dstreg", "importPipelines", name, body)
        return inbox

    def settled(name: str) -> dict[str, Any]:
        """Polls until no volume of batch.tar is being checked; what it waits for then ({}: nothing)."""

        def checked() -> dict[str, Any] | None:
            started.extend(trigger.poll())
            waiting = _waiting(cp, name).get("batch.tar", {})
            return None if waiting.get("checkingVolumes") else {"waiting": waiting}

        waiting: dict[str, Any] = wait_until(checked, timeout=30, what="the volumes to be checked")["waiting"]
        return waiting

    def imported() -> None:
        (run,) = started
        assert cp.runs.wait(run, timeout=60).properties.provisioningState == "Succeeded"
        started.clear()

    # The old later volumes, then the new first volume: they are not its own.
    inbox = pipeline("agedinbox")
    for volume in old[1:]:
        _land(volume, inbox, volume.name)
    _land(new[0], inbox, "batch.tar")
    waiting = settled("agedinbox")
    assert (waiting["missingVolumes"], waiting["mismatchedVolumes"]) == ([], later), waiting
    for volume in new[1:-1]:  # arriving one by one: still waiting, and never an import
        _land(volume, inbox, volume.name)
        assert settled("agedinbox")["mismatchedVolumes"] == later[-1:] and started == []
    _land(new[-1], inbox, new[-1].name)
    assert settled("agedinbox") == {}
    imported()

    # Last night's bundle imported and left there; tonight's later volumes land first, as export and
    # copy write them (the first volume last), then its first volume.
    inbox = pipeline("reusedinbox")
    for volume in old:
        _land(volume, inbox, volume.name)
    assert settled("reusedinbox") == {}
    imported()
    for volume in new[1:]:
        _land(volume, inbox, volume.name)
        assert settled("reusedinbox")["mismatchedVolumes"] and started == []  # not last night's table's
    _land(new[0], inbox, "batch.tar")
    assert settled("reusedinbox") == {}
    imported()
    trigger.stop()
    cp.close()


def test_a_first_volume_still_being_written_is_an_incomplete_bundle_not_a_skipped_blob(
    tmp_path: Path, source_registry: RegistryServer, target_registry: RegistryServer
) -> None:
    """Regression: it was reported under skipped, told to be copied again, while it was landing."""
    image = push_oci_image(source_registry.url, "stale/landing", "1", layers=3, layer_size=40 * 1024, seed=403)
    (tmp_path / "out").mkdir()
    volumes = _bundle(source_registry, image.reference, tmp_path / "out" / "batch.tar")
    cp = open_control_plane(tmp_path / "home")
    cp.registries.put(SUB, "rg", "dstreg", {"properties": {"loginServer": target_registry.url}})
    inbox = tmp_path / "landinginbox"
    inbox.mkdir()
    cp.pipelines.put(
        SUB, "rg", "dstreg", "importPipelines", "landinginbox", {"properties": {"source": {"uri": inbox.as_uri()}}}
    )
    for volume in volumes[1:]:
        _land(volume, inbox, volume.name)
    (inbox / "batch.tar").write_bytes(volumes[0].read_bytes()[: volumes[0].stat().st_size // 2 + 1024])
    trigger = SourceTrigger(cp, interval=3600)
    assert trigger.poll() == []
    report = cp.pipelines.get(SUB, "rg", "dstreg", "importPipelines", "landinginbox").document()["properties"][
        "sourceTriggerReport"
    ]
    (waiting,) = report["incompleteBundles"]
    assert (waiting["blob"], waiting["missingVolumes"], waiting["incompleteVolumes"]) == ("batch.tar", [], [1])
    assert "batch.tar" not in {s["blob"] for s in report.get("skipped", [])}, report
    _land(volumes[0], inbox, "batch.tar")
    started = wait_until(trigger.poll, timeout=30, what="the import to start once its volumes are checked")
    assert len(started) == 1 and cp.runs.wait(started[0], timeout=60).properties.provisioningState == "Succeeded"
    trigger.stop()
    cp.close()
