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
from airlock.pipelines import resources as R

router = APIRouter(tags=["registries"])


def _with_sku(doc: dict[str, Any]) -> dict[str, Any]:
    # Registries stored before sku was recorded are Premium, transfer's tier.
    if "sku" not in doc:
        doc = {**doc, "sku": R.registry_sku(None, doc.get("name", ""))}
    return doc


@router.put(
    arm.REGISTRY_PATH,
    status_code=200,
    responses=answers({200: M.Registry, 201: M.Registry}, 403, 409, 413, 415),
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
    doc, created = p.put_registry(sub, rg, registry, data)
    return lro.put_reply(request, doc, created)


@router.get(arm.REGISTRY_PATH, responses=answers({200: M.Registry}, 403, 404))
def get_registry(_: Reader, p: Plane, sub: str, rg: str, registry: str) -> dict[str, Any]:
    return _with_sku(p.get(R.resource_id(sub, rg, R.REGISTRY_TYPE, registry), "registry"))


@router.patch(
    arm.REGISTRY_PATH,
    responses=answers({200: M.Registry}, 403, 404, 409, 413, 415),
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
    current = _with_sku(p.get(R.resource_id(sub, rg, R.REGISTRY_TYPE, registry), "registry"))
    merged: dict[str, Any] = {
        "location": current.get("location"),
        "sku": data.get("sku") or current["sku"],
        "properties": {k: v for k, v in current["properties"].items() if k != "provisioningState"}
        | (data.get("properties") or {}),
    }
    tags = data.get("tags", current.get("tags"))
    if tags is not None:
        merged["tags"] = tags
    doc, _created = p.put_registry(sub, rg, registry, merged)
    return doc


@router.delete(
    arm.REGISTRY_PATH,
    status_code=202,
    responses=answers({202: None, 204: None}, 403, 409),
)
def delete_registry(request: Request, _: Owner, p: Plane, sub: str, rg: str, registry: str) -> Response:
    """Delete a registry and its pipelines and runs (409 while one of its runs is running)."""
    rid = R.resource_id(sub, rg, R.REGISTRY_TYPE, registry)
    return lro.delete_reply(request, rid, p.delete_registry(sub, rg, registry))


@router.get(arm.REGISTRIES_PATH, responses=answers({200: M.RegistryList}, 403))
def list_registries(
    request: Request, _: Reader, p: Plane, sub: str, rg: str, skip: Skip = 0, top: Top = 100
) -> dict[str, Any]:
    return page(request, [_with_sku(d) for d in p.list_registries(sub, rg)], skip, top)


@router.get(arm.ALL_REGISTRIES_PATH, responses=answers({200: M.RegistryList}, 403))
def list_all_registries(
    request: Request, _: Reader, p: Plane, sub: str, skip: Skip = 0, top: Top = 100
) -> dict[str, Any]:
    """The registries of every resource group of the subscription."""
    return page(request, [_with_sku(d) for d in p.list_registries(sub)], skip, top)
