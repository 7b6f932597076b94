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


def test_later_volumes_an_earlier_bundle_of_the_name_left_are_reported_stale_and_start_no_import(
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

    def pipeline(name: str) -> Path:
        inbox = tmp_path / name
        inbox.mkdir()
        body = {"properties": {"source": {"uri": inbox.as_uri()}, "options": ["OverwriteTags"]}}
        cp.pipelines.put(SUB, "rg", "dstreg", "importPipelines", name, body)
        return inbox

    def imported(started: list[str]) -> None:
        assert len(started) == 1, started
        assert cp.runs.wait(started[0], timeout=60).properties.provisioningState == "Succeeded"

    # Landed before the bundle was exported (a day ago): the old volumes are read, and are not its own.
    inbox = pipeline("agedinbox")
    for volume in old[1:]:
        _land(volume, inbox, volume.name, age=86400)
    _land(new[0], inbox, "batch.tar")
    assert trigger.poll() == []
    waiting = _waiting(cp, "agedinbox")["batch.tar"]
    assert (waiting["missingVolumes"], waiting["staleVolumes"]) == ([], later), waiting
    for volume in new[1:-1]:  # arriving one by one: still waiting, and never an import
        _land(volume, inbox, volume.name)
        assert trigger.poll() == []
    assert _waiting(cp, "agedinbox")["batch.tar"]["staleVolumes"] == [later[-1]]
    _land(new[-1], inbox, new[-1].name)
    imported(trigger.poll())

    # Seen beside another first volume (the bundle imported before this one, landed after it was
    # exported): the same.
    inbox = pipeline("reusedinbox")
    for volume in old:
        _land(volume, inbox, volume.name)
    imported(trigger.poll())
    _land(new[0], inbox, "batch.tar")
    assert trigger.poll() == []
    assert _waiting(cp, "reusedinbox")["batch.tar"]["staleVolumes"] == later
    for volume in new[1:]:
        _land(volume, inbox, volume.name)
    imported(trigger.poll())
    assert _waiting(cp, "reusedinbox") == {}
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
    (started,) = trigger.poll()
    assert cp.runs.wait(started, timeout=60).properties.provisioningState == "Succeeded"
    cp.close()
