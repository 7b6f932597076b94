"""Signed bundles in pipelines (issue 13), with a real `airlock serve` driven by the console script:
an ExportPipeline signs with a key held in its vault (`properties.signingKeySecretUri`, read as the
pipeline's identity), and an ImportPipeline with `properties.trustedKeys` lets its source trigger
import only bundles signed by those keys, reporting the others in `sourceTriggerReport`."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airlock.archive.keys import load_public_key, load_signing_key
from airlock.oci.reference import ArtifactReference, RegistryURL
from airlock.registry.client import RegistryClient
from airlock.storage.location import open_blob, parse_blob_uri
from airlock.testing import content
from airlock.testing.airlock_server import AirlockServer
from airlock.testing.console import Console
from airlock.testing.images import push_oci_image
from airlock.testing.polling import wait_until
from airlock.testing.registry_server import RegistryServer
from airlock.transfer.export import export_artifacts

RG = "signrg"
REPO = "signed/app"
SUB = "00000000-0000-0000-0000-000000000000"
REGISTRIES = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.ContainerRegistry/registries"
INBOX = REGISTRIES + "/dstreg/importPipelines/inbox"
VAULT = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.KeyVault/vaults/sign-kv"
API = "?api-version=2025-06-01-preview"


def key_pair(directory: Path, name: str) -> tuple[Path, Path]:
    private, public = directory / f"{name}.pem", directory / f"{name}.pub.pem"
    for args in (
        ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(private)],
        ["pkey", "-in", str(private), "-pubout", "-out", str(public)],
    ):
        subprocess.run(["openssl", *args], check=True, capture_output=True)
    return private, public


def export_locally(registry: RegistryServer, reference: str, target: Path, key: Path | None) -> None:
    """A bundle made in this process (the console script's export is tested in test_signing_cli.py)."""
    signer = None if key is None else load_signing_key(key.read_bytes(), passphrase=None, name=str(key))
    client = RegistryClient(RegistryURL.parse(registry.url), use_auth_files=False)
    blob = open_blob(parse_blob_uri(target.as_uri()))
    export_artifacts(client=client, artifacts=[ArtifactReference.parse(reference)], target=blob, signer=signer)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirlockServer]:
    served = AirlockServer(tmp_path_factory.mktemp("served") / "home", trigger_interval=0.3).start()
    try:
        yield served
    finally:
        served.stop()


def test_trigger_imports_only_bundles_signed_by_the_pipelines_trusted_keys(
    tmp_path: Path, server: AirlockServer, source_registry: RegistryServer, target_registry: RegistryServer
) -> None:
    for name in ("outbox", "inbox", "client", "keys"):
        (tmp_path / name).mkdir()
    outbox, inbox = tmp_path / "outbox", tmp_path / "inbox"
    app = push_oci_image(source_registry.url, REPO, "1.0", seed=141, layers=1, layer_size=4 * 1024)
    (private, public), (other, _) = key_pair(tmp_path / "keys", "sign"), key_pair(tmp_path / "keys", "other")
    export_locally(source_registry, app.reference, outbox / "unsigned.tar", None)
    export_locally(source_registry, app.reference, outbox / "other.tar", other)

    token = (server.home / "api-token").read_text().strip()
    cli = Console(home=tmp_path / "client", env={"AIRLOCK_ENDPOINT": server.url, "AIRLOCK_TOKEN": token})
    # Set-up over HTTP (console scripts are slow on a busy machine; those commands have tests of their own).
    for name, url in (("srcreg", source_registry.url), ("dstreg", target_registry.url)):
        server.put(f"{REGISTRIES}/{name}", {"properties": {"loginServer": url}})
    server.put(VAULT, {})
    server.put(VAULT + "/secrets/bundlekey", {"properties": {"value": private.read_text()}})

    # The export pipeline signs with the key in its vault, read as its identity.
    secret = "https://sign-kv.vault.azure.net/secrets/bundlekey"
    pipeline = cli.ok(
        "acr", "export-pipeline", "create", "-g", RG, "-r", "srcreg", "-n", "outbox", "-c", outbox.as_uri(),
        "--signing-key-secret-uri", secret,
    ).json()  # fmt: skip
    assert pipeline["properties"]["signingKeySecretUri"] == secret, pipeline
    request = {"pipelineResourceId": pipeline["id"], "target": {"name": "never.tar"}, "artifacts": [app.reference]}
    server.put(f"{REGISTRIES}/srcreg/pipelineRuns/unreadable", {"properties": {"request": request}})
    failed = server.wait_run(f"{REGISTRIES}/srcreg/pipelineRuns/unreadable")["properties"]
    # No access policy yet: the run fails, naming the secret and the grant it needs; nothing is written.
    assert "lacks the 'get' permission on secret 'bundlekey'" in failed["response"]["pipelineRunErrorMessage"]
    assert not (outbox / "never.tar").exists()
    policy = {"objectId": pipeline["identity"]["principalId"], "permissions": {"secrets": ["get"]}}
    server.put(VAULT + "/accessPolicies/add", {"properties": {"accessPolicies": [policy]}})
    run = cli.ok(
        "acr", "pipeline-run", "create", "-g", RG, "-r", "srcreg", "-p", "outbox", "-n", "signedrun",
        "-t", "export", "-a", app.reference, "-b", "signed.tar",
    ).json()  # fmt: skip
    signature = run["properties"]["response"]["signature"]
    public_key = load_public_key(public.read_bytes(), name=str(public))
    assert signature == {"keyId": public_key.key_id, "algorithm": "ecdsa-p256-sha256"}, signature

    # A trusted key that is no public key is refused when the pipeline is written (400).
    body = {"properties": {"source": {"uri": inbox.as_uri()}, "trustedKeys": ["junk"]}}
    bad = server.http.put(INBOX.replace("inbox", "badkeys") + API, json=body)
    assert bad.status_code == 400 and "trustedKeys[0] is not a PEM public key" in bad.text, bad.text

    cli.ok("acr", "import-pipeline", "create", "-g", RG, "-r", "dstreg", "-n", "inbox", "-c", inbox.as_uri(),
           "-e", "True", "--trusted-key", public, "-o", "none")  # fmt: skip
    for name in ("unsigned.tar", "other.tar", "signed.tar"):
        os.replace(outbox / name, inbox / name)  # each lands whole, at once

    def runs() -> list[dict[str, Any]]:
        listed: list[dict[str, Any]] = server.get(REGISTRIES + "/dstreg/pipelineRuns")["value"]
        return listed

    def skipped() -> dict[str, str]:
        report = server.get(INBOX)["properties"].get("sourceTriggerReport") or {}
        return {item["blob"]: item["reason"] for item in report.get("skipped", [])}

    ended = wait_until(
        lambda: (r := runs()) and r[0]["properties"]["provisioningState"] in ("Succeeded", "Failed") and r,
        timeout=60,
        what="the triggered import to end",
    )
    assert [r["properties"]["request"]["source"]["name"] for r in ended] == ["signed.tar"], ended
    assert ended[0]["properties"]["provisioningState"] == "Succeeded", ended[0]["properties"]
    assert ended[0]["properties"]["response"]["signature"]["trusted"] is True
    assert content.list_tags(target_registry.url, REPO) == ["1.0"]
    reasons = wait_until(lambda: (s := skipped()) and len(s) == 2 and s, timeout=30, what="two blobs reported")
    assert reasons["unsigned.tar"].startswith("not imported: bundle ") and "is unsigned" in reasons["unsigned.tar"]
    assert "which is not a trusted key" in reasons["other.tar"], reasons
    assert len(runs()) == 1  # passed over poll after poll, never started


