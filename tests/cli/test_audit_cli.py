"""Provenance and the tamper-evident audit trail (issue 13), through the real console script.

Two homes for the module: a served one (`airlock serve` with an export pipeline whose SAS token
lives in an embedded vault, one export run, API tokens for a Reader and a contributor), and a
local one, where the plain `export`/`import`/`copy` record to the home's database. The tamper
tests edit, delete and insert rows of a copy of the local home's database with sqlite3 directly.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import httpx
import pytest

from airlock import __version__
from airlock.db.migrate import upgrade
from airlock.oci.digest import Digest
from airlock.oci.reference import RegistryURL
from airlock.pipelines.audit_chain import AuditEntry
from airlock.pipelines.store import make_engine
from airlock.registry.client import RegistryClient
from airlock.testing import azurite as az
from airlock.testing import content
from airlock.testing.airlock_server import AirlockServer
from airlock.testing.azurite import AzuriteServer
from airlock.testing.console import Console
from airlock.testing.content import PushedArtifact
from airlock.testing.images import push_oci_image
from airlock.testing.referrers import push_referrer, referrers_tag
from airlock.testing.registry_server import RegistryServer

SUB = "00000000-0000-0000-0000-000000000000"
RG = "auditrg"
REG = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.ContainerRegistry/registries/auditreg"
KV = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.KeyVault/vaults/auditkv"
API = "?api-version=2025-06-01-preview"
VAULT = "https://auditkv.vault.azure.net/secrets/"
PROVENANCE = "application/vnd.airlock.provenance.v1+json"


@dataclass
class Served:
    server: AirlockServer
    owner: Console
    secrets: set[str]  # the SAS token's signature (as stored and URL-encoded), the API tokens
    tokens: dict[str, str]  # role -> token
    principal: str  # the export pipeline's identity
    run: dict[str, Any]


@dataclass
class Local:
    cli: Console
    exported: dict[str, Any]
    imported: dict[str, Any]
    bundle: Path


@pytest.fixture(scope="module")
def image(source_registry: RegistryServer) -> PushedArtifact:
    return push_oci_image(source_registry.url, "audit/app", "1.0", seed=131, layers=1, layer_size=4096)


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, azurite: AzuriteServer, source_registry: RegistryServer,
    image: PushedArtifact,
) -> Iterator[Served]:  # fmt: skip
    """The resources are made over HTTP (what is tested is their audit entries, not their commands)."""
    root = tmp_path_factory.mktemp("audited")
    with ExitStack() as stack:
        az.create_container(azurite, "srcacct", "audited")
        sas = az.container_sas(azurite, "srcacct", "audited", permissions="racwdl")
        sig = unquote(dict(p.split("=", 1) for p in sas.split("&"))["sig"])
        server = AirlockServer(root / "home", env={"AIRLOCK_STORAGE_HOSTS": azurite.storage_host}).start()
        stack.callback(server.stop)
        token = (root / "home" / "api-token").read_text().strip()
        (root / "cli").mkdir()
        owner = Console(
            home=root / "cli", env={"AIRLOCK_ENDPOINT": server.url, "AIRLOCK_TOKEN": token, "AIRLOCK_SUBSCRIPTION": SUB}
        )
        server.put(KV, {})
        server.put(KV + "/secrets/sas", {"properties": {"value": "?" + sas}})
        server.put(REG, {"properties": {"loginServer": source_registry.url}})
        pipe = server.put(
            REG + "/exportPipelines/auditpipe",
            {
                "properties": {
                    "target": {"uri": az.container_url(azurite, "srcacct", "audited"), "keyVaultUri": VAULT + "sas"}
                }
            },
        )
        principal = pipe["identity"]["principalId"]
        grant = {"properties": {"accessPolicies": [{"objectId": principal, "permissions": {"secrets": ["get"]}}]}}
        server.put(KV + "/accessPolicies/add", grant)
        request = {"pipelineResourceId": pipe["id"], "target": {"type": "AzureStorageBlob", "name": "audited.tar"}}
        server.http.put(
            REG + "/pipelineRuns/auditrun" + API,
            json={"properties": {"request": {**request, "artifacts": [image.reference]}}},
        )
        run = server.wait_run(REG + "/pipelineRuns/auditrun")
        assert run["properties"]["provisioningState"] == "Succeeded", run
        tokens = {}
        for name, role in (("auditreader", "Reader"), ("auditcontrib", "TransferPipelineContributor")):
            made = server.http.post("/airlock/tokens", json={"name": name, "role": role})
            assert made.status_code == 201, made.text
            tokens[role] = made.json()["token"]
        secrets = {sig, quote(sig, safe=""), token, *tokens.values()}
        yield Served(server, owner, secrets, tokens, principal, run)


@pytest.fixture(scope="module")
def local(
    tmp_path_factory: pytest.TempPathFactory, source_registry: RegistryServer, target_registry: RegistryServer,
    image: PushedArtifact,
) -> Local:  # fmt: skip
    root = tmp_path_factory.mktemp("local-audit")
    cli = Console(home=root)
    # The home's database exists (any control-plane command would create it; made here without a process).
    (root / ".airlock").mkdir(mode=0o700)
    engine = make_engine(f"sqlite:///{root / '.airlock' / 'airlock.db'}")
    upgrade(engine)
    engine.dispose()
    bundle = root / "b.tar"
    exported = cli.ok(
        "export", "--source-registry", source_registry.url, "--repository", "audit/app", "--tags", r"1\.0",
        "--target", bundle,
    ).json()  # fmt: skip
    imported = cli.ok(
        "import", "--source", bundle, "--target-registry", target_registry.url, "--annotate-provenance",
        "--options", "OverwriteTags",
    ).json()  # fmt: skip
    cli.ok("copy", bundle, root / "copy.tar", "-o", "none")
    return Local(cli, exported, imported, bundle)


def _entries(console: Console, *args: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in console.ok("audit", "export", *args).stdout.splitlines()]


# ----------------------------------------------------------------------------------------- provenance


def test_catalog_records_original_reference_and_export_record(
    local: Local, source_registry: RegistryServer, image: PushedArtifact
) -> None:
    host = source_registry.url.split("://", 1)[1]
    origin = {
        "reference": f"{host}/audit/app:1.0@{image.digest}",
        "registry": source_registry.url,
        "repository": "audit/app",
        "tag": "1.0",
        "digest": image.digest,
    }
    shown = local.cli.ok("inspect", local.bundle).json()
    assert shown["artifacts"][0]["origin"] == origin
    record = shown["exportRecord"]
    assert record["principal"].startswith("user:") and record["sourceRegistry"] == source_registry.url
    assert record["airlockVersion"] == __version__ and record["time"].startswith(shown["createdAt"][:19])
    assert record["selection"]["repositories"] == [{"name": "audit/app", "tags": r"1\.0"}]
    assert local.exported["artifactDetails"][0]["origin"] == origin
    # The import's result and its audit entry carry the original reference and the catalogDigest.
    assert local.imported["provenance"]["artifacts"][0]["origin"] == origin
    assert local.imported["provenance"]["exportRecord"] == record
    (entry,) = _entries(local.cli, "--action", "import")
    assert entry["catalogDigest"] == local.exported["catalogDigest"]
    assert entry["artifacts"] == [{"reference": "audit/app:1.0", "digest": image.digest, "origin": origin["reference"]}]


def test_annotate_provenance_adds_referrer_without_changing_manifest(
    local: Local, target_registry: RegistryServer, image: PushedArtifact
) -> None:
    (made,) = local.imported["provenanceReferrers"]
    assert made["subject"] == "audit/app:1.0"
    client = RegistryClient(RegistryURL.parse(target_registry.url))
    try:
        tagged = client.head_manifest("audit/app", "1.0")
        assert tagged is not None and str(tagged.digest) == image.digest  # the manifest is the source's
        listed = client.list_referrers("audit/app", Digest.parse(image.digest))
        (ref,) = [d for d in listed if d.artifact_type == PROVENANCE]
        assert str(ref.digest) == made["digest"]
        manifest = json.loads(client.get_manifest("audit/app", made["digest"]).raw)
        assert manifest["subject"]["digest"] == image.digest
        assert manifest["annotations"]["dev.airlock.provenance.original-reference"].endswith(f"@{image.digest}")
        layer = manifest["layers"][0]
        payload = b"".join(client.iter_blob("audit/app", _descriptor(layer)))
    finally:
        client.close()
    doc = json.loads(payload)
    assert doc["catalogDigest"] == local.exported["catalogDigest"] and doc["importedAs"] == "audit/app:1.0"
    # Imported again: the same referrer (nothing new to push), the tag still the source's digest.
    again = local.cli.ok(
        "import", "--source", local.bundle, "--target-registry", target_registry.url, "--annotate-provenance",
        "--options", "OverwriteTags",
    ).json()  # fmt: skip
    assert again["provenanceReferrers"] == [made]


# Regression: on a registry without the referrers API the provenance referrer changes the subject's
# sha256-<hex> index, so the bundle's own index (its signature's) then conflicted on the next import
# of the same bundle (exit 1), and an OverwriteTags import put the bundle's back, dropping provenance.
def test_a_bundle_with_referrers_imports_again_with_provenance_and_its_index_is_merged(
    local: Local, source_registry: RegistryServer, target_registry: RegistryServer, tmp_path: Path
) -> None:
    signed = push_oci_image(source_registry.url, "audit/signed", "1.0", seed=133, layers=1, layer_size=2048)
    signature = push_referrer(source_registry.url, "audit/signed", signed, seed=134)
    bundle = tmp_path / "signed.tar"
    local.cli.ok("export", "--source-registry", source_registry.url, "-a", signed.reference, "--include-referrers",
                 "--target", bundle, "-o", "none")  # fmt: skip
    fallback = referrers_tag(signed.digest)
    imports = [
        local.cli.ok("import", "--source", bundle, "--target-registry", target_registry.url, *extra).json()
        for extra in (["--annotate-provenance"], ["--annotate-provenance"], ["--options", "OverwriteTags"])
    ]
    for done in imports:
        assert done["failedArtifacts"] == {} and f"audit/signed:{fallback}" in done["importedArtifacts"]
    (made,) = imports[0]["provenanceReferrers"]
    assert imports[1]["provenanceReferrers"] == [made]  # the same referrer: nothing new to push
    index = json.loads(content.get_manifest(target_registry.url, "audit/signed", fallback)[0])
    assert {m["digest"] for m in index["manifests"]} == {signature.digest, made["digest"]}
    assert content.get_manifest(target_registry.url, "audit/signed", "1.0")[2] == signed.digest


def _descriptor(layer: dict[str, Any]) -> Any:
    from airlock.oci.manifest import Descriptor

    return Descriptor.from_json(layer, where="provenance layer")


# ------------------------------------------------------------------------------------------ the trail


def test_audit_records_runs_secret_reads_and_api_changes_with_their_principals(
    served: Served, image: PushedArtifact
) -> None:
    entries = _entries(served.owner)
    actions = [e["action"] for e in entries]
    expected = {"vaults.write", "secrets.write", "registries.write", "exportPipelines.write", "accessPolicies.write"}
    expected |= {"pipelineRuns.write", "secret.read", "export.run", "tokens.create"}
    assert expected <= set(actions), actions
    identity = f"identity:{served.principal}"
    (run,) = [e for e in entries if e["action"] == "export.run"]
    assert run["principal"] == identity and run["result"] == "Succeeded"
    assert run["catalogDigest"] == served.run["properties"]["response"]["catalogDigest"]
    assert [(a["reference"], a["digest"]) for a in run["artifacts"]] == [("audit/app:1.0", image.digest)]
    reads = [e for e in entries if e["action"] == "secret.read"]
    assert reads and all(e["principal"] == identity and e["resources"] == [VAULT + "sas"] for e in reads)
    assert {e["principal"] for e in entries if e["action"] == "tokens.create"} == {"token:owner"}
    wide = Console(home=served.owner.home, env={**served.owner.env, "COLUMNS": "400"})
    listed = wide.ok("audit", "list", "--action", "export.run", "-o", "table").stdout
    assert "export.run" in listed and identity in listed


def test_audit_never_records_secret_values(served: Served) -> None:
    exported = served.owner.ok("audit", "export").stdout
    assert VAULT + "sas" in exported  # the read is there, by URI
    for secret in served.secrets:
        assert secret not in exported


def test_audit_route_admits_owner_reader_and_contributor_never_writes_and_records_denials(served: Served) -> None:
    url = served.server.url + "/airlock/audit"
    for role, token in served.tokens.items():
        got = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert got.status_code == 200 and got.json()["value"], (role, got.text)
    assert httpx.get(url, timeout=30).status_code == 401
    owner = {"Authorization": f"Bearer {served.owner.env['AIRLOCK_TOKEN']}"}
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        assert httpx.request(method, url, headers=owner, timeout=30).status_code == 405, method
    reader = {"Authorization": f"Bearer {served.tokens['Reader']}"}
    denied = httpx.put(served.server.url + REG.replace("auditreg", "readerreg") + API, headers=reader, timeout=30,
                       json={"properties": {"loginServer": "https://r.example"}})  # fmt: skip
    assert denied.status_code == 403, denied.text
    found = httpx.get(url, params={"action": "registries.write"}, headers=owner, timeout=30).json()["value"]
    assert found[-1]["principal"] == "token:auditreader" and found[-1]["result"] == "Denied (403)"
    verified = httpx.get(url + "/verify", headers=reader, timeout=30).json()
    assert verified["verified"] is True and verified["entries"] >= len(found)


def _tampered_copy(local: Local, tmp_path: Path) -> tuple[Console, sqlite3.Connection]:
    """A copy of the local home (its database copied consistently) and a connection to that copy."""
    source = local.cli.home / ".airlock"
    target = tmp_path / ".airlock"
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("airlock.db*"))
    with sqlite3.connect(source / "airlock.db") as src, sqlite3.connect(target / "airlock.db") as dst:
        src.backup(dst)
    conn = sqlite3.connect(target / "airlock.db", isolation_level=None)
    assert conn.execute("SELECT count(*) FROM audit_entries").fetchone()[0] >= 3
    return Console(home=tmp_path), conn


def test_audit_verify_names_edited_entry(local: Local, tmp_path: Path) -> None:
    cli, conn = _tampered_copy(local, tmp_path)
    conn.execute("UPDATE audit_entries SET result = 'Succeeded' , principal = 'user:someone-else' WHERE seq = 2")
    conn.close()
    said = cli("audit", "verify").only_error(1, stdout_empty=False)
    assert said == "audit trail broken: audit entry 2 was edited (its content does not hash to its hash)"


def test_audit_verify_names_deleted_entry(local: Local, tmp_path: Path) -> None:
    cli, conn = _tampered_copy(local, tmp_path)
    conn.execute("DELETE FROM audit_entries WHERE seq = 2")
    conn.close()
    run = cli("audit", "verify")
    assert run.only_error(1, stdout_empty=False) == "audit trail broken: audit entry 2 was deleted (entry 3 follows 1)"
    assert json.loads(run.stdout)["firstBroken"]["seq"] == 2


def test_audit_verify_names_inserted_entry(local: Local, tmp_path: Path) -> None:
    cli, conn = _tampered_copy(local, tmp_path)
    first = conn.execute("SELECT time, hash FROM audit_entries WHERE seq = 1").fetchone()
    forged = AuditEntry(2, first[0], "user:intruder", "export", result="Succeeded", prev_hash=first[1]).sealed()
    # Make room at seq 2 (in two steps: seq is the key), then a well-formed entry chained to entry 1.
    conn.execute("UPDATE audit_entries SET seq = seq + 100000 WHERE seq >= 2")
    conn.execute("UPDATE audit_entries SET seq = seq - 99999 WHERE seq >= 100000")
    conn.execute(
        "INSERT INTO audit_entries (seq, time, principal, action, resources, artifacts, catalog_digest, result,"
        " prev_hash, hash) VALUES (2, ?, ?, ?, '[]', '[]', NULL, ?, ?, ?)",
        (forged.time, forged.principal, forged.action, forged.result, forged.prev_hash, forged.hash),
    )
    conn.close()
    said = cli("audit", "verify").only_error(1, stdout_empty=False)
    assert said == "audit trail broken: audit entry 2 was inserted (entry 3 chains to entry 1, before it)"


def test_audit_export_file_verifies_offline(local: Local, tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_text(local.cli.ok("audit", "export").stdout)
    head = json.loads(path.read_text().splitlines()[-1])["hash"]
    reviewer = Console(home=tmp_path / "reviewer")  # another machine: no database, no server
    (tmp_path / "reviewer").mkdir()
    checked = reviewer.ok("audit", "verify", "--file", path, "--expect-head", head).json()
    assert (
        checked["verified"] is True
        and checked["head"] == head
        and checked["entries"] == len(path.read_text().splitlines())
    )
    assert not (tmp_path / "reviewer" / ".airlock" / "airlock.db").exists()
    lines = path.read_text().splitlines()
    edited = json.loads(lines[1])
    edited["principal"] = "user:someone-else"
    (tmp_path / "edited.jsonl").write_text("\n".join([lines[0], json.dumps(edited), *lines[2:]]) + "\n")
    said = reviewer("audit", "verify", "--file", tmp_path / "edited.jsonl").only_error(1, stdout_empty=False)
    assert said.endswith("audit entry 2 was edited (its content does not hash to its hash)")
    # An export by time is a piece of the chain: it verifies, and starts where the one before it ended.
    first, second = json.loads(lines[0]), json.loads(lines[1])
    since = local.cli.ok("audit", "export", "--since", second["time"]).stdout
    (tmp_path / "since.jsonl").write_text(since)
    piece = reviewer.ok("audit", "verify", "--file", tmp_path / "since.jsonl").json()
    assert piece["verified"] is True and piece["start"] == {"seq": 2, "prevHash": first["hash"]}
    # A cut tail still chains (tests/pipelines/test_audit_chain.py); only the head recorded elsewhere shows it.
    (tmp_path / "cut.jsonl").write_text("\n".join(lines[:-1]) + "\n")
    cut = reviewer("audit", "verify", "--file", tmp_path / "cut.jsonl", "--expect-head", head)
    assert "its tail was removed or rewritten" in cut.only_error(1, stdout_empty=False)
    # Regression: a malformed head was taken for one the trail lacks ("its tail was removed").
    bogus = reviewer("audit", "verify", "--file", tmp_path / "cut.jsonl", "--expect-head", "sha256:bogus")
    assert bogus.only_error(2) == "--expect-head 'sha256:bogus': not a head hash (sha256: and 64 hex digits)"
    # A line no airlock wrote (a float where a digest was) and a file that is not text are named as broken.
    floated = {**edited, "catalogDigest": 1.5}
    (tmp_path / "float.jsonl").write_text("\n".join([lines[0], json.dumps(floated)]) + "\n")
    said = reviewer("audit", "verify", "--file", tmp_path / "float.jsonl").only_error(1, stdout_empty=False)
    assert "float.jsonl, line 2: not an audit entry" in said, said
    (tmp_path / "binary.jsonl").write_bytes(b"\xff\xfe\x00garbage\n")
    said = reviewer("audit", "verify", "--file", tmp_path / "binary.jsonl").only_error(1, stdout_empty=False)
    assert "not UTF-8 text" in said, said


def test_plain_transfer_commands_record_to_the_home_database_only_when_it_exists(
    local: Local, tmp_path: Path, source_registry: RegistryServer, image: PushedArtifact
) -> None:
    entries = _entries(local.cli)
    assert [e["action"] for e in entries[:3]] == ["export", "import", "copy"]
    assert all(e["principal"].startswith("user:") and e["result"] == "Succeeded" for e in entries[:3])
    assert entries[0]["resources"] == [local.bundle.as_uri()] and entries[2]["resources"][0] == local.bundle.as_uri()
    assert entries[0]["catalogDigest"] == entries[2]["catalogDigest"] == local.exported["catalogDigest"]
    # A machine that only moves bundles: no database is made for the trail.
    cli = Console(home=tmp_path)
    cli.ok("export", "--source-registry", source_registry.url, "-a", image.reference, "--target", tmp_path / "x.tar")
    assert not (tmp_path / ".airlock" / "airlock.db").exists()


def test_plain_export_that_cannot_record_prints_its_result_then_fails_naming_the_database(
    tmp_path: Path, source_registry: RegistryServer, image: PushedArtifact
) -> None:
    newer = tmp_path / "newer.db"  # a database a newer airlock wrote: this one must not write to it
    with sqlite3.connect(newer) as conn:
        conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)")
        conn.execute("INSERT INTO alembic_version VALUES ('9999')")
    cli = Console(home=tmp_path, env={"AIRLOCK_DATABASE_URL": f"sqlite:///{newer}"})
    run = cli("export", "--source-registry", source_registry.url, "-a", image.reference, "--target", tmp_path / "y.tar")
    said = run.only_error(1, stdout_empty=False)
    assert said.startswith(f"export done, but its audit entry could not be written to sqlite:///{newer}: "), said
    assert json.loads(run.stdout)["catalogDigest"].startswith("sha256:") and (tmp_path / "y.tar").exists()
