"""`make demo` is the seed's walkthrough with airlock in place of az, through `airlock serve`: run it."""

from __future__ import annotations

import subprocess
import sys


def test_demo_walkthrough_end_to_end() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "airlock.testing.demo"], capture_output=True, text=True, timeout=300, check=False
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    for step in (
        "airlock keyvault secret set --vault-name sourcekv",
        "airlock acr export-pipeline create",
        "airlock keyvault set-policy -n targetkv",
        "airlock acr pipeline-run create",
        "airlock copy",
        "catalogDigest matches the export: True",
        "target container after DeleteSourceBlobOnSuccess: empty",
    ):
        assert step in out, step
    assert out.count("│ yes") == 5
    assert "Traceback" not in out
