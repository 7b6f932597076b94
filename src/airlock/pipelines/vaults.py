"""The embedded key vaults as ARM resources: vault documents, and the bodies that create vaults, set
access policies and store secrets, each validated by its model in :mod:`airlock.pipelines.resources`
before anything is stored."""

from __future__ import annotations

from typing import Any

from airlock.errors import UsageError
from airlock.pipelines import resources as R
from airlock.secrets.embedded import EmbeddedVaults, SecretVersion, Vault, check_permissions


def vault_doc(sub: str, vault: Vault) -> dict[str, Any]:
    return {
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


def _policy_dicts(policies: list[R.AccessPolicy]) -> list[dict[str, Any]]:
    return [{"objectId": p.object_id, "permissions": {"secrets": list(p.permissions.secrets)}} for p in policies]


def put_vault(
    vaults: EmbeddedVaults, sub: str, rg: str, name: str, body: Any, tenant_id: str
) -> tuple[dict[str, Any], bool]:
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
    existed = vaults.get_vault(name) is not None
    vault = vaults.create_vault(name, resource_group=rg, location=model.location or "local", tenant_id=tenant_id)
    if policies is not None:
        vault = vaults.replace_policies(name, _policy_dicts(policies), tenant_id=tenant_id)
    return vault_doc(sub, vault), not existed


def set_policies(vaults: EmbeddedVaults, sub: str, vault: str, operation: str, body: Any, tenant_id: str) -> Vault:
    """``accessPolicies/add`` (or ``replace``): set the secret permissions of each listed object.

    Raises:
        UsageError: an unknown operation or an invalid body (checked whole before any policy changes).
        SecretNotFound: no such vault.
    """
    R.check_subscription(sub)
    if operation not in ("add", "replace"):
        raise UsageError(f"access policy operation {operation[:20]!r}: use add or replace")
    model: R.AccessPolicyBody = R.parse(R.AccessPolicyBody, body, f"key vault {vault} access policies")
    for policy in model.properties.access_policies:
        check_permissions(list(policy.permissions.secrets))
    found = None
    for policy in model.properties.access_policies:
        found = vaults.set_policy(
            vault, object_id=policy.object_id, secret_permissions=list(policy.permissions.secrets), tenant_id=tenant_id
        )
    assert found is not None  # the model needs at least one policy
    return found


def set_secret(vaults: EmbeddedVaults, sub: str, vault: str, name: str, body: Any) -> SecretVersion:
    """Store a new version of secret ``name`` from an ARM secret body (``properties.value``).

    Raises:
        UsageError: an invalid name or body. SecretNotFound: no such vault.
    """
    R.check_subscription(sub)
    model: R.SecretBody = R.parse(R.SecretBody, body, f"key vault {vault}: secret {name}")
    return vaults.set_secret(vault, name, model.properties.value, content_type=model.properties.content_type)
