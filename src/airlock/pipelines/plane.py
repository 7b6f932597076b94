"""The control plane: the services of registries, identities, key vaults, export/import pipelines
and pipeline runs, assembled over one repository and one lock.

Everything the REST API and the trigger do goes through a service of :class:`ControlPlane`
(``plane.registries``, ``plane.identities``, ``plane.vaults``, ``plane.pipelines``,
``plane.runs``, ``plane.audit``); none of them reaches the store itself.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from sqlalchemy import Engine

from airlock.pipelines.access import PipelineAccess, RegistryClientFactory
from airlock.pipelines.execution import RunExecution, RunJournal
from airlock.pipelines.executor import RunExecutor, RunHandler, ThreadRunExecutor
from airlock.pipelines.services.audit import AuditService
from airlock.pipelines.services.identities import IdentityService
from airlock.pipelines.services.pipelines import PipelineService
from airlock.pipelines.services.registries import RegistryService
from airlock.pipelines.services.runs import RunService
from airlock.pipelines.services.vaults import VaultService
from airlock.pipelines.store import SqlResourceRepository, TriggerLedger
from airlock.secrets.base import Principal
from airlock.secrets.embedded import EmbeddedVaults
from airlock.secrets.resolver import SecretResolver
from airlock.storage.hosts import StorageHosts


class ControlPlane:
    """ACR transfer resources and their execution. Thread-safe.

    Args:
        engine: the database (migrated to this release's schema when the repository opens it).
        vaults: the embedded key vaults.
        secrets: reads secret URIs (embedded vault first, then Azure Key Vault, Vault/OpenBao).
        storage_credential: the Azure ``TokenCredential`` a principal uses for storage in the
            ManagedIdentity access mode (None: the environment's identity).
        tenant_id: the tenant of identities created here.
        workers: runs executed at once (by the default executor).
        executor: builds where runs execute from the handler it calls (default: a thread pool of
            this process, ``workers`` wide).
        registry_client: builds the client for a registry URL and credentials (tests inject retry policies).
        storage_hosts: the storage endpoints a pipeline's credential may be sent to (default: Azure
            Blob Storage over https only; :func:`airlock.wiring.open_control_plane` adds
            ``AIRLOCK_STORAGE_HOSTS``).

    Raises:
        AirlockError: the database was written by a newer airlock.
    """

    def __init__(
        self,
        *,
        engine: Engine,
        vaults: EmbeddedVaults,
        secrets: SecretResolver,
        storage_credential: Callable[[Principal], object | None],
        tenant_id: str,
        workers: int = 2,
        registry_client: RegistryClientFactory | None = None,
        executor: Callable[[RunHandler], RunExecutor] | None = None,
        storage_hosts: StorageHosts | None = None,
    ) -> None:
        self.engine = engine
        self.tenant_id = tenant_id
        repo = SqlResourceRepository(engine)
        lock = threading.RLock()
        self.audit = AuditService.on(engine)
        self.access = PipelineAccess(
            secrets=secrets,
            storage_hosts=storage_hosts or StorageHosts(),
            storage_credential=storage_credential,
            registry_client=registry_client,
            audit=self.audit,
        )
        journal = RunJournal(repo, lock, audit=self.audit)
        self.runs = RunService(
            repo,
            journal,
            RunExecution(repo, journal, self.access, tenant_id),
            executor or (lambda handler: ThreadRunExecutor(handler, workers)),
            lock,
        )
        self.registries = RegistryService(repo, self.runs, lock)
        self.identities = IdentityService(repo, tenant_id)
        self.vaults = VaultService(vaults, tenant_id)
        self.pipelines = PipelineService(
            repo,
            identities=self.identities,
            runs=self.runs,
            secrets=secrets,
            vaults=vaults,
            storage_hosts=self.access.storage_hosts,
            tenant_id=tenant_id,
            lock=lock,
        )
        self.trigger_ledger = TriggerLedger(engine)

    def close(self, *, wait: bool = True) -> None:
        """Stop executing runs (with ``wait``, after those that run have ended)."""
        self.runs.close(wait=wait)
