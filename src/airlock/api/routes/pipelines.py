"""Export and import pipelines: ``registries/{registry}/exportPipelines`` and ``importPipelines``,
one router each, built by :func:`pipeline_router`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from airlock.api import lro
from airlock.api import models as M
from airlock.api.deps import Contributor, Plane, Reader, Skip, Top, body, page
from airlock.api.openapi import answers, request_body
from airlock.api.tokens import Role
from airlock.pipelines import arm
from airlock.pipelines import models as D
from airlock.pipelines import resources as R


def pipeline_router(kind: str) -> APIRouter:
    """The router of ``kind`` (exportPipelines or importPipelines)."""
    doc_model: type[BaseModel] = D.ExportPipeline if kind == "exportPipelines" else D.ImportPipeline
    list_model = M.ExportPipelineList if kind == "exportPipelines" else M.ImportPipelineList
    body_model = M.ExportPipelineBody if kind == "exportPipelines" else M.ImportPipelineBody
    base = arm.REGISTRY_PATH + "/" + kind
    router = APIRouter(tags=[kind])

    @router.put(
        base + "/{name}",
        name=f"put_{kind}",
        status_code=200,
        responses=answers({200: doc_model, 201: doc_model}, 403, 404, 409, 413, 415),
        openapi_extra=request_body(body_model),
    )
    def put_pipeline(
        request: Request,
        caller: Contributor,
        p: Plane,
        sub: str,
        rg: str,
        registry: str,
        name: str,
        data: Annotated[Any, Depends(body())],
    ) -> JSONResponse:
        # Below Owner, a caller may not point a pipeline at the server's files nor lend it an identity.
        privileged = caller.role == Role.OWNER
        found, created = p.pipelines.put(sub, rg, registry, kind, name, data, privileged=privileged)
        return lro.put_reply(request, found.document(), created)

    @router.get(base + "/{name}", name=f"get_{kind}", responses=answers({200: doc_model}, 403, 404))
    def get_pipeline(_: Reader, p: Plane, sub: str, rg: str, registry: str, name: str) -> dict[str, Any]:
        return p.pipelines.get(sub, rg, registry, kind, name).document()

    @router.delete(
        base + "/{name}",
        name=f"delete_{kind}",
        status_code=202,
        responses=answers({202: None, 204: None}, 403, 409),
    )
    def delete_pipeline(
        request: Request, _: Contributor, p: Plane, sub: str, rg: str, registry: str, name: str
    ) -> Response:
        rid = R.RegistryRef(sub, rg, registry).child(kind, name)
        return lro.delete_reply(request, rid, p.pipelines.delete(sub, rg, registry, kind, name))

    @router.get(base, name=f"list_{kind}", responses=answers({200: list_model}, 403, 404))
    def list_pipelines(
        request: Request,
        _: Reader,
        p: Plane,
        sub: str,
        rg: str,
        registry: str,
        skip: Skip = 0,
        top: Top = 100,
    ) -> dict[str, Any]:
        return page(request, [x.document() for x in p.pipelines.list(sub, rg, registry, kind)], skip, top)

    return router


export_router = pipeline_router("exportPipelines")
import_router = pipeline_router("importPipelines")
