"""HashiCorpVaultStore with hvac against a real OpenBao dev server."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from airlock.errors import SecretError
from airlock.secrets.base import Principal, SecretAccessDenied, SecretNotFound
from airlock.secrets.hashicorp_vault import HashiCorpVaultStore, default_token_for
from airlock.testing.openbao import OpenBaoServer
from airlock.testing.processes import refusing_port

READER = Principal(
    principal_id="0b5a3c1e-7d2f-4e8a-9c61-3f0d2b7a1e11",
    resource_id="/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/pipe-id",
)
ADMIN = Principal(principal_id="admin")
STRANGER = Principal(principal_id="stranger")
OLD_VALUE = "sv=2024-11-04&sig=OLD-VALUE-never-in-messages"
NEW_VALUE = "sv=2024-11-04&sig=NEW-VALUE-never-in-messages"
OTHER_VALUE = "OTHER-VALUE-never-in-messages"
READER_POLICY = 'path "secret/data/pipelines/acr-sas" { capabilities = ["read"] }\n'


@pytest.fixture(scope="module")
def bao(workdir: Path) -> Iterator[OpenBaoServer]:
    with OpenBaoServer.start(workdir / "openbao") as server:
        server.put_secret("pipelines/acr-sas", value=OLD_VALUE)
        server.put_secret("pipelines/acr-sas", value=NEW_VALUE)
        server.put_secret("pipelines/other", value=OTHER_VALUE)
        server.put_secret("pipelines/login", username="puller", password=OTHER_VALUE)
        server.put_secret("pipelines/single", sas=OTHER_VALUE)
        server.write_policy("acr-sas-reader", READER_POLICY)
        yield server


@pytest.fixture(scope="module")
def tokens(bao: OpenBaoServer) -> dict[str, str]:
    return {
        READER.principal_id: bao.create_token(["acr-sas-reader"]),
        ADMIN.principal_id: bao.root_token,
        STRANGER.principal_id: "s.not-a-token-this-vault-issued",
    }


@pytest.fixture(scope="module")
def store(tokens: dict[str, str]) -> Iterator[HashiCorpVaultStore]:
    vault_store = HashiCorpVaultStore(token_for=lambda p: tokens.get(p.principal_id) if p else None)
    yield vault_store
    vault_store.close()


def _assert_no_value(message: str) -> None:
    for value in ("OLD-VALUE", "NEW-VALUE", "OTHER-VALUE"):
        assert value not in message


def test_handles_kv_v2_api_urls(store: HashiCorpVaultStore) -> None:
    assert store.handles("http://127.0.0.1:8200/v1/secret/data/pipelines/acr-sas")
    assert store.handles("https://vault.example.com/v1/kv/team-a/data/acr-sas?version=3#sas")
    assert not store.handles("https://vault.example.com/v1/secret/metadata/acr-sas")
    assert not store.handles("https://vault.example.com/v1/secret/data/")
    assert not store.handles("https://vault.example.com/v1/secret/data/x?version=latest")
    assert not store.handles("https://vault.example.com/v1/secret/data/x?list=true")
    assert not store.handles("https://myvault.vault.azure.net/secrets/acr-sas")
    assert not store.handles("ftp://vault.example.com/v1/secret/data/x")


def test_reads_latest_and_specific_version(store: HashiCorpVaultStore, bao: OpenBaoServer) -> None:
    assert store.get_secret(bao.secret_uri("pipelines/acr-sas"), principal=READER) == NEW_VALUE
    assert store.get_secret(bao.secret_uri("pipelines/acr-sas", version=1), principal=READER) == OLD_VALUE
    assert store.get_secret(bao.secret_uri("pipelines/acr-sas", version=2), principal=READER) == NEW_VALUE


def test_fields(store: HashiCorpVaultStore, bao: OpenBaoServer) -> None:
    assert store.get_secret(bao.secret_uri("pipelines/login", field="username"), principal=ADMIN) == "puller"
    # One key and no 'value': that key is the secret.
    assert store.get_secret(bao.secret_uri("pipelines/single"), principal=ADMIN) == OTHER_VALUE
    with pytest.raises(SecretNotFound) as no_value:
        store.get_secret(bao.secret_uri("pipelines/login"), principal=ADMIN)
    assert "no field 'value' (fields: password, username)" in str(no_value.value)
    with pytest.raises(SecretNotFound):
        store.get_secret(bao.secret_uri("pipelines/single", field="value"), principal=ADMIN)
    _assert_no_value(str(no_value.value))


def test_missing_secret_and_version_are_not_found(store: HashiCorpVaultStore, bao: OpenBaoServer) -> None:
    with pytest.raises(SecretNotFound) as missing:
        store.get_secret(bao.secret_uri("pipelines/nope"), principal=ADMIN)
    assert str(missing.value) == f"vault {bao.url}: secret 'secret/data/pipelines/nope' not found"
    with pytest.raises(SecretNotFound) as missing_version:
        store.get_secret(bao.secret_uri("pipelines/acr-sas", version=99), principal=ADMIN)
    assert "'secret/data/pipelines/acr-sas' version 99 not found" in str(missing_version.value)


def test_read_only_policy_on_one_path_denies_another(store: HashiCorpVaultStore, bao: OpenBaoServer) -> None:
    with pytest.raises(SecretAccessDenied) as denied:
        store.get_secret(bao.secret_uri("pipelines/other"), principal=READER)
    message = str(denied.value)
    assert f"vault {bao.url}" in message
    assert "'secret/data/pipelines/other'" in message
    assert READER.describe() in message
    assert "lacks the 'read' capability" in message
    assert 'path "secret/data/pipelines/other" { capabilities = ["read"] }' in message
    _assert_no_value(message)
    # Denied even where nothing exists: the policy is checked before the path.
    with pytest.raises(SecretAccessDenied):
        store.get_secret(bao.secret_uri("pipelines/nope"), principal=READER)


def test_unknown_token_is_not_reported_as_a_missing_policy(store: HashiCorpVaultStore, bao: OpenBaoServer) -> None:
    with pytest.raises(SecretError) as failed:
        store.get_secret(bao.secret_uri("pipelines/acr-sas"), principal=STRANGER)
    assert type(failed.value) is SecretError
    assert "does not accept the token of principal stranger" in str(failed.value)
    _assert_no_value(str(failed.value))


def test_no_token_names_the_vault(store: HashiCorpVaultStore, bao: OpenBaoServer) -> None:
    with pytest.raises(SecretError) as failed:
        store.get_secret(bao.secret_uri("pipelines/acr-sas"), principal=None)
    assert f"vault {bao.url}: no Vault token for this process" in str(failed.value)


def test_connection_refused_is_a_transient_secret_error(store: HashiCorpVaultStore) -> None:
    with refusing_port() as port, pytest.raises(SecretError) as failed:
        store.get_secret(f"http://127.0.0.1:{port}/v1/secret/data/pipelines/acr-sas", principal=READER)
    assert type(failed.value) is SecretError
    assert str(failed.value) == f"cannot reach vault http://127.0.0.1:{port}: connection refused"
    assert failed.value.transient


def test_default_token_sources(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("VAULT_TOKEN", raising=False)
    monkeypatch.delenv("BAO_TOKEN", raising=False)
    assert default_token_for(READER) is None
    (tmp_path / ".vault-token").write_text("from-file\n")
    assert default_token_for(READER) == "from-file"
    monkeypatch.setenv("BAO_TOKEN", "from-bao")
    assert default_token_for(None) == "from-bao"
    monkeypatch.setenv("VAULT_TOKEN", "from-vault")
    assert default_token_for(None) == "from-vault"


def test_two_servers_run_side_by_side(bao: OpenBaoServer, workdir: Path) -> None:
    # The dev cluster listener sits on port + 1, so a second server must not land there.
    with OpenBaoServer.start(workdir / "openbao-2", name="second") as second:
        assert second.port not in (bao.port, bao.port + 1) and bao.port != second.port + 1
        for server in (bao, second):
            with urllib.request.urlopen(f"{server.url}/v1/sys/health", timeout=5) as response:
                assert response.status == 200
        assert not (second.home / ".vault-token").exists()
    assert not second.running
