"""The embedded key vaults: ``Microsoft.KeyVault/vaults``, their ``secrets`` and ``accessPolicies``.

Reading a secret's value (and listing secrets) is the vault administrator's: Owner only.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from airlock.api import lro
from airlock.api import models as M
from airlock.api.deps import Owner, Plane, Reader, Skip, Top, body, page
from airlock.api.openapi import answers, request_body
from airlock.errors import ResourceNotFound
from airlock.pipelines import arm
from airlock.pipelines import resources as R
from airlock.pipelines.service import ControlPlane
from airlock.secrets.embedded import Vault

router = APIRouter(tags=["keyvaults"])
VAULT = arm.VAULTS_PATH + "/{vault}"
SECRETS = VAULT + "/secrets"


def _vault_in(p: ControlPlane, rg: str, vault: str) -> Vault:
    """The embedded vault, which must be in resource group ``rg`` (ARM scopes every call to one).
    Raises ResourceNotFound."""
    found = p.vaults.get_vault(vault)
    if found is None or found.resource_group.lower() != rg.lower():
        raise ResourceNotFound(f"key vault {vault} not found in resource group {rg}")
    return found


def _secret_doc(version: Any, value: str | None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": version.id,
        "name": version.name,
        "attributes": {"enabled": True, "created": version.created_at.isoformat()},
        "contentType": version.content_type,
    }
    if value is not None:
        doc["value"] = value
    return doc


@router.put(
    VAULT,
    status_code=200,
    responses=answers({200: M.Vault, 201: M.Vault}, 403, 413, 415),
    openapi_extra=request_body(R.VaultBody, required=False),
)
def put_vault(
    request: Request,
    _: Owner,
    p: Plane,
    sub: str,
    rg: str,
    vault: str,
    data: Annotated[Any, Depends(body(optional=True))],
) -> JSONResponse:
    """Create a vault (or keep it); ``properties.accessPolicies``, when given, replaces its policies."""
    doc, created = p.put_vault(sub, rg, vault, data)
    return lro.put_reply(request, doc, created)


@router.get(VAULT, responses=answers({200: M.Vault}, 403, 404))
def get_vault(_: Reader, p: Plane, sub: str, rg: str, vault: str) -> dict[str, Any]:
    return p.vault_doc(sub, _vault_in(p, rg, vault))


@router.delete(VAULT, status_code=202, responses=answers({202: None, 204: None}, 403, 404))
def delete_vault(request: Request, _: Owner, p: Plane, sub: str, rg: str, vault: str) -> Response:
    """Delete a vault and its secrets."""
    if p.vaults.get_vault(vault) is not None:
        _vault_in(p, rg, vault)
    return lro.delete_reply(request, R.resource_id(sub, rg, R.VAULT_TYPE, vault), p.vaults.delete_vault(vault))


@router.get(arm.VAULTS_PATH, responses=answers({200: M.VaultList}, 403))
def list_vaults(
    request: Request, _: Reader, p: Plane, sub: str, rg: str, skip: Skip = 0, top: Top = 100
) -> dict[str, Any]:
    return page(request, [p.vault_doc(sub, v) for v in p.vaults.list_vaults(rg)], skip, top)


@router.get(arm.ALL_VAULTS_PATH, responses=answers({200: M.VaultList}, 403))
def list_all_vaults(request: Request, _: Reader, p: Plane, sub: str, skip: Skip = 0, top: Top = 100) -> dict[str, Any]:
    return page(request, [p.vault_doc(sub, v) for v in p.vaults.list_vaults()], skip, top)


@router.put(
    VAULT + "/accessPolicies/{operation}",
    responses=answers({200: M.Vault}, 403, 404, 413, 415),
    openapi_extra=request_body(R.AccessPolicyBody),
)
def set_policy(
    _: Owner,
    p: Plane,
    sub: str,
    rg: str,
    vault: str,
    operation: str,
    data: Annotated[Any, Depends(body())],
) -> dict[str, Any]:
    """Grant each listed objectId its secret permissions (``add``/``replace``: as ``az keyvault set-policy``)."""
    _vault_in(p, rg, vault)
    return p.set_policies(sub, vault, operation, data)


@router.put(
    SECRETS + "/{name}",
    responses=answers({200: M.Secret}, 403, 404, 413, 415),
    openapi_extra=request_body(R.SecretBody),
)
def set_secret(
    _: Owner,
    p: Plane,
    sub: str,
    rg: str,
    vault: str,
    name: str,
    data: Annotated[Any, Depends(body())],
) -> dict[str, Any]:
    """Store a new version of a secret; the answer never holds the value."""
    _vault_in(p, rg, vault)
    return _secret_doc(p.set_secret(sub, vault, name, data), None)


@router.get(SECRETS + "/{name}", responses=answers({200: M.Secret}, 403, 404))
def get_secret(
    _: Owner,
    p: Plane,
    sub: str,
    rg: str,
    vault: str,
    name: str,
    version: Annotated[str | None, Query(description="A version id; the latest when left out.")] = None,
) -> dict[str, Any]:
    """A secret with its value (Owner only)."""
    _vault_in(p, rg, vault)
    meta, value = p.vaults.read(vault, name, version)
    return _secret_doc(meta, value)


@router.get(SECRETS, responses=answers({200: M.SecretList}, 403, 404))
def list_secrets(
    request: Request, _: Owner, p: Plane, sub: str, rg: str, vault: str, skip: Skip = 0, top: Top = 100
) -> dict[str, Any]:
    _vault_in(p, rg, vault)
    return page(request, [_secret_doc(v, None) for v in p.vaults.list_secrets(vault)], skip, top)


@router.delete(SECRETS + "/{name}", status_code=202, responses=answers({202: None, 204: None}, 403, 404))
def delete_secret(request: Request, _: Owner, p: Plane, sub: str, rg: str, vault: str, name: str) -> Response:
    _vault_in(p, rg, vault)
    rid = R.resource_id(sub, rg, R.VAULT_TYPE, vault) + f"/secrets/{name}"
    return lro.delete_reply(request, rid, p.vaults.delete_secret(vault, name))
