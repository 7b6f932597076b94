"""Assembling a control plane from an airlock home: the one place concrete adapters are chosen.

Imported by the edges only (``airlock.api`` and ``airlock.cli``). Layout of ``AIRLOCK_HOME``
(default ``~/.airlock``, mode 0700)::

    airlock.db      resources, runs, trigger records, embedded-vault ciphertexts (SQLite; or
                    AIRLOCK_DATABASE_URL)
    vault.key       the embedded vault's encryption key (0600) — kept apart from the database
    tenant-id       this installation's tenant id (identities are created in it)
    api-token       the REST API's bearer token (0600), used by the CLI by itself
"""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy import Engine

from airlock.pipelines.plane import ControlPlane
from airlock.pipelines.store import make_engine
from airlock.secrets.base import Principal, SecretStore
from airlock.secrets.embedded import EmbeddedVaults, load_or_create_key
from airlock.secrets.resolver import SecretResolver
from airlock.storage.hosts import StorageHosts

DEFAULT_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"


def home_dir() -> Path:
    path = Path(os.environ.get("AIRLOCK_HOME") or Path.home() / ".airlock").expanduser()
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def _read_or_create(path: Path, make: Callable[[], str], mode: int = 0o600) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        value = make()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        except FileExistsError:
            return path.read_text().strip()  # another process made it first
        with os.fdopen(fd, "w") as f:
            f.write(value + "\n")
        return value


def api_token(home: Path) -> str:
    """The API's bearer token, created on first use (mode 0600)."""
    return _read_or_create(home / "api-token", lambda: secrets.token_urlsafe(32))


def _default_storage_credential(principal: Principal) -> object | None:
    from airlock.storage.azure_blob import identity_credential

    return identity_credential(principal.client_id or None)


@dataclass
class Adapters:
    """Overridable adapter choices (tests inject credentials for emulators)."""

    storage_credential: Callable[[Principal], object | None] = _default_storage_credential
    extra_stores: list[SecretStore] = field(default_factory=list)
    workers: int = 2


class _Lazy:
    """A secret store built on first use, so commands that read no secret never load its SDK."""

    def __init__(self, factory: Callable[[], SecretStore]) -> None:
        self._factory = factory
        self._store: SecretStore | None = None

    def _get(self) -> SecretStore:
        if self._store is None:
            self._store = self._factory()
        return self._store

    def handles(self, uri: str) -> bool:
        return self._get().handles(uri)

    def get_secret(self, uri: str, *, principal: Principal | None) -> str:
        return self._get().get_secret(uri, principal=principal)


class _Hosts:
    """Serves only URIs whose host is allowed: the server's own vault credentials (a Vault token, the
    machine's Azure identity) must never be sent to a host that an API caller names in a pipeline."""

    def __init__(self, store: SecretStore, allowed: Callable[[str], bool]) -> None:
        self._store = store
        self._allowed = allowed

    def handles(self, uri: str) -> bool:
        host = (urlsplit(uri).hostname or "").lower()
        return self._allowed(host) and self._store.handles(uri)

    def get_secret(self, uri: str, *, principal: Principal | None) -> str:
        return self._store.get_secret(uri, principal=principal)


# Azure Key Vault's DNS suffixes in the public and sovereign clouds.
KEY_VAULT_SUFFIXES = (".vault.azure.net", ".vault.azure.cn", ".vault.usgovcloudapi.net", ".vault.microsoftazure.de")


def _listed(env: str) -> set[str]:
    return {h.strip().lower() for h in os.environ.get(env, "").split(",") if h.strip()}


def _azure_key_vault() -> SecretStore:
    from airlock.secrets.azure_key_vault import AzureKeyVaultStore

    extra = _listed("AIRLOCK_KEYVAULT_HOSTS")
    return _Hosts(AzureKeyVaultStore(), lambda host: host.endswith(KEY_VAULT_SUFFIXES) or host in extra)


def _hashicorp_vault() -> SecretStore:
    from airlock.secrets.hashicorp_vault import HashiCorpVaultStore

    # Vault/OpenBao servers this installation trusts with its token: AIRLOCK_VAULT_HOSTS, or the
    # host of VAULT_ADDR / BAO_ADDR.
    allowed = _listed("AIRLOCK_VAULT_HOSTS")
    for env in ("VAULT_ADDR", "BAO_ADDR"):
        if os.environ.get(env):
            allowed.add((urlsplit(os.environ[env]).hostname or "").lower())
    return _Hosts(HashiCorpVaultStore(), lambda host: host in allowed)


def database_engine(home: Path | None = None) -> Engine:
    """The engine of the installation's database: ``AIRLOCK_DATABASE_URL``, else ``AIRLOCK_HOME/airlock.db``."""
    home = home or home_dir()
    return make_engine(os.environ.get("AIRLOCK_DATABASE_URL") or f"sqlite:///{home / 'airlock.db'}")


def open_control_plane(home: Path | None = None, adapters: Adapters | None = None) -> ControlPlane:
    """The control plane of ``home`` (default: ``AIRLOCK_HOME``), with every secret backend."""
    home = home or home_dir()
    adapters = adapters or Adapters()
    engine = database_engine(home)
    vaults = EmbeddedVaults(engine, load_or_create_key(home / "vault.key"))
    tenant = _read_or_create(home / "tenant-id", lambda: str(uuid.uuid4()), 0o644)
    stores: list[SecretStore] = [vaults, *adapters.extra_stores, _Lazy(_hashicorp_vault), _Lazy(_azure_key_vault)]
    return ControlPlane(
        engine=engine,
        vaults=vaults,
        secrets=SecretResolver(stores),
        storage_credential=adapters.storage_credential,
        tenant_id=tenant,
        workers=adapters.workers,
        storage_hosts=StorageHosts.from_env(),
    )


def user_secret_resolver(home: Path | None = None) -> SecretResolver:
    """Secrets read by the CLI user for their own commands (``--secret-uri``): the embedded vaults of
    ``home`` and the user's own Vault token / Azure identity, for any host the user names."""
    from airlock.secrets.azure_key_vault import AzureKeyVaultStore
    from airlock.secrets.hashicorp_vault import HashiCorpVaultStore

    home = home or home_dir()
    vaults = EmbeddedVaults(database_engine(home), load_or_create_key(home / "vault.key"))
    return SecretResolver([vaults, HashiCorpVaultStore(), AzureKeyVaultStore()])
