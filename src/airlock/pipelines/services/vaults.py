"""The embedded key vaults as ARM resources: ``Microsoft.KeyVault/vaults``, their access policies
and secrets. Every body is validated by its model in :mod:`airlock.pipelines.resources` before
anything is stored. The vaults themselves live in :class:`airlock.secrets.embedded.EmbeddedVaults`."""

from __future__ import annotations

import builtins
from typing import Any

from airlock.errors import ResourceNotFound, UsageError
from airlock.pipelines import resources as R
from airlock.pipelines.models import KeyVault
from airlock.secrets.embedded import EmbeddedVaults, SecretVersion, Vault, check_permissions


class VaultService:
    """Vaults, access policies and secrets. Thread-safe. Every call but :meth:`put` is scoped to the
    vault's resource group, as ARM scopes it: a vault of another group is not found."""

    def __init__(self, vaults: EmbeddedVaults, tenant_id: str) -> None:
        self._vaults = vaults
        self._tenant_id = tenant_id

    def put(self, sub: str, rg: str, name: str, body: Any) -> tuple[KeyVault, bool]:
        """Create a vault (or keep it); ``properties.accessPolicies``, when given, replaces the policies.

        Raises:
            UsageError: an invalid id part or body (nothing is stored then), a name taken in another group.
        """
        R.check_subscription(sub)
        R.check_resource_group(rg)
        model: R.VaultBody = R.parse(R.VaultBody, body, f"key vault {name}")
        policies = model.properties.access_policies if model.properties else None
        for policy in policies or []:  # all checked before the vault is created: a 400 stores nothing
            check_permissions(list(policy.permissions.secrets))
        existed = self._vaults.get_vault(name) is not None
        vault = self._vaults.create_vault(
            name, resource_group=rg, location=model.location or "local", tenant_id=self._tenant_id
        )
        if policies is not None:
            vault = self._vaults.replace_policies(name, _policy_dicts(policies), tenant_id=self._tenant_id)
        return _resource(sub, vault), not existed

    def get(self, sub: str, rg: str, name: str) -> KeyVault:
        """Raises ResourceNotFound."""
        return _resource(sub, self._vault_in(rg, name))

    def list(self, sub: str, rg: str | None = None) -> list[KeyVault]:
        """The vaults of a resource group, or of the subscription when ``rg`` is None."""
        return [_resource(sub, v) for v in self._vaults.list_vaults(rg)]

    def delete(self, rg: str, name: str) -> bool:
        """Delete a vault and its secrets; False when there was none. Raises ResourceNotFound: it is
        in another resource group."""
        if self._vaults.get_vault(name) is not None:
            self._vault_in(rg, name)
        return self._vaults.delete_vault(name)

    def set_policies(self, sub: str, rg: str, vault: str, operation: str, body: Any) -> KeyVault:
        """``accessPolicies/add`` (or ``replace``): set the secret permissions of each listed object.

        Raises:
            UsageError: an unknown operation or an invalid body (checked whole before any policy changes).
            ResourceNotFound: no such vault in ``rg``.
        """
        R.check_subscription(sub)
        self._vault_in(rg, vault)
        if operation not in ("add", "replace"):
            raise UsageError(f"access policy operation {operation[:20]!r}: use add or replace")
        model: R.AccessPolicyBody = R.parse(R.AccessPolicyBody, body, f"key vault {vault} access policies")
        for policy in model.properties.access_policies:
            check_permissions(list(policy.permissions.secrets))
        found = None
        for policy in model.properties.access_policies:
            found = self._vaults.set_policy(
                vault,
                object_id=policy.object_id,
                secret_permissions=list(policy.permissions.secrets),
                tenant_id=self._tenant_id,
            )
        assert found is not None  # the model needs at least one policy
        return _resource(sub, found)

    def set_secret(self, sub: str, rg: str, vault: str, name: str, body: Any) -> SecretVersion:
        """Store a new version of secret ``name`` from an ARM secret body (``properties.value``).

        Raises:
            UsageError: an invalid name or body. ResourceNotFound: no such vault in ``rg``.
        """
        R.check_subscription(sub)
        self._vault_in(rg, vault)
        model: R.SecretBody = R.parse(R.SecretBody, body, f"key vault {vault}: secret {name}")
        return self._vaults.set_secret(vault, name, model.properties.value, content_type=model.properties.content_type)

    def read_secret(self, rg: str, vault: str, name: str, version: str | None) -> tuple[SecretVersion, str]:
        """A secret's version and value (the administrator's read: no access policy applies).
        Raises ResourceNotFound, SecretNotFound."""
        self._vault_in(rg, vault)
        return self._vaults.read(vault, name, version)

    def list_secrets(self, rg: str, vault: str) -> builtins.list[SecretVersion]:
        """The latest version of each secret. Raises ResourceNotFound."""
        self._vault_in(rg, vault)
        return self._vaults.list_secrets(vault)

    def delete_secret(self, rg: str, vault: str, name: str) -> bool:
        """Raises ResourceNotFound."""
        self._vault_in(rg, vault)
        return self._vaults.delete_secret(vault, name)

    def _vault_in(self, rg: str, vault: str) -> Vault:
        found = self._vaults.get_vault(vault)
        if found is None or found.resource_group.lower() != rg.lower():
            raise ResourceNotFound(f"key vault {vault} not found in resource group {rg}")
        return found


def _resource(sub: str, vault: Vault) -> KeyVault:
    return KeyVault.model_validate(
        {
            "id": R.resource_id(sub, vault.resource_group, R.VAULT_TYPE, vault.name),
            "name": vault.name,
            "type": R.VAULT_TYPE,
            "location": vault.location,
            "properties": {
                "vaultUri": vault.uri,
                "tenantId": vault.tenant_id,
                "accessPolicies": vault.access_policies,
                "sku": {"family": "A", "name": "standard"},
                "provisioningState": "Succeeded",
            },
        }
    )


def _policy_dicts(policies: builtins.list[R.AccessPolicy]) -> builtins.list[dict[str, Any]]:
    return [{"objectId": p.object_id, "permissions": {"secrets": list(p.permissions.secrets)}} for p in policies]
