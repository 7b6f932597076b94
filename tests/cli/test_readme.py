"""The README runs as written: its shell blocks, in order, against real registries and Azurite.

The only change made to the README's text is the one it documents: the assignments in the block
that starts with ``# Your environment`` get this test's registries, storage accounts and keys. Then
every ``bash`` block after the set-up section runs, in order, in one ``bash`` with ``set -euo
pipefail``, as a newcomer pasting them would. The results are checked against the registries.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from airlock.testing import content
from airlock.testing.azurite import AzuriteServer
from airlock.testing.images import push_oci_image
from airlock.testing.referrers import push_referrer
from airlock.testing.registry_server import RegistryServer

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
BIN = Path(sys.executable).parent
ENV_MARKER = "# Your environment"


def readme_blocks(text: str) -> list[str]:
    """The ``bash`` blocks of the README after its set-up section (``make demo``/``make test``)."""
    blocks = re.findall(r"^```bash\n(.*?)^```", text, flags=re.S | re.M)
    return [b for b in blocks if "make demo" not in b]


def substitute_environment(block: str, values: dict[str, str]) -> str:
    """The environment block with each ``NAME=...`` line's value replaced; every name must be there."""
    missing = set(values)
    out = []
    for line in block.splitlines():
        prefix = "export " if line.startswith("export ") else ""
        name = line.removeprefix(prefix).split("=", 1)[0]
        if name in values:
            line = f"{prefix}{name}={shlex.quote(values[name])}"
            missing.discard(name)
        out.append(line)
    assert not missing, f"the README's environment block lacks {sorted(missing)}"
    return "\n".join(out) + "\n"


def test_readme_environment_block_is_first_and_only_assigns() -> None:
    blocks = readme_blocks(README.read_text())
    assert ENV_MARKER in blocks[0], "the first runnable block must be the environment block"
    for line in blocks[0].splitlines():
        assert line.startswith(("#", "set ")) or re.match(r"^(export )?[A-Z_]+=", line), line


@pytest.fixture(scope="module")
def azurite_https(workdir: Path) -> Iterator[AzuriteServer]:
    # The walkthrough signs https-only SAS tokens, as ACR's does: Azurite must speak TLS.
    with AzuriteServer.start(workdir / "azurite-tls", accounts=("srcacct", "dstacct"), https=True) as server:
        yield server


def test_readme_walkthrough_runs_as_written(
    source_registry: RegistryServer, target_registry: RegistryServer, azurite_https: AzuriteServer, tmp_path: Path
) -> None:
    app = push_oci_image(source_registry.url, "team/app", "1.4", seed=41)
    signature = push_referrer(source_registry.url, "team/app", app, seed=42)
    base = push_oci_image(source_registry.url, "team/base", "2", seed=43)

    blocks = readme_blocks(README.read_text())
    env_block = substitute_environment(
        blocks[0],
        {
            "SOURCE_REGISTRY": source_registry.url,
            "TARGET_REGISTRY": target_registry.url,
            "SOURCE_SA": "srcacct",
            "TARGET_SA": "dstacct",
            "SOURCE_BLOB": azurite_https.blob_endpoint("srcacct"),
            "TARGET_BLOB": azurite_https.blob_endpoint("dstacct"),
            "SOURCE_KEY": azurite_https.account_key("srcacct"),
            "TARGET_KEY": azurite_https.account_key("dstacct"),
            "USB": str(tmp_path / "usb"),
            "REQUESTS_CA_BUNDLE": str(azurite_https.ca_cert),  # Azurite's self-signed certificate
            "AIRLOCK_STORAGE_HOSTS": azurite_https.storage_host,  # pipelines may send their SAS tokens there
        },
    )
    script = env_block + "\n".join(blocks[1:])
    work = tmp_path / "work"
    work.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRLOCK_", "AZURE_")) and k not in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")
    }
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        AIRLOCK_HOME=str(tmp_path / "home"),
        COLUMNS="80",
    )
    run = subprocess.run(
        ["bash", "-c", script], cwd=work, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert run.returncode == 0, f"the README failed:\n--- stdout:\n{run.stdout}\n--- stderr:\n{run.stderr}"
    assert "error:" not in run.stderr, run.stderr

    # What the README promises: the artifacts, with their digests and the signature, in the target.
    for artifact in (app, base):
        assert artifact.tag is not None
        _, _, digest = content.get_manifest(target_registry.url, artifact.repository, artifact.tag)
        assert digest == artifact.digest
    assert content.manifest_exists(target_registry.url, "team/app", signature.digest)
    assert (tmp_path / "usb" / "batch1.tar").is_file()

    # Regression: the recurring sync's receipt once named repositories the renamed import had not
    # written, so its "delta" left nothing out. The same artifacts again: their tags left out, and
    # the blobs of what still travels (the signature, by digest) too.
    shown = subprocess.run(
        [BIN / "airlock", "inspect", tmp_path / "usb" / "delta1.tar"],
        cwd=work, env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    delta = json.loads(shown.stdout)["delta"]
    assert {"team/app:1.4", "team/base:2"} <= set(delta["artifactsLeftOut"]), delta  # and the referrers' index
    assert delta["blobsLeftOut"] > 0 and delta["size"] < delta["fullSize"] / 2, delta
    for artifact in (app, base):
        assert content.manifest_exists(target_registry.url, f"mirror/{artifact.repository}", artifact.digest)

    # The pipeline path on its own: what the import run imported (its export had IncludeReferrers).
    show = subprocess.run(
        [BIN / "airlock", "acr", "pipeline-run", "show", "-g", "transferrg", "-r", "targetreg", "-n", "importrun1"],
        cwd=work, env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    response = json.loads(show.stdout)["properties"]["response"]
    assert response["status"] == "Succeeded", response
    imported = set(response["importedArtifacts"])
    assert {"team/app:1.4", "team/base:2", f"team/app@{signature.digest}"} <= imported, imported
