"""``make demo``: the whole transfer, end to end, on this machine.

Starts two real distribution registries (the connected "source" and the air-gapped "target") on
free loopback ports with their own temporary storage, fills the source with sample content of
every kind, then runs the real ``airlock`` commands: export to a transfer blob, copy it across
"the gap", inspect it, import it, and checks every digest on the far side. Everything it
started is stopped, and its temporary folder removed, at the end.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from airlock.testing import content
from airlock.testing.services import RegistryServer

console = Console()


def _airlock(*args: str) -> dict[str, Any]:
    exe = Path(sys.executable).parent / "airlock"
    shown = " ".join(shlex.quote(a) for a in ("airlock", *args))
    console.print(f"[bold cyan]$[/] {shown}", highlight=False, soft_wrap=True)
    started = time.monotonic()
    proc = subprocess.run([str(exe), *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        console.print(proc.stderr.strip(), style="red", highlight=False)
        raise SystemExit(proc.returncode)
    console.print(f"  [dim]done in {time.monotonic() - started:.2f} s[/]")
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def _kind(art: content.PushedArtifact) -> str:
    if art.artifact_type:
        for word, kind in (("helm", "Helm chart"), ("signature", "signature"), ("sbom", "SBOM")):
            if word in art.artifact_type:
                return kind
        return art.artifact_type.rsplit("/", 1)[-1]
    if "helm" in art.manifest.decode(errors="replace"):
        return "Helm chart"
    return {
        content.OCI_MANIFEST: "OCI image",
        "application/vnd.oci.image.index.v1+json": "OCI index",
        "application/vnd.docker.distribution.manifest.v2+json": "Docker v2 image",
        "application/vnd.docker.distribution.manifest.list.v2+json": "Docker manifest list",
    }.get(art.media_type, art.media_type)


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="airlock-demo-"))
    try:
        with (
            RegistryServer.start(work / "source", name="source") as source,
            RegistryServer.start(work / "target", name="target") as target,
        ):
            console.rule("[bold]airlock demo")
            console.print(f"source registry (connected side): {source.url}")
            console.print(f"target registry (air-gapped side): {target.url}")
            samples = content.push_sample_set(source.url, seed=42)
            console.print(
                f"pushed {len(samples)} sample artifacts: OCI image with a signature, multi-arch index, "
                "Docker v2 image, Helm chart\n"
            )
            outbox = work / "outbox"
            inbox = work / "inbox"
            outbox.mkdir()
            inbox.mkdir()
            tagged = [a.reference for a in samples if a.tag]

            console.rule("1. export (connected side)")
            exported = _airlock(
                "export",
                "--source-registry",
                source.url,
                "--artifacts",
                *tagged,
                "--include-referrers",
                "--target",
                (outbox / "batch1.tar").as_uri(),
            )
            console.print(f"  {exported['size']:,} bytes, catalogDigest {exported['catalogDigest']}", soft_wrap=True)

            console.rule("2. carry the blob across the gap")
            _airlock("copy", (outbox / "batch1.tar").as_uri(), (inbox / "batch1.tar").as_uri())
            listing = _airlock("inspect", (inbox / "batch1.tar").as_uri(), "--verify")
            console.print(f"  {len(listing['artifacts'])} artifacts, every blob verified")

            console.rule("3. import (air-gapped side)")
            imported = _airlock(
                "import",
                "--source",
                (inbox / "batch1.tar").as_uri(),
                "--target-registry",
                target.url,
                "--catalog-digest",
                exported["catalogDigest"],
            )

            console.rule("4. result")
            table = Table("artifact", "kind", "digest", "verified")
            all_ok = True
            for art in samples:
                ref = art.tag or art.digest
                _raw, _mt, digest = content.get_manifest(target.url, art.repository, ref)
                ok = digest == art.digest and all(
                    content.blob_exists(target.url, art.repository, d) for d, _ in art.blobs
                )
                all_ok &= ok
                table.add_row(
                    art.reference if art.tag else f"{art.repository}@…{art.digest[-8:]}",
                    _kind(art),
                    art.digest[:15] + "…",
                    "[green]yes[/]" if ok else "[red]NO[/]",
                )
            console.print(table)
            console.print(
                f"imported {len(imported['importedArtifacts'])} artifacts; blobs uploaded "
                f"{imported['blobs']['uploaded']}, mounted {imported['blobs']['mounted']}; "
                f"catalogDigest matched: {imported['catalogDigest'] == exported['catalogDigest']}"
            )
            return 0 if all_ok else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
