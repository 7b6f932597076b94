"""Registries: ``Microsoft.ContainerRegistry/registries`` (PUT, GET, PATCH, DELETE, list)."""

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

router = APIRouter(tags=["registries"])


@router.put(
    arm.REGISTRY_PATH,
    status_code=200,
    responses=answers({200: D.Registry, 201: D.Registry}, 403, 409, 413, 415),
    openapi_extra=request_body(R.RegistryBody),
)
def put_registry(
    request: Request,
    _: Owner,
    p: Plane,
    sub: str,
    rg: str,
    registry: str,
    data: Annotated[Any, Depends(body())],
) -> JSONResponse:
    """Create or replace a registry (``properties.loginServer`` is the registry's URL)."""
    found, created = p.registries.put(sub, rg, registry, data)
    return lro.put_reply(request, found.document(), created)


@router.get(arm.REGISTRY_PATH, responses=answers({200: D.Registry}, 403, 404))
def get_registry(_: Reader, p: Plane, sub: str, rg: str, registry: str) -> dict[str, Any]:
    return p.registries.get(sub, rg, registry).document()


@router.patch(
    arm.REGISTRY_PATH,
    responses=answers({200: D.Registry}, 403, 404, 409, 413, 415),
    openapi_extra=request_body(M.RegistryPatch),
)
def patch_registry(
    _: Owner,
    p: Plane,
    sub: str,
    rg: str,
    registry: str,
    data: Annotated[dict[str, Any], Depends(body(M.RegistryPatch))],
) -> dict[str, Any]:
    """Update a registry: given ``tags`` and ``sku`` replace the stored ones, given ``properties``
    are merged into the stored ones (ARM's PATCH)."""
    return p.registries.patch(sub, rg, registry, data).document()


@router.delete(
    arm.REGISTRY_PATH,
    status_code=202,
    responses=answers({202: None, 204: None}, 403, 409),
)
def delete_registry(request: Request, _: Owner, p: Plane, sub: str, rg: str, registry: str) -> Response:
    """Delete a registry and its pipelines and runs (409 while one of its runs is running)."""
    rid = R.resource_id(sub, rg, R.REGISTRY_TYPE, registry)
    return lro.delete_reply(request, rid, p.registries.delete(sub, rg, registry))


@router.get(arm.REGISTRIES_PATH, responses=answers({200: M.RegistryList}, 403))
def list_registries(
    request: Request, _: Reader, p: Plane, sub: str, rg: str, skip: Skip = 0, top: Top = 100
) -> dict[str, Any]:
    return page(request, [r.document() for r in p.registries.list(sub, rg)], skip, top)


@router.get(arm.ALL_REGISTRIES_PATH, responses=answers({200: M.RegistryList}, 403))
def list_all_registries(
    request: Request, _: Reader, p: Plane, sub: str, skip: Skip = 0, top: Top = 100
) -> dict[str, Any]:
    """The registries of every resource group of the subscription."""
    return page(request, [r.document() for r in p.registries.list(sub)], skip, top)