def test_contributor_may_not_name_a_signing_key_outside_the_vaults_nor_drop_trusted_keys_or_signature_policy(
    tmp_path: Path, server: AirlockServer
) -> None:
    """Azure Key Vault and Vault/OpenBao are read with the server's own credential: a contributor's
    pipeline naming the Owner's key there could sign whatever the contributor exports with it. And
    the trusted keys are the Owner's gate: a contributor may not change or drop them."""
    server.put(f"{REGISTRIES}/deputyreg", {"properties": {"loginServer": "http://127.0.0.1:9"}})
    server.put(VAULT, {})  # the SAS secret is the embedded vault's, which a contributor may name
    container, sas = "https://acct.blob.core.windows.net/transfer", "https://sign-kv.vault.azure.net/secrets/sas"
    _, public = key_pair(tmp_path, "owner")
    server.put(
        f"{REGISTRIES}/deputyreg/importPipelines/ownerinbox",
        {"properties": {
            "source": {"uri": container, "keyVaultUri": sas}, "trigger": {"sourceTrigger": {"status": "Disabled"}},
            "trustedKeys": [public.read_text()],
        }},
    )  # fmt: skip
    made = server.http.post("/airlock/tokens", json={"name": "mallory", "role": "TransferPipelineContributor"})
    assert made.status_code == 201, made.text
    mallory = Console(home=tmp_path, env={"AIRLOCK_ENDPOINT": server.url, "AIRLOCK_TOKEN": made.json()["token"]})
    common = ["-g", RG, "-r", "deputyreg", "-c", container, "-s", sas]
    run = mallory(
        "acr", "export-pipeline", "create", *common, "-n", "malloryexport",
        "--signing-key-secret-uri", "https://ownerkv.vault.azure.net/secrets/bundlekey",
    )  # fmt: skip
    message = run.only_error(1)
    assert "only an Owner may name a secret outside airlock's embedded key vaults" in message, message
    assert "properties.signingKeySecretUri" in message, message
    run = mallory("acr", "import-pipeline", "create", *common, "-n", "ownerinbox", "-e", "False")
    message = run.only_error(1)
    assert "only an Owner may change properties.trustedKeys of an existing pipeline" in message, message
    kept = server.get(f"{REGISTRIES}/deputyreg/importPipelines/ownerinbox")["properties"]["trustedKeys"]
    assert kept == [public.read_text()]
    # The image-signature policy is the Owner's gate too: re-PUT without it, the pipeline keeps it.
    policy = {"requireSignedBy": [public.read_text()]}
    server.put(
        f"{REGISTRIES}/deputyreg/importPipelines/ownerpolicy",
        {"properties": {
            "source": {"uri": container, "keyVaultUri": sas}, "trigger": {"sourceTrigger": {"status": "Disabled"}},
            "signaturePolicy": policy,
        }},
    )  # fmt: skip
    run = mallory("acr", "import-pipeline", "create", *common, "-n", "ownerpolicy", "-e", "False")
    message = run.only_error(1)
    assert "only an Owner may change properties.signaturePolicy of an existing pipeline" in message, message
    kept = server.get(f"{REGISTRIES}/deputyreg/importPipelines/ownerpolicy")["properties"]["signaturePolicy"]
    assert kept["requireSignedBy"] == [public.read_text()], kept
