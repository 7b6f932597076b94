"""Receipts (transfer.receipt) and the rename map (transfer.rename): sizes, bounds, longest match."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from airlock.archive.format import CatalogArtifact
from airlock.errors import ReceiptError, UsageError
from airlock.oci.manifest import OCI_INDEX
from airlock.transfer.receipt import MAX_RECEIPT_SIZE, Holdings, read_receipt, write_receipt
from airlock.transfer.rename import RenameMap


def _hex(*parts: object) -> str:
    return hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()


def test_a_receipt_of_10000_artifacts_is_under_4_mib(tmp_path: Path) -> None:
    """1,000 repositories x 10 tags, each an image of a config, 3 base layers shared by all (from a pool
    of 20) and 2 layers of its own: 10,000 manifests, 30,020 blobs. Measured: 3.2 MiB, of
    which 2.5 MiB are the 40,020 digests themselves, each written once."""
    held = Holdings()
    for r in range(1000):
        tags, manifests, blobs = held.repository(f"team{r // 100}/app{r}")
        for t in range(10):
            manifest = _hex("m", r, t)
            tags[f"1.{t}"] = manifest
            manifests.add(manifest)
            own = [_hex("c", r, t), _hex("l", r, t, 0), _hex("l", r, t, 1)]
            shared = [_hex("base", (r + i) % 20) for i in range(3)]
            for b in own + shared:
                blobs.add(b)
                held.blob_sizes[b] = 10_000_000 + r * 10 + t
    path = tmp_path / "receipt.json"
    size = write_receipt(held.receipt("https://registry.internal"), path)
    assert size == path.stat().st_size
    print(f"receipt of 10,000 artifacts: {size / 2**20:.2f} MiB")
    assert size < 4 * 2**20
    receipt, _digest = read_receipt(path)
    assert len(receipt.blobs) == 30_020
    assert sum(len(r.manifests) for r in receipt.repositories.values()) == 10_000
    assert receipt.tag_digest("team0/app0", "1.3") == "sha256:" + _hex("m", 0, 3)


def test_a_receipt_over_the_cap_or_with_positions_past_its_tables_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    with big.open("wb") as f:
        f.truncate(MAX_RECEIPT_SIZE + 1)
    with pytest.raises(ReceiptError, match="larger than 64 MiB"):
        read_receipt(big)
    held = Holdings()
    held.repository("a")[2].add(_hex("b"))
    held.blob_sizes[_hex("b")] = 1
    doc = held.receipt("http://r").model_dump(by_alias=True, mode="json")
    doc["repositories"]["a"]["blobs"] = [5]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(ReceiptError, match="repository a names a position past the end"):
        read_receipt(bad)


def test_rename_takes_the_longest_matching_prefix_and_checks_the_result() -> None:
    rename = RenameMap.parse(["team/=mirror/team/", "team/base=legacy/base", "x=y"])
    assert rename.apply("team/app") == "mirror/team/app"
    assert rename.apply("team/base") == "legacy/base"
    assert rename.apply("team/base/sub") == "legacy/base/sub"
    assert rename.apply("other/app") == "other/app"
    # A destination no repository name can begin with is refused as the rule is read (a pipeline's
    # PUT too); one that makes a name too long, as it is applied.
    for bad in ("Mirror/", "../x/", "m//x/", "evil.example:5000/x/"):
        with pytest.raises(UsageError, match=f"--rename: team/={re.escape(bad)} renames into an invalid repository"):
            RenameMap.parse([f"team/={bad}"])
    whole = "m" * 255  # a whole name of the longest length is a destination too
    assert RenameMap.parse([f"team/app={whole}"]).apply("team/app") == whole
    long = "m" * 252 + "/"  # begins a name, but "team/app" renamed is 256 characters
    with pytest.raises(UsageError, match=f"renaming team/app by team/={long} gives invalid repository name"):
        RenameMap.parse([f"team/={long}"]).apply("team/app")
    with pytest.raises(UsageError, match="given twice"):
        RenameMap.parse(["a=b", "a=c"])


def test_rename_entries_refuse_two_artifacts_on_one_tag_but_merge_referrers_indexes() -> None:
    def entry(repo: str, tag: str, seed: str) -> CatalogArtifact:
        digest = "sha256:" + hashlib.sha256(seed.encode()).hexdigest()
        return CatalogArtifact(
            reference=f"{repo}:{tag}", repository=repo, tag=tag, digest=digest, mediaType=OCI_INDEX, size=1
        )

    rename = RenameMap.parse(["team/=m/", "other/=m/"])
    same = rename.entries([entry("team/app", "1", "a"), entry("other/app", "1", "a")])  # one artifact twice
    assert [e.reference for e in same] == ["m/app:1", "m/app:1"]
    with pytest.raises(UsageError, match=r"renaming would put team/app:1 \(sha256:.*\) and other/app:1 .* m/app:1"):
        rename.entries([entry("team/app", "1", "a"), entry("other/app", "1", "b")])
    # Two repositories' referrers indexes of one subject: the import merges them, so no conflict.
    fallback = "sha256-" + "e" * 64
    merged = rename.entries([entry("team/app", fallback, "a"), entry("other/app", fallback, "b")])
    assert {e.reference for e in merged} == {f"m/app:{fallback}"}
