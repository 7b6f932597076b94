"""Planted secrets never appear in logs, outputs, error messages, API responses, run records or the database.

Secrets planted: a SAS token (stored in a key vault, used by pipelines, also failing), a registry
password (in a vault, used by runs), the API's bearer tokens. Everything a user or an attacker
with the database file could see is searched for them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

from airlock.testing import azurite as az
from airlock.testing.airlock_server import AirlockServer
from airlock.testing.azurite import AzuriteServer
from airlock.testing.images import push_oci_image
from airlock.testing.registry_server import RegistryServer

SUB = "00000000-0000-0000-0000-000000000000"
REG = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/"

EXE = str(Path(sys.executable).parent / "airlock")


def test_secrets_never_leak(tmp_path: Path, azurite: AzuriteServer) -> None:
    home = tmp_path / "home"
    home.mkdir()
    password = "Reg1stry-Pa55word-planted"
    outputs: list[str] = []
    with RegistryServer.start(tmp_path / "auth", name="auth", htpasswd=("robot", password)) as registry:
        push_oci_image(registry.url, "secret/app", "1", seed=61, auth=("robot", password))
        az.create_container(azurite, "srcacct", "leaks")
        sas = az.container_sas(azurite, "srcacct", "leaks", permissions="racwdl")
        read_only = az.container_sas(azurite, "srcacct", "leaks", permissions="rl")
        signatures = {unquote(dict(p.split("=", 1) for p in t.split("&"))["sig"]) for t in (sas, read_only)}
        encoded = {s.replace("+", "%2B").replace("/", "%2F").replace("=", "%3D") for s in signatures}
        secrets = {password, *signatures, *encoded}

        server = AirlockServer(home, env={"AIRLOCK_STORAGE_HOSTS": azurite.storage_host}).start()
        try:
            api_token = (home / "api-token").read_text().strip()
            secrets.add(api_token)
            env = {
                **os.environ,
                "AIRLOCK_HOME": str(home),
                "AIRLOCK_ENDPOINT": server.url,
                "AIRLOCK_NO_PROGRESS": "1",
                "AIRLOCK_SUBSCRIPTION": SUB,
            }

            def cli(*args: str) -> None:
                done = subprocess.run([EXE, *args], capture_output=True, text=True, env=env, check=False)
                outputs.extend([done.stdout, done.stderr])

            cli("keyvault", "create", "-g", "rg", "-n", "leakkv")
            cli("keyvault", "secret", "set", "--vault-name", "leakkv", "--name", "sas", "--value", "?" + sas)
            cli("keyvault", "secret", "set", "--vault-name", "leakkv", "--name", "readonly", "--value", read_only)
            cli("keyvault", "secret", "set", "--vault-name", "leakkv", "--name", "regpass", "--value", password)
            cli(
                "acr",
                "create",
                "-g",
                "rg",
                "-n",
                "leakreg",
                "--login-server",
                registry.url,
                "--username",
                "robot",
                "--password-secret-uri",
                "https://leakkv.vault.azure.net/secrets/regpass",
            )
            container = az.container_url(azurite, "srcacct", "leaks")
            for name, secret in (("goodpipe", "sas"), ("readonlypipe", "readonly")):
                cli(
                    "acr",
                    "export-pipeline",
                    "create",
                    "-g",
                    "rg",
                    "-r",
                    "leakreg",
                    "-n",
                    name,
                    "-m",
                    "SasToken",
                    "-s",
                    f"https://leakkv.vault.azure.net/secrets/{secret}",
                    "-c",
                    container,
                )
                pipe = server.get(REG.replace("/rg/", "/rg/") + f"leakreg/exportPipelines/{name}")
                cli(
                    "keyvault",
                    "set-policy",
                    "-n",
                    "leakkv",
                    "--object-id",
                    pipe["identity"]["principalId"],
                    "--secret-permissions",
                    "get",
                )
            for i, name in enumerate(("goodpipe", "readonlypipe")):
                cli(
                    "acr",
                    "pipeline-run",
                    "create",
                    "-g",
                    "rg",
                    "-r",
                    "leakreg",
                    "-p",
                    name,
                    "-t",
                    "export",
                    "-n",
                    f"leakrun{i}",
                    "-b",
                    f"b{i}.tar",
                    "-a",
                    "secret/app:1",
                    "-o",
                    "json",
                )
            cli("acr", "pipeline-run", "list", "-g", "rg", "-r", "leakreg", "-o", "table")
            cli("acr", "export-pipeline", "list", "-g", "rg", "-r", "leakreg")
            cli("keyvault", "secret", "list", "--vault-name", "leakkv")
            cli(
                "rest",
                "--method",
                "get",
                "--url",
                REG.replace(SUB, "{subscriptionId}") + "leakreg/pipelineRuns",
            )
            reader = server.http.post("/airlock/tokens", json={"name": "leakreader", "role": "Reader"}).json()["token"]
            secrets.add(reader)
            for path in ("leakreg/pipelineRuns", "leakreg/exportPipelines", "leakreg"):
                outputs.append(server.http.get(REG + path + "?api-version=2025-06-01-preview").text)
            outputs.append(server.http.get("/airlock/tokens").text)
            runs = server.get(REG + "leakreg/pipelineRuns")["value"]
        finally:
            server.stop()

    states = sorted(r["properties"]["provisioningState"] for r in runs)
    assert states == ["Failed", "Succeeded"], runs  # the read-only SAS failed, with a message, the other worked
    failed = next(r for r in runs if r["properties"]["provisioningState"] == "Failed")
    assert "permission" in failed["properties"]["response"]["pipelineRunErrorMessage"]

    logs = [p.read_text(errors="replace") for p in tmp_path.glob("serve-*.log")]
    database = b"".join(p.read_bytes() for p in home.glob("airlock.db*"))
    everything = "\n".join(outputs + logs)
    assert everything.strip()
    for secret in secrets:
        assert secret not in everything, f"a planted secret appeared in an output: {secret[:6]}…"
        assert secret.encode() not in database, f"a planted secret is stored in clear: {secret[:6]}…"
