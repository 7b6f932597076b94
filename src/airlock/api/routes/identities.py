"""User-assigned identities: ``Microsoft.ManagedIdentity/userAssignedIdentities``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from airlock.api import lro
from airlock.api import models as M
from airlock.api.deps import Owner, Plane, Reader, Skip, Top, body, page
from airlock.api.openapi import answers, request_body
from airlock.pipelines import arm
from airlock.pipelines import models as D
from airlock.pipelines import resources as R

router = APIRouter(tags=["identities"])
IDENTITY = arm.IDENTITIES_PATH + "/{name}"


@router.put(
    IDENTITY,
    status_code=200,
    responses=answers({200: D.UserAssignedIdentity, 201: D.UserAssignedIdentity}, 403, 413, 415),
    openapi_extra=request_body(R.IdentityBody, required=False),
)
def put_identity(
    request: Request,
    _: Owner,
    p: Plane,
    sub: str,
    rg: str,
    name: str,
    data: Annotated[Any, Depends(body(optional=True))],
) -> JSONResponse:
    """Create an identity (an existing one is kept as it is); ``properties.clientId``/``principalId``
    register a real Azure managed identity by its ids."""
    found, created = p.identities.put(sub, rg, name, data)
    return lro.put_reply(request, found.document(), created)


@router.get(IDENTITY, responses=answers({200: D.UserAssignedIdentity}, 403, 404))
def get_identity(_: Reader, p: Plane, sub: str, rg: str, name: str) -> dict[str, Any]:
    return p.identities.get(sub, rg, name).document()


@router.delete(IDENTITY, status_code=202, responses=answers({202: None, 204: None}, 403, 409))
def delete_identity(request: Request, _: Owner, p: Plane, sub: str, rg: str, name: str) -> Response:
    """Delete an identity (409 while a pipeline uses it)."""
    rid = R.resource_id(sub, rg, R.IDENTITY_TYPE, name)
    return lro.delete_reply(request, rid, p.identities.delete(sub, rg, name))


@router.get(arm.IDENTITIES_PATH, responses=answers({200: M.IdentityList}, 403))
def list_identities(
    request: Request, _: Reader, p: Plane, sub: str, rg: str, skip: Skip = 0, top: Top = 100
) -> dict[str, Any]:
    return page(request, [i.document() for i in p.identities.list(sub, rg)], skip, top)
