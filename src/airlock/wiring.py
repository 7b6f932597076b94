"""Assembling a control plane from an airlock home: the one place concrete adapters are chosen.

Imported by the edges only (``airlock.api`` and ``airlock.cli``). Layout of ``AIRLOCK_HOME``
(default ``~/.airlock``, mode 0700)::

    airlock.db      resources, runs, trigger records, API token hashes, embedded-vault
                    ciphertexts, the tenant id (SQLite; or AIRLOCK_DATABASE_URL)
    vault.key       the embedded vault's encryption key (0600), kept apart from the database
                    (or AIRLOCK_VAULT_KEY_FILE / AIRLOCK_VAULT_KEY: every process of a
                    deployment on PostgreSQL must be given the same key)
    api-token       the REST API's Owner token (0600), used by the CLI by itself; its hash is
                    in the database, so every replica accepts it
    tenant-id       written by releases that kept the tenant here; read once, to seed the
                    database's record of it
"""

from __future__ import annotations

import hashlib
import os
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from sqlalchemy import Engine

from airlock.db.settings import setting
from airlock.errors import AirlockError, UsageError
from airlock.home import home_dir
from airlock.observability import metrics
from airlock.pipelines.executor import RunExecutor, RunHandler
from airlock.pipelines.plane import ControlPlane
from airlock.pipelines.store import make_engine
from airlock.secrets.base import Principal, SecretStore
from airlock.secrets.embedded import EmbeddedVaults, load_or_create_key
from airlock.secrets.resolver import SecretResolver
from airlock.storage.hosts import StorageHosts

if TYPE_CHECKING:
    from airlock.pipelines.queue import QueueRunExecutor, QueueTiming

DEFAULT_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"


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
    workers: int = 2  # runs this process executes at once
    worker: bool = True  # whether this process executes runs (PostgreSQL: False serves the API only)


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


def database_url(home: Path | None = None) -> str:
    """``AIRLOCK_DATABASE_URL``, else the SQLite file ``AIRLOCK_HOME/airlock.db``."""
    return os.environ.get("AIRLOCK_DATABASE_URL") or f"sqlite:///{(home or home_dir()) / 'airlock.db'}"


def database_engine(home: Path | None = None) -> Engine:
    """The engine of the installation's database: ``AIRLOCK_DATABASE_URL``, else ``AIRLOCK_HOME/airlock.db``."""
    return make_engine(database_url(home))


def vault_key(engine: Engine, home: Path) -> bytes:
    """The embedded vaults' encryption key: ``AIRLOCK_VAULT_KEY`` (a Fernet key), else the file
    ``AIRLOCK_VAULT_KEY_FILE``, else ``AIRLOCK_HOME/vault.key`` (a file is created, mode 0600, on
    first use). On PostgreSQL the first process records the key's fingerprint in the database,
    and every other process of the deployment must hold the same key.

    Raises:
        UsageError: ``AIRLOCK_VAULT_KEY`` is not a Fernet key.
        AirlockError: the key is not the one the deployment's database was first opened with.
    """
    from cryptography.fernet import Fernet

    given = os.environ.get("AIRLOCK_VAULT_KEY", "").strip()
    if given:
        key = given.encode()
        try:
            Fernet(key)
        except ValueError:
            raise UsageError("AIRLOCK_VAULT_KEY is not a Fernet key (32 url-safe base64-encoded bytes)") from None
        source = "AIRLOCK_VAULT_KEY"
    else:
        path = Path(os.environ.get("AIRLOCK_VAULT_KEY_FILE") or home / "vault.key").expanduser()
        key = load_or_create_key(path)
        source = str(path)
    if engine.dialect.name != "postgresql":
        return key  # one home, one database: a replaced key shows as secrets that do not decrypt
    fingerprint = hashlib.sha256(b"airlock embedded vault key\0" + key).hexdigest()[:32]
    if setting(engine, "vault_key_fingerprint", lambda: fingerprint) != fingerprint:
        raise AirlockError(
            f"the embedded vault key from {source} is not this deployment's: every process that shares the "
            "database must be given the same key (AIRLOCK_VAULT_KEY_FILE or AIRLOCK_VAULT_KEY); the first "
            "process that opened the database recorded its key's fingerprint"
        )
    return key


def tenant_id(engine: Engine, home: Path) -> str:
    """The deployment's tenant: recorded in the database; a home written before that seeds it."""

    def first() -> str:
        try:
            return (home / "tenant-id").read_text().strip() or str(uuid.uuid4())
        except FileNotFoundError:
            return str(uuid.uuid4())

    return setting(engine, "tenant_id", first)


