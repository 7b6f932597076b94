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
from airlock.pipelines import arm
from airlock.pipelines import models as D
from airlock.pipelines import resources as R

router = APIRouter(tags=["keyvaults"])
VAULT = arm.VAULTS_PATH + "/{vault}"
SECRETS = VAULT + "/secrets"


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
    responses=answers({200: D.KeyVault, 201: D.KeyVault}, 403, 413, 415),
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
    found, created = p.vaults.put(sub, rg, vault, data)
    return lro.put_reply(request, found.document(), created)


@router.get(VAULT, responses=answers({200: D.KeyVault}, 403, 404))
def get_vault(_: Reader, p: Plane, sub: str, rg: str, vault: str) -> dict[str, Any]:
    return p.vaults.get(sub, rg, vault).document()


@router.delete(VAULT, status_code=202, responses=answers({202: None, 204: None}, 403, 404))
def delete_vault(request: Request, _: Owner, p: Plane, sub: str, rg: str, vault: str) -> Response:
    """Delete a vault and its secrets."""
    return lro.delete_reply(request, R.resource_id(sub, rg, R.VAULT_TYPE, vault), p.vaults.delete(rg, vault))


@router.get(arm.VAULTS_PATH, responses=answers({200: M.VaultList}, 403))
def list_vaults(
    request: Request, _: Reader, p: Plane, sub: str, rg: str, skip: Skip = 0, top: Top = 100
) -> dict[str, Any]:
    return page(request, [v.document() for v in p.vaults.list(sub, rg)], skip, top)


@router.get(arm.ALL_VAULTS_PATH, responses=answers({200: M.VaultList}, 403))
def list_all_vaults(request: Request, _: Reader, p: Plane, sub: str, skip: Skip = 0, top: Top = 100) -> dict[str, Any]:
    return page(request, [v.document() for v in p.vaults.list(sub)], skip, top)


@router.put(
    VAULT + "/accessPolicies/{operation}",
    responses=answers({200: D.KeyVault}, 403, 404, 413, 415),
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
    return p.vaults.set_policies(sub, rg, vault, operation, data).document()


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
    return _secret_doc(p.vaults.set_secret(sub, rg, vault, name, data), None)


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
    meta, value = p.vaults.read_secret(rg, vault, name, version)
    return _secret_doc(meta, value)


@router.get(SECRETS, responses=answers({200: M.SecretList}, 403, 404))
def list_secrets(
    request: Request, _: Owner, p: Plane, sub: str, rg: str, vault: str, skip: Skip = 0, top: Top = 100
) -> dict[str, Any]:
    return page(request, [_secret_doc(v, None) for v in p.vaults.list_secrets(rg, vault)], skip, top)


@router.delete(SECRETS + "/{name}", status_code=202, responses=answers({202: None, 204: None}, 403, 404))
def delete_secret(request: Request, _: Owner, p: Plane, sub: str, rg: str, vault: str, name: str) -> Response:
    rid = R.resource_id(sub, rg, R.VAULT_TYPE, vault) + f"/secrets/{name}"
    return lro.delete_reply(request, rid, p.vaults.delete_secret(rg, vault, name))
