"""What a pipeline reaches as its identity: its principal, its container and its registry.

A pipeline's credentials (a SAS token from its vault, the environment's Azure identity, a
registry password) are read here, as the pipeline's identity, and only ever sent to storage the
operator trusts (:class:`airlock.storage.hosts.StorageHosts`, checked before any secret is read).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from airlock.errors import AirlockError
from airlock.oci.reference import ArtifactReference, RegistryURL
from airlock.pipelines.models import ExportPipeline, ImportPipeline, PipelineStorage, Registry
from airlock.registry.client import RegistryClient
from airlock.registry.credentials import Credentials
from airlock.secrets.base import Principal
from airlock.secrets.resolver import SecretResolver
from airlock.secrets.store import normalize_sas
from airlock.storage.base import Blob, Container
from airlock.storage.hosts import StorageHosts
from airlock.storage.location import blob_in, open_blob, open_container, parse_container_uri

if TYPE_CHECKING:
    from airlock.pipelines.services.audit import AuditService

RegistryClientFactory = Callable[[RegistryURL, Credentials | None], RegistryClient]


def principal_of(pipeline: ExportPipeline | ImportPipeline, tenant_id: str) -> Principal:
    """The identity a pipeline reads its secrets and storage as: its user-assigned identity, if it
    has one, else its system-assigned one."""
    uais = pipeline.identity.userAssignedIdentities or {}
    if uais:
        rid, ids = next(iter(uais.items()))
        return Principal(ids.principalId, tenant_id, ids.clientId, rid)
    return Principal(pipeline.identity.principalId or "", tenant_id)


def run_artifact(text: str, registry: Registry) -> ArtifactReference:
    """A run's artifact, which may carry its registry's host (the registry's loginServer) as a prefix.

    Raises ReferenceError_ (invalid, or naming another registry)."""
    login_server = RegistryURL.parse(registry.properties.loginServer)
    return ArtifactReference.parse_for(text, login_server, named_by=f"registry {registry.name}'s loginServer")


class PipelineAccess:
    """Opens a pipeline's container, blobs and registry with the credentials its identity may read.

    Args:
        secrets: reads secret URIs as a principal.
        storage_hosts: where a credential may be sent.
        storage_credential: the Azure ``TokenCredential`` a principal uses in ManagedIdentity mode.
        registry_client: builds a registry client (tests inject retry policies).
        audit: records every secret read (its URI and the identity; never its value).
    """

    def __init__(
        self,
        *,
        secrets: SecretResolver,
        storage_hosts: StorageHosts,
        storage_credential: Callable[[Principal], object | None],
        registry_client: RegistryClientFactory | None = None,
        audit: AuditService | None = None,
    ) -> None:
        self.secrets = secrets
        self._audit = audit
        self._polled: dict[tuple[str, str], str] = {}  # (secret URI, principal id) -> last polling outcome
        self._polled_lock = threading.Lock()
        self.storage_hosts = storage_hosts
        self._storage_credential = storage_credential
        self._registry_client = registry_client or (lambda url, creds: RegistryClient(url, credentials=creds))

    def storage_access(
        self, storage: PipelineStorage, principal: Principal, *, polling: bool = False
    ) -> tuple[str | None, object | None]:
        """(SAS token, credential) for a pipeline's container, read as the pipeline's identity
        (``polling``: the source trigger's read on each poll, see :meth:`_secret`).

        Raises:
            UsageError: the container's host is not in :attr:`storage_hosts` (nothing is read or sent).
            SecretError: from the vault.
        """
        if parse_container_uri(storage.uri).kind == "file":
            return None, None
        # Checked before any secret is read: the pipeline may predate the allowlist, or the server's
        # AIRLOCK_STORAGE_HOSTS may have changed since it was created.
        self.storage_hosts.check(storage.uri, "pipeline storage")
        if storage.storageAccessMode == "ManagedIdentity":
            return None, self._storage_credential(principal)
        sas = self._secret(storage.keyVaultUri or "", principal, "storage SAS token", polling=polling)
        return normalize_sas(sas), None

    def blob(self, storage: PipelineStorage, name: str, principal: Principal) -> Blob:
        """Blob ``name`` of the container. Raises as :meth:`storage_access`."""
        sas, credential = self.storage_access(storage, principal)
        # By name, not by a URI joined as text: "a%2F..%2F..%2Fother%2Fx" would decode into another container.
        return open_blob(blob_in(parse_container_uri(storage.uri), name), sas_token=sas, credential=credential)

    def container(self, storage: PipelineStorage, principal: Principal) -> Container:
        """The container, for the source trigger's polls. Raises as :meth:`storage_access`."""
        sas, credential = self.storage_access(storage, principal, polling=True)
        return open_container(parse_container_uri(storage.uri), sas_token=sas, credential=credential)

    def registry(self, registry: Registry, principal: Principal) -> RegistryClient:
        """A client of ``registry``, with its password read as ``principal``. Raises SecretError."""
        creds = None
        stored = registry.properties.credentials
        if stored is not None and stored.username:
            password = self._secret(stored.passwordSecretUri or "", principal, "registry password")
            creds = Credentials(username=stored.username, password=password)
        return self._registry_client(RegistryURL.parse(registry.properties.loginServer), creds)

    def _secret(self, uri: str, principal: Principal, what: str, *, polling: bool = False) -> str:
        """The secret at ``uri`` read as ``principal``, the read recorded in the audit trail (the
        URI, the identity and the outcome; never the value). A ``polling`` read (the trigger's, every
        few seconds) is recorded when its outcome differs from this process's last one for that
        secret and identity, so the trail says when polling started, failed and recovered, without
        an entry per poll. Raises SecretError."""
        result = "Succeeded"
        try:
            return self.secrets.get(uri, principal=principal, what=what)
        except AirlockError as exc:
            result = f"Failed: {exc}"
            raise
        finally:
            key = (uri, principal.principal_id)
            with self._polled_lock:
                repeated = polling and self._polled.get(key) == result
                if polling:
                    self._polled[key] = result
            if self._audit is not None and not repeated:
                self._audit.record(
                    "secret.read", principal=f"identity:{principal.principal_id}", resources=[uri], result=result
                )
