"""API tokens created and revoked with the CLI, used against a running `airlock serve`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from airlock.testing.airlock_server import AirlockServer

EXE = str(Path(sys.executable).parent / "airlock")
SUB = "00000000-0000-0000-0000-000000000000"
REG = (
    f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/tokenreg"
    "?api-version=2025-06-01-preview"
)


def test_tokens_created_used_and_revoked_with_the_cli(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    server = AirlockServer(home).start()
    try:
        env = {**os.environ, "AIRLOCK_HOME": str(home), "AIRLOCK_ENDPOINT": server.url}

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([EXE, *args], capture_output=True, text=True, env=env, check=False)

        made = cli("token", "create", "-n", "auditor", "--role", "Reader", "--query", "token", "-o", "tsv")
        assert made.returncode == 0, made.stderr
        token = made.stdout.strip()
        reader = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"})
        assert reader.get(REG).status_code == 404  # authenticated; the registry just does not exist
        assert reader.put(REG, json={"properties": {"loginServer": "https://r.example"}}).status_code == 403
        listed = cli("token", "list", "-o", "tsv")
        assert "auditor\tReader" in listed.stdout and token not in listed.stdout
        # A Reader's token cannot mint tokens.
        denied = subprocess.run(
            [EXE, "token", "create", "-n", "x"],
            capture_output=True,
            text=True,
            check=False,
            env={**env, "AIRLOCK_TOKEN": token},
        )
        assert denied.returncode != 0 and denied.stderr.startswith("error:")
        assert cli("token", "revoke", "-n", "auditor").returncode == 0
        assert reader.get(REG).status_code == 401
        reader.close()
    finally:
        server.stop()