def open_control_plane(home: Path | None = None, adapters: Adapters | None = None) -> ControlPlane:
    """The control plane of ``home`` (default: ``AIRLOCK_HOME``); see :func:`_open`.

    Raises:
        AirlockError: as :func:`_open`, and (transient) when the database cannot be reached: one
            line naming it (without its password) and why.
    """
    home = home or home_dir()
    try:
        return _open(home, adapters or Adapters())
    except AirlockError:
        raise
    except Exception as exc:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import OperationalError

        cause: BaseException = exc.__cause__ or exc if type(exc).__name__ == "ConnectorException" else exc
        if not isinstance(cause, OperationalError) and type(cause).__name__ != "OperationalError":
            raise
        where = make_url(database_url(home)).render_as_string(hide_password=True)
        reason = (str(getattr(cause, "orig", None) or cause).strip().splitlines() or ["no reason given"])[0]
        raise AirlockError(f"cannot reach the database {where}: {reason}", transient=True) from None


def _open(home: Path, adapters: Adapters) -> ControlPlane:
    """The control plane of ``home`` (default: ``AIRLOCK_HOME``), with every secret backend.

    On PostgreSQL, runs go through the job queue (:class:`airlock.pipelines.queue.QueueRunExecutor`),
    executed in this process when ``adapters.worker``; on SQLite, on this process's threads.

    Raises:
        AirlockError: the database's schema is not current (PostgreSQL), or the vault key is not
            the deployment's.
    """
    url = database_url(home)
    engine = make_engine(url)
    vaults = EmbeddedVaults(engine, vault_key(engine, home))
    tenant = tenant_id(engine, home)
    stores: list[SecretStore] = [vaults, *adapters.extra_stores, _Lazy(_hashicorp_vault), _Lazy(_azure_key_vault)]
    executor: Callable[[RunHandler], RunExecutor] | None = None
    if engine.dialect.name == "postgresql":
        from airlock.pipelines.queue import QueueRunExecutor

        def executor(handler: RunHandler) -> RunExecutor:
            queue = QueueRunExecutor(
                engine.url.render_as_string(hide_password=False),
                handler,
                worker=adapters.worker,
                concurrency=adapters.workers,
                timing=queue_timing(),
            )
            metrics.set_queue_probe(lambda: metrics.QueueStats(*_stats(queue)))
            return queue

    elif not adapters.worker:
        raise UsageError(
            "without a worker nothing would execute runs: a server on SQLite runs its own; use "
            "AIRLOCK_DATABASE_URL=postgresql+psycopg://… to run the API and `airlock worker` apart"
        )
    return ControlPlane(
        engine=engine,
        vaults=vaults,
        secrets=SecretResolver(stores),
        storage_credential=adapters.storage_credential,
        tenant_id=tenant,
        workers=adapters.workers,
        executor=executor,
        storage_hosts=StorageHosts.from_env(),
    )


def queue_timing() -> QueueTiming:
    """The job queue's clocks: ``AIRLOCK_QUEUE_STALLED_AFTER`` seconds without a worker's heartbeat
    (default 30) make its runs stalled; a worker beats six times in that span. A killed worker's
    runs start again within ``QueueTiming.recovery_bound`` seconds. Raises UsageError."""
    from airlock.pipelines.queue import QueueTiming

    raw = os.environ.get("AIRLOCK_QUEUE_STALLED_AFTER") or "30"
    try:
        stalled = float(raw)
    except ValueError:
        raise UsageError(f"AIRLOCK_QUEUE_STALLED_AFTER {raw!r}: expected seconds, e.g. 30") from None
    if not 3 <= stalled <= 3600:
        raise UsageError("AIRLOCK_QUEUE_STALLED_AFTER must be between 3 and 3600 seconds")
    return QueueTiming(
        heartbeat=stalled / 6, stalled_after=stalled, recover_every=min(5.0, stalled / 6), poll=min(2.0, stalled / 6)
    )


def _stats(queue: QueueRunExecutor) -> tuple[int, float]:
    depth, oldest = queue.queue_stats()
    return depth, oldest or 0.0


def user_secret_resolver(home: Path | None = None) -> SecretResolver:
    """Secrets read by the CLI user for their own commands (``--secret-uri``): the embedded vaults of
    ``home`` and the user's own Vault token / Azure identity, for any host the user names."""
    from airlock.secrets.azure_key_vault import AzureKeyVaultStore
    from airlock.secrets.hashicorp_vault import HashiCorpVaultStore

    home = home or home_dir()
    engine = database_engine(home)
    vaults = EmbeddedVaults(engine, vault_key(engine, home))
    return SecretResolver([vaults, HashiCorpVaultStore(), AzureKeyVaultStore()])
