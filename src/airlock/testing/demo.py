"""``make demo``: ACR's transfer walkthrough, end to end, with ``airlock`` in place of ``az``.

Starts real components on free loopback ports with temporary storage — two distribution
registries (the connected source, the air-gapped target), Azurite over HTTPS with a source and a
target storage account, and ``airlock serve`` (the control plane, with its source trigger) — fills
the source with sample content of every kind, and then runs the seed document's commands: SAS
tokens into key vaults, both pipelines, the vault policies for their identities, an export run,
the copy between the storage accounts, and the import that the source trigger starts by itself.
It checks every digest on the far side and stops everything it started.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from airlock.testing import azurite as az
from airlock.testing import content
from airlock.testing.azurite import AzuriteServer
from airlock.testing.processes import free_port
from airlock.testing.registry_server import RegistryServer
from airlock.testing.samples import push_sample_set

console = Console(highlight=False)
EXE = str(Path(sys.executable).parent / "airlock")


class Demo:
    def __init__(self, work: Path, env: dict[str, str]) -> None:
        self.work = work
        self.env = env

    def run(self, *args: str, show: str | None = None, quiet: bool = False) -> Any:
        shown = show or " ".join(shlex.quote(a) for a in ("airlock", *args))
        if not quiet:
            console.print(f"[bold cyan]$[/] {shown}", soft_wrap=True)
        proc = subprocess.run([EXE, *args], capture_output=True, text=True, env=self.env, check=False)
        if proc.returncode != 0:
            console.print(proc.stderr.strip() or proc.stdout.strip(), style="red")
            raise SystemExit(proc.returncode)
        for line in proc.stderr.splitlines():
            if line.strip() and not quiet:
                console.print(f"  [dim]{line.strip()}[/]", soft_wrap=True)
        out = proc.stdout.strip()
        try:
            return json.loads(out) if out else None
        except ValueError:
            return out


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
    }.get(art.media_type, art.media_type)


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="airlock-demo-"))
    server: subprocess.Popen[bytes] | None = None
    try:
        with (
            RegistryServer.start(work / "source", name="source") as source,
            RegistryServer.start(work / "target", name="target") as target,
            AzuriteServer.start(work / "azurite", accounts=("sourcesa", "targetsa"), https=True) as azurite,
        ):
            assert azurite.ca_cert is not None
            port = free_port()
            env = {
                **os.environ,
                "AIRLOCK_HOME": str(work / "home"),
                "AIRLOCK_ENDPOINT": f"http://127.0.0.1:{port}",
                "AIRLOCK_TRIGGER_INTERVAL": "1",
                "AIRLOCK_NO_PROGRESS": "1",
                "REQUESTS_CA_BUNDLE": str(azurite.ca_cert),  # Azurite's self-signed certificate
                "AIRLOCK_STORAGE_HOSTS": azurite.storage_host,  # the pipelines' storage: send them SAS tokens
            }
            env.pop("AIRLOCK_SUBSCRIPTION", None)
            log = (work / "serve.log").open("wb")
            server = subprocess.Popen(
                [EXE, "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
            )
            demo = Demo(work, env)
            _wait_for(f"http://127.0.0.1:{port}/healthz")

            console.rule("[bold]airlock demo: ACR transfer, self-hosted")
            console.print(f"source registry {source.url}   target registry {target.url}")
            console.print(
                f"storage accounts sourcesa, targetsa at {azurite.blob_endpoint('sourcesa').rsplit('/', 1)[0]}"
            )
            console.print(f"control plane   {env['AIRLOCK_ENDPOINT']} (airlock serve, source trigger every 1 s)")
            samples = push_sample_set(source.url, seed=42)
            tagged = [a.reference for a in samples if a.tag]
            console.print(f"pushed {len(samples)} sample artifacts to the source\n")

            console.rule("1. storage containers and SAS tokens in key vaults")
            sas: dict[str, str] = {}
            for account, perms in (("sourcesa", "alrw"), ("targetsa", "dlr")):
                cs = azurite.connection_string(account)
                demo.run(
                    "storage",
                    "container",
                    "create",
                    "--name",
                    "transfer",
                    "--connection-string",
                    cs,
                    show=f"airlock storage container create --name transfer --connection-string $CONN_{account}",
                )
                token = demo.run(
                    "storage",
                    "container",
                    "generate-sas",
                    "--name",
                    "transfer",
                    "--connection-string",
                    cs,
                    "--expiry",
                    "2035-01-01",
                    "--permissions",
                    perms,
                    "--https-only",
                    "-o",
                    "tsv",
                    show=f"SAS=?$(airlock storage container generate-sas --name transfer --account-name {account} "
                    f"--expiry 2035-01-01 --permissions {perms} --https-only -o tsv)",
                )
                sas[account] = "?" + str(token).strip()
            demo.run("keyvault", "create", "-g", "sourcerg", "-n", "sourcekv")
            demo.run("keyvault", "create", "-g", "targetrg", "-n", "targetkv")
            demo.run(
                "keyvault",
                "secret",
                "set",
                "--vault-name",
                "sourcekv",
                "--name",
                "acrexportsas",
                "--value",
                sas["sourcesa"],
                show="airlock keyvault secret set --vault-name sourcekv --name acrexportsas --value $EXPORT_SAS",
            )
            demo.run(
                "keyvault",
                "secret",
                "set",
                "--vault-name",
                "targetkv",
                "--name",
                "acrimportsas",
                "--value",
                sas["targetsa"],
                show="airlock keyvault secret set --vault-name targetkv --name acrimportsas --value $IMPORT_SAS",
            )

            console.rule("2. registries and pipelines")
            demo.run("acr", "create", "-g", "sourcerg", "-n", "sourcereg", "--login-server", source.url)
            demo.run("acr", "create", "-g", "targetrg", "-n", "targetreg", "--login-server", target.url)
            export = demo.run(
                "acr",
                "export-pipeline",
                "create",
                "-g",
                "sourcerg",
                "-r",
                "sourcereg",
                "-n",
                "myexport",
                "-m",
                "SasToken",
                "-s",
                "https://sourcekv.vault.azure.net/secrets/acrexportsas",
                "-c",
                azurite.blob_endpoint("sourcesa") + "/transfer",
                "-z",
                "OverwriteBlobs",
                "IncludeReferrers",
            )
            demo.run(
                "keyvault",
                "set-policy",
                "-n",
                "sourcekv",
                "--object-id",
                export["identity"]["principalId"],
                "--secret-permissions",
                "get",
            )
            imp = demo.run(
                "acr",
                "import-pipeline",
                "create",
                "-g",
                "targetrg",
                "-r",
                "targetreg",
                "-n",
                "myimport",
                "-m",
                "SasToken",
                "-s",
                "https://targetkv.vault.azure.net/secrets/acrimportsas",
                "-c",
                azurite.blob_endpoint("targetsa") + "/transfer",
                "-z",
                "DeleteSourceBlobOnSuccess",
            )
            demo.run(
                "keyvault",
                "set-policy",
                "-n",
                "targetkv",
                "--object-id",
                imp["identity"]["principalId"],
                "--secret-permissions",
                "get",
            )

            console.rule("3. export run (connected side)")
            run = demo.run(
                "acr",
                "pipeline-run",
                "create",
                "-g",
                "sourcerg",
                "-r",
                "sourcereg",
                "-p",
                "myexport",
                "-t",
                "export",
                "-n",
                "exportrun1",
                "-b",
                "batch1.tar",
                "-a",
                *tagged,
            )
            response = run["properties"]["response"]
            console.print(
                f"  [green]{response['status']}[/]: {response['target']['uri']}  "
                f"catalogDigest {response['catalogDigest']}",
                soft_wrap=True,
            )

            console.rule("4. copy across the gap")
            # The copy is the user's own means (AzCopy, a cross-domain solution); it needs write access
            # to the target container, which the import pipeline's read/delete/list token rightly lacks.
            copy_sas = demo.run(
                "storage",
                "container",
                "generate-sas",
                "--name",
                "transfer",
                "--connection-string",
                azurite.connection_string("targetsa"),
                "--expiry",
                "2035-01-01",
                "--permissions",
                "acw",
                "--https-only",
                "-o",
                "tsv",
                show="COPY_SAS=$(airlock storage container generate-sas --name transfer --account-name targetsa "
                "--expiry 2035-01-01 --permissions acw --https-only -o tsv)",
            )
            files = {"sourcesa": work / "sourcesa.sas", "targetsa": work / "copy-target.sas"}
            files["sourcesa"].write_text(sas["sourcesa"])
            files["targetsa"].write_text(str(copy_sas).strip())
            demo.run(
                "copy",
                azurite.blob_endpoint("sourcesa") + "/transfer/batch1.tar",
                azurite.blob_endpoint("targetsa") + "/transfer/batch1.tar",
                "--source-sas-token-file",
                str(files["sourcesa"]),
                "--target-sas-token-file",
                str(files["targetsa"]),
                show="airlock copy https://…/sourcesa/transfer/batch1.tar https://…/targetsa/transfer/batch1.tar "
                "--source-sas-token-file export.sas --target-sas-token-file copy.sas",
            )

            console.rule("5. the source trigger imports it (air-gapped side)")
            deadline = time.monotonic() + 90
            runs: list[dict[str, Any]] = []
            while time.monotonic() < deadline:
                runs = demo.run("acr", "pipeline-run", "list", "-g", "targetrg", "-r", "targetreg", quiet=True) or []
                if runs and runs[0]["properties"]["provisioningState"] in ("Succeeded", "Failed"):
                    break
                time.sleep(0.5)
            else:
                console.print("the triggered import did not finish in 90 s", style="red")
                return 1
            console.print("[bold cyan]$[/] airlock acr pipeline-run list -g targetrg -r targetreg -o table")
            table_out = subprocess.run(
                [EXE, "acr", "pipeline-run", "list", "-g", "targetrg", "-r", "targetreg", "-o", "table"],
                capture_output=True,
                text=True,
                env=env,
                check=False,
            )
            sys.stdout.write(table_out.stdout)  # the CLI's own table, unwrapped
            sys.stdout.flush()
            imported = runs[0]["properties"]
            if imported["provisioningState"] != "Succeeded":
                console.print(imported["response"].get("pipelineRunErrorMessage", ""), style="red")
                return 1

            console.rule("6. result")
            table = Table("artifact", "kind", "digest", "verified in target")
            all_ok = True
            for art in samples:
                _raw, _mt, digest = content.get_manifest(target.url, art.repository, art.tag or art.digest)
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
            same = imported["response"]["catalogDigest"] == response["catalogDigest"]
            os.environ["REQUESTS_CA_BUNDLE"] = str(azurite.ca_cert)
            left = az.list_blob_names(azurite, "targetsa", "transfer")
            console.print(
                f"triggered run {runs[0]['name']}: catalogDigest matches the export: {same}; "
                f"target container after DeleteSourceBlobOnSuccess: {left or 'empty'}"
            )
            _dashboard(env)
            return 0 if all_ok and same and not left else 1
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
        shutil.rmtree(work, ignore_errors=True)


def _dashboard(env: dict[str, str]) -> None:
    """Print the dashboard's URL; with DASHBOARD=1 (``make demo DASHBOARD=1``) keep the demo's
    services up until Ctrl-C, so that it can be opened."""
    if os.environ.get("DASHBOARD", "") not in ("1", "true", "yes"):  # the services stop now: no URL to open
        console.print("\n[dim]make demo DASHBOARD=1 keeps the demo's services up and shows the dashboard[/]")
        return
    url = env["AIRLOCK_ENDPOINT"] + "/ui"
    token = Path(env["AIRLOCK_HOME"]) / "api-token"
    console.print(f"\n[bold]dashboard[/] {url}  (sign in with the token in {token})")
    console.print("the demo's registries, Azurite and airlock serve stay up; Ctrl-C stops them")

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # Ctrl-C, or a SIGTERM (a supervisor; a shell that started make in the background ignores
    # SIGINT): either way the services are stopped and the demo's folder removed.
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        console.print("stopping")


def _wait_for(url: str, timeout: float = 20.0) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"airlock serve did not come up at {url}") from None
            time.sleep(0.1)


if __name__ == "__main__":
    raise SystemExit(main())
