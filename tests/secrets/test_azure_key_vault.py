"""AzureKeyVaultStore with the real azure-keyvault-secrets SDK against the fake Key Vault data plane."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import DefaultAzureCredential, ManagedIdentityCredential
from azure.keyvault.secrets import SecretClient

from airlock.errors import SecretError
from airlock.secrets.azure_key_vault import AzureKeyVaultStore, default_credential_for
from airlock.secrets.base import Principal, SecretAccessDenied, SecretNotFound
from airlock.testing.keyvault import FakeCredential, FakeKeyVault
from airlock.testing.processes import refusing_port

READER = Principal(
    principal_id="0b5a3c1e-7d2f-4e8a-9c61-3f0d2b7a1e11",
    tenant_id="72f988bf-86f1-41af-91ab-2d7cd011db47",
    client_id="5d0c4e8b-1a2f-4b3c-8d7e-6f5a4b3c2d1e",
    resource_id="/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/pipe-id",
)
OUTSIDER = Principal(principal_id="9e8d7c6b-5a49-4382-a1b0-c9d8e7f6a5b4")
OLD_VALUE = "sv=2024-11-04&sig=OLD-VALUE-never-in-messages"
NEW_VALUE = "sv=2024-11-04&sig=NEW-VALUE-never-in-messages"
VALUES = (OLD_VALUE, NEW_VALUE)
# No retries: a refused connection fails at once instead of after the SDK's ~5 s of back-off.
NO_RETRY: dict[str, object] = {"retry_total": 0}


@pytest.fixture(scope="module")
def vault(workdir: Path) -> Iterator[FakeKeyVault]:
    with FakeKeyVault.start(workdir / "keyvault") as server:
        yield server


@pytest.fixture(scope="module")
def versions(vault: FakeKeyVault) -> tuple[str, str]:
    old = vault.set_secret("acr-sas", OLD_VALUE)
    new = vault.set_secret("acr-sas", NEW_VALUE)
    vault.grant(READER.principal_id, "get")
    return old, new


@pytest.fixture(scope="module")
def credentials() -> dict[str, FakeCredential]:
    return {}


@pytest.fixture(scope="module")
def store(vault: FakeKeyVault, credentials: dict[str, FakeCredential]) -> Iterator[AzureKeyVaultStore]:
    def credential_for(principal: Principal | None) -> FakeCredential:
        assert principal is not None
        return credentials.setdefault(principal.principal_id, FakeCredential(principal.principal_id))

    kv_store = AzureKeyVaultStore(credential_for=credential_for, connection_verify=str(vault.ca_cert))
    yield kv_store
    kv_store.close()


def _assert_no_value(message: str) -> None:
    for value in VALUES:
        assert value not in message
        assert "NEW-VALUE" not in message and "OLD-VALUE" not in message


def test_handles_key_vault_secret_uris(store: AzureKeyVaultStore) -> None:
    assert store.handles("https://myvault.vault.azure.net/secrets/acr-sas")
    assert store.handles("https://myvault.vault.azure.net/secrets/acr-sas/0123456789abcdef0123456789abcdef")
    assert store.handles("https://127.0.0.1:8443/secrets/acr-sas/")
    assert not store.handles("http://myvault.vault.azure.net/secrets/acr-sas")  # Key Vault is https only
    assert not store.handles("https://myvault.vault.azure.net/keys/acr-sas")
    assert not store.handles("https://myvault.vault.azure.net/secrets/acr_sas")
    assert not store.handles("https://myvault.vault.azure.net/secrets/a/b/c")
    assert not store.handles("https://myvault.vault.azure.net/secrets/acr-sas?api-version=7.5")
    assert not store.handles("http://127.0.0.1:8200/v1/secret/data/acr-sas")
    assert not store.handles("file:///run/secrets/acr-sas")


def test_reads_latest_and_specific_version(
    store: AzureKeyVaultStore,
    vault: FakeKeyVault,
    versions: tuple[str, str],
    credentials: dict[str, FakeCredential],
) -> None:
    old, new = versions
    assert store.get_secret(vault.secret_uri("acr-sas"), principal=READER) == NEW_VALUE
    assert store.get_secret(vault.secret_uri("acr-sas", old), principal=READER) == OLD_VALUE
    assert store.get_secret(vault.secret_uri("acr-sas", new), principal=READER) == NEW_VALUE
    # The SDK elicited the challenge once, then every read carried the reader's own token.
    reads = [r for r in vault.requests if r[1].startswith("/secrets/acr-sas")]
    assert reads[0] == ("GET", "/secrets/acr-sas/", None)
    assert all(principal == READER.principal_id for _, _, principal in reads[1:])
    # ... and asked the credential for the resource and tenant the challenge named.
    scopes, tenant = credentials[READER.principal_id].calls[0]
    assert scopes == ("https://vault.azure.net/.default",)
    assert tenant == vault.tenant_id


def test_missing_secret_and_version_are_not_found(store: AzureKeyVaultStore, vault: FakeKeyVault) -> None:
    with pytest.raises(SecretNotFound) as missing:
        store.get_secret(vault.secret_uri("no-such-secret"), principal=READER)
    assert "no-such-secret" in str(missing.value)
    assert f"127.0.0.1:{vault.port}" in str(missing.value)
    version = "0" * 32
    with pytest.raises(SecretNotFound) as missing_version:
        store.get_secret(vault.secret_uri("acr-sas", version), principal=READER)
    assert "acr-sas" in str(missing_version.value) and version in str(missing_version.value)


def test_principal_without_get_is_denied_with_the_fix(
    store: AzureKeyVaultStore, vault: FakeKeyVault, versions: tuple[str, str]
) -> None:
    with pytest.raises(SecretAccessDenied) as denied:
        store.get_secret(vault.secret_uri("acr-sas"), principal=OUTSIDER)
    message = str(denied.value)
    assert f"key vault 127.0.0.1:{vault.port}" in message
    assert "'acr-sas'" in message
    assert OUTSIDER.describe() in message
    assert "'get' permission" in message
    assert f"--object-id {OUTSIDER.principal_id} --secret-permissions get" in message
    _assert_no_value(message)
    # Permission is checked before existence, as in the real service: no probing for names.
    with pytest.raises(SecretAccessDenied):
        store.get_secret(vault.secret_uri("no-such-secret"), principal=OUTSIDER)


def test_grant_and_revoke_take_effect_on_a_cached_client(
    store: AzureKeyVaultStore, vault: FakeKeyVault, versions: tuple[str, str]
) -> None:
    late = Principal(principal_id="1f2e3d4c-5b6a-4978-8a9b-0c1d2e3f4a5b", resource_id="/x/userAssignedIdentities/late")
    uri = vault.secret_uri("acr-sas")
    with pytest.raises(SecretAccessDenied) as denied:
        store.get_secret(uri, principal=late)
    assert "identity late (principal 1f2e3d4c" in str(denied.value)
    vault.grant(late.principal_id, "get")
    assert store.get_secret(uri, principal=late) == NEW_VALUE
    vault.revoke(late.principal_id)
    with pytest.raises(SecretAccessDenied):
        store.get_secret(uri, principal=late)


def test_connection_refused_is_a_transient_secret_error(vault: FakeKeyVault) -> None:
    kv_store = AzureKeyVaultStore(
        credential_for=lambda p: FakeCredential("x"), connection_verify=str(vault.ca_cert), client_options=NO_RETRY
    )
    with refusing_port() as port, pytest.raises(SecretError) as failed:
        kv_store.get_secret(f"https://127.0.0.1:{port}/secrets/acr-sas", principal=READER)
    assert type(failed.value) is SecretError
    assert str(failed.value) == f"cannot reach key vault 127.0.0.1:{port}: connection refused"
    assert failed.value.transient
    kv_store.close()


def test_untrusted_certificate_is_reported(vault: FakeKeyVault) -> None:
    kv_store = AzureKeyVaultStore(
        credential_for=lambda p: FakeCredential("x"), connection_verify=True, client_options=NO_RETRY
    )
    with pytest.raises(SecretError) as failed:
        kv_store.get_secret(vault.secret_uri("acr-sas"), principal=READER)
    assert "TLS certificate not trusted" in str(failed.value)
    kv_store.close()


class _NoIdentity:
    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        raise ClientAuthenticationError("ManagedIdentityCredential: no managed identity endpoint found")


class _ForeignToken:
    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("not-a-token-this-vault-accepts", 2**31)


@pytest.mark.parametrize("credential", [_NoIdentity(), _ForeignToken()], ids=["no-credential", "rejected-token"])
def test_identity_that_cannot_authenticate(
    vault: FakeKeyVault, versions: tuple[str, str], credential: _NoIdentity | _ForeignToken
) -> None:
    kv_store = AzureKeyVaultStore(credential_for=lambda p: credential, connection_verify=str(vault.ca_cert))
    with pytest.raises(SecretError) as failed:
        kv_store.get_secret(vault.secret_uri("acr-sas"), principal=READER)
    message = str(failed.value)
    assert type(failed.value) is SecretError
    assert f"{READER.describe()} could not authenticate to the vault" in message
    assert f"127.0.0.1:{vault.port}" in message and "'acr-sas'" in message
    _assert_no_value(message)
    kv_store.close()


def test_fake_vault_speaks_set_and_list_through_the_sdk(vault: FakeKeyVault) -> None:
    writer = "3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f"
    client = SecretClient(
        vault.url, FakeCredential(writer), verify_challenge_resource=False, connection_verify=str(vault.ca_cert)
    )
    with client:
        vault.grant(writer, "set")
        created = client.set_secret("written", "w-value")
        assert created.properties.version and created.value == "w-value"
        with pytest.raises(Exception, match="does not have secrets list permission"):
            list(client.list_properties_of_secrets())
        vault.grant(writer, "list", "get")
        assert "written" in {p.name for p in client.list_properties_of_secrets()}
        assert client.get_secret("written").properties.version == created.properties.version


def test_default_credentials() -> None:
    managed = default_credential_for(READER)
    assert isinstance(managed, ManagedIdentityCredential)
    chain = default_credential_for(Principal(principal_id="system-assigned-only"))
    assert isinstance(chain, DefaultAzureCredential)
    assert isinstance(default_credential_for(None), DefaultAzureCredential)
    for credential in (managed, chain):
        credential.close()


def test_non_uri_is_a_secret_error_without_query(store: AzureKeyVaultStore) -> None:
    with pytest.raises(SecretError) as failed:
        store.get_secret("https://myvault.vault.azure.net/keys/k?sig=SECRETSIG", principal=READER)
    assert "SECRETSIG" not in str(failed.value)
