"""Receipts carried back (``import --receipt-out``, ``inventory --receipt-out``): written as the
import leaves the target, and refused before any work where they cannot be written."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from airlock.testing import content
from airlock.testing.console import Run
from airlock.testing.images import push_oci_image, push_oci_index
from airlock.testing.referrers import push_referrer
from airlock.testing.registry_server import RegistryServer


def test_a_receipt_written_beside_provenance_referrers_lets_the_next_delta_import(
    tmp_path: Path, cli: Callable[..., Run], source_registry: RegistryServer, fresh: RegistryServer
) -> None:
    """Regression: --receipt-out was written before --annotate-provenance added its referrers, which
    moves the sha256-<hex> fallback tag; the next delta left that tag out as unchanged, and its
    import failed ("no longer so in the target registry"), at every cycle."""
    index = push_oci_index(source_registry.url, "delta/prov", "1.0", layers=1, layer_size=512, seed=367)
    push_referrer(source_registry.url, "delta/prov", index, seed=368)
    full, receipt, delta = tmp_path / "full.tar", tmp_path / "receipt.json", tmp_path / "delta.tar"
    cli("export", "--source-registry", source_registry.url, "--target", full, "-a", index.reference,
        "--include-referrers").json()  # fmt: skip
    cli("import", "--source", full, "--target-registry", fresh.url, "--annotate-provenance", "--receipt-out",
        receipt).json()  # fmt: skip
    cli("export", "--source-registry", source_registry.url, "--target", delta, "-a", index.reference,
        "--include-referrers", "--delta-from", receipt).json()  # fmt: skip
    imported = cli("import", "--source", delta, "--target-registry", fresh.url).json()
    assert imported["failedArtifacts"] == {} and index.reference in imported["unchangedArtifacts"], imported


def test_a_receipt_out_that_cannot_be_written_is_refused_before_anything_is_imported(
    tmp_path: Path, cli: Callable[..., Run], source_registry: RegistryServer, fresh: RegistryServer
) -> None:
    """Regression: a --receipt-out in a missing directory failed only after every tag was written,
    with one line that did not say the import itself had completed."""
    image = push_oci_image(source_registry.url, "rcpt/unwritable", "1", seed=317, layer_size=1024)
    batch = tmp_path / "batch.tar"
    cli("export", "--source-registry", source_registry.url, "--target", batch, "-a", image.reference).json()
    (tmp_path / "adir").mkdir()
    for path, why in ((tmp_path / "gone" / "r.json", "does not exist"), (tmp_path / "adir", "is a directory")):
        run = cli("import", "--source", batch, "--target-registry", fresh.url, "--receipt-out", path)
        message = run.only_error(2)
        assert message.startswith(f"--receipt-out {path}: ") and why in message, message
        run = cli("inventory", "--registry", fresh.url, "--receipt-out", path)
        assert why in run.only_error(2)
    assert content.list_tags(fresh.url, "rcpt/unwritable") == []
