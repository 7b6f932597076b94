"""User-assigned identities: ``Microsoft.ManagedIdentity/userAssignedIdentities``."""

from __future__ import annotations

import builtins
import uuid
from typing import Any

from airlock.errors import ResourceConflict, ResourceNotFound
from airlock.pipelines import resources as R
from airlock.pipelines.models import ExportPipeline, ImportPipeline, UserAssignedIdentity
from airlock.pipelines.repository import ResourceRepository


class IdentityService:
    """Create, read and delete user-assigned identities. Thread-safe."""

    def __init__(self, repo: ResourceRepository, tenant_id: str) -> None:
        self._repo = repo
        self._tenant_id = tenant_id

    def put(self, sub: str, rg: str, name: str, body: Any) -> tuple[UserAssignedIdentity, bool]:
        """Create an identity (an existing one is returned as it is); returns (identity, created).

        An existing Azure managed identity can be registered by its ids (``properties.clientId``
        and ``principalId``), so the ManagedIdentity storage mode authenticates as that identity.

        Raises:
            UsageError: an invalid id part or body (nothing is stored then).
        """
        R.check_subscription(sub)
        R.check_resource_group(rg)
        R.check_generic_name(name, "identity")
        model: R.IdentityBody = R.parse(R.IdentityBody, body, f"identity {name}")
        given = model.properties or R.IdentityProperties()
        client_id = R.check_guid(given.client_id, f"identity {name}: properties.clientId")
        principal_id = R.check_guid(given.principal_id, f"identity {name}: properties.principalId")
        tenant_id = R.check_guid(given.tenant_id, f"identity {name}: properties.tenantId")
        rid = R.resource_id(sub, rg, R.IDENTITY_TYPE, name)
        existing = self._repo.get(rid, UserAssignedIdentity)
        if existing is not None:
            return existing, False
        identity = UserAssignedIdentity.model_validate(
            {
                "id": rid,
                "name": name,
                "type": R.IDENTITY_TYPE,
                "location": model.location or "local",
                "properties": {
                    "principalId": principal_id or str(uuid.uuid4()),
                    "clientId": client_id or str(uuid.uuid4()),
                    "tenantId": tenant_id or self._tenant_id,
                },
            }
        )
        self._repo.put(identity)
        return identity, True

    def get(self, sub: str, rg: str, name: str) -> UserAssignedIdentity:
        """Raises ResourceNotFound."""
        rid = R.resource_id(sub, rg, R.IDENTITY_TYPE, name)
        found = self._repo.get(rid, UserAssignedIdentity)
        if found is None:
            raise ResourceNotFound(f"identity {name} not found ({rid})")
        return found

    def by_id(self, rid: str) -> UserAssignedIdentity | None:
        """The identity under ``rid``, if that id names one."""
        return self._repo.get(rid, UserAssignedIdentity)

    def list(self, sub: str, rg: str) -> list[UserAssignedIdentity]:
        return self._repo.find(UserAssignedIdentity, prefix=f"/subscriptions/{sub}/resourceGroups/{rg}/")

    def delete(self, sub: str, rg: str, name: str) -> bool:
        """Delete an identity.

        Raises:
            ResourceConflict: a pipeline uses it (named): it would be left with no identity.
        """
        iid = R.resource_id(sub, rg, R.IDENTITY_TYPE, name).lower()
        scope = f"/subscriptions/{sub}/"
        pipelines: builtins.list[ExportPipeline | ImportPipeline] = [
            *self._repo.find(ExportPipeline, prefix=scope),
            *self._repo.find(ImportPipeline, prefix=scope),
        ]
        for pipeline in pipelines:
            assigned = pipeline.identity.userAssignedIdentities or {}
            if iid in (key.lower() for key in assigned):
                raise ResourceConflict(
                    f"identity {name} is assigned to pipeline {pipeline.name} ({pipeline.id}); "
                    "delete the pipeline or give it another identity first"
                )
        return self._repo.delete(iid)
