"""Registries: ``Microsoft.ContainerRegistry/registries``."""

from __future__ import annotations

import threading
from typing import Any

from airlock.errors import ResourceConflict, ResourceNotFound, UsageError
from airlock.oci.reference import RegistryURL
from airlock.pipelines import resources as R
from airlock.pipelines.models import ExportPipeline, Registry, Sku
from airlock.pipelines.repository import ResourceRepository
from airlock.pipelines.services.runs import RunService


class RegistryService:
    """Create, read, update and delete registries. Thread-safe."""

    def __init__(self, repo: ResourceRepository, runs: RunService, lock: threading.RLock) -> None:
        self._repo = repo
        self._runs = runs
        self._lock = lock

    def put(self, sub: str, rg: str, name: str, body: Any) -> tuple[Registry, bool]:
        """Create or replace a registry; returns (registry, created).

        Raises:
            UsageError: an invalid id part or body (nothing is stored then).
            ResourceConflict: exportPolicy disabled while export pipelines exist.
        """
        R.check_subscription(sub)
        R.check_resource_group(rg)
        R.check_name(name, "registry")
        model = R.parse(R.RegistryBody, body, f"registry {name}")
        props = model.properties.model_dump(by_alias=True, exclude_none=True)
        RegistryURL.parse(model.properties.login_server)  # fail now, not at the first run
        policy = (model.properties.export_policy or {}).get("status", "enabled").lower()
        if policy not in ("enabled", "disabled"):
            raise UsageError(f"registry {name}: exportPolicy.status must be enabled or disabled")
        rid = R.resource_id(sub, rg, R.REGISTRY_TYPE, name)
        existing = self._repo.get(rid, Registry)
        if policy == "disabled" and self._repo.find(ExportPipeline, parent=rid):
            raise ResourceConflict(
                f"registry {name}: exportPolicy cannot be disabled while export pipelines exist; delete them first"
            )
        props["exportPolicy"] = {"status": policy}
        props["provisioningState"] = "Succeeded"
        doc: dict[str, Any] = {
            "id": rid,
            "name": name,
            "type": R.REGISTRY_TYPE,
            "location": model.location or "local",
            "sku": R.registry_sku(getattr(model, "sku", None), name),
            "properties": props,
        }
        if model.tags is not None:
            doc["tags"] = model.tags
        registry = Registry.model_validate(doc)
        self._repo.put(registry)
        return registry, existing is None

    def patch(self, sub: str, rg: str, name: str, update: dict[str, Any]) -> Registry:
        """ARM's PATCH: given ``tags`` and ``sku`` replace the stored ones, given ``properties`` are
        merged into the stored ones. Raises as :meth:`put`, and ResourceNotFound."""
        current = self.get(sub, rg, name).document()
        merged: dict[str, Any] = {
            "location": current.get("location"),
            "sku": update.get("sku") or current["sku"],
            "properties": {k: v for k, v in current["properties"].items() if k != "provisioningState"}
            | (update.get("properties") or {}),
        }
        tags = update.get("tags", current.get("tags"))
        if tags is not None:
            merged["tags"] = tags
        return self.put(sub, rg, name, merged)[0]

    def get(self, sub: str, rg: str, name: str) -> Registry:
        """Raises ResourceNotFound."""
        return self.by_id(R.resource_id(sub, rg, R.REGISTRY_TYPE, name))

    def by_id(self, rid: str) -> Registry:
        """Raises ResourceNotFound."""
        found = self._repo.get(rid, Registry)
        if found is None:
            raise ResourceNotFound(f"registry {rid.rsplit('/', 1)[-1]} not found ({rid})")
        return _with_sku(found)

    def all(self) -> list[Registry]:
        """Every registry of every subscription (the dashboard's overview)."""
        return [_with_sku(r) for r in self._repo.find(Registry)]

    def list(self, sub: str, rg: str | None = None) -> list[Registry]:
        """Registries of a resource group, or of the whole subscription when ``rg`` is None."""
        scope = f"/subscriptions/{sub}/" + (f"resourceGroups/{rg}/" if rg else "")
        return [_with_sku(r) for r in self._repo.find(Registry, prefix=scope)]

    def delete(self, sub: str, rg: str, name: str) -> bool:
        """Delete a registry with its pipelines and runs.

        Raises:
            ResourceConflict: one of its runs is running.
        """
        rid = R.resource_id(sub, rg, R.REGISTRY_TYPE, name)
        with self._lock:  # no run starts under this registry between the check and the deletes
            children = list(self._repo.children(rid))
            for child in children:
                if self._runs.running(child):
                    raise ResourceConflict(
                        f"registry {name} has a running pipeline run; delete it when the run has finished"
                    )
            for child in children:
                self._repo.delete(child)
            return self._repo.delete(rid)


def _with_sku(registry: Registry) -> Registry:
    # Registries stored before sku was recorded are Premium, transfer's tier.
    if registry.sku is None:
        registry.sku = Sku.model_validate(R.registry_sku(None, registry.name))
    return registry
