"""Pipeline runs: ``registries/{registry}/pipelineRuns``. A PUT starts the run and answers 201 at
once; the run's ``operationStatuses/run`` reports it until it ends."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from airlock.api import lro
from airlock.api import models as M
from airlock.api.deps import Contributor, Plane, Reader, Skip, Top, body, page
from airlock.api.openapi import answers, request_body
from airlock.pipelines import arm
from airlock.pipelines import models as D
from airlock.pipelines import resources as R

router = APIRouter(tags=["pipelineRuns"])
RUNS = arm.REGISTRY_PATH + "/pipelineRuns"


@router.put(
    RUNS + "/{name}",
    status_code=200,
    responses=answers({200: D.PipelineRun, 201: D.PipelineRun}, 403, 404, 409, 413, 415),
    openapi_extra=request_body(R.RunBody),
)
def put_run(
    request: Request,
    _: Contributor,
    p: Plane,
    sub: str,
    rg: str,
    registry: str,
    name: str,
    data: Annotated[Any, Depends(body())],
) -> JSONResponse:
    """Start a run (201); the same request again is a no-op (200), a new forceUpdateTag runs it again."""
    run, started = p.runs.put(sub, rg, registry, name, data)
    return lro.put_reply(request, run.document(), started, running=started, run=True)


@router.get(RUNS + "/{name}", responses=answers({200: D.PipelineRun}, 403, 404))
def get_run(_: Reader, p: Plane, sub: str, rg: str, registry: str, name: str) -> dict[str, Any]:
    return p.runs.get(sub, rg, registry, name).document()


@router.post(RUNS + "/{name}/cancel", responses=answers({200: D.PipelineRun}, 403, 404, 409))
def cancel_run(_: Contributor, p: Plane, sub: str, rg: str, registry: str, name: str) -> dict[str, Any]:
    """Cancel a queued or running run (an airlock extension: ARM has no cancel for pipeline runs).

    A queued run ends Canceled at once; a running one has ``response.cancelRequested`` and ends
    Canceled within about a second of moving bytes, with no partial blob and no tag for
    unfinished content. 409 when the run has ended."""
    return p.runs.cancel(sub, rg, registry, name).document()


@router.delete(RUNS + "/{name}", status_code=202, responses=answers({202: None, 204: None}, 403, 409))
def delete_run(request: Request, _: Contributor, p: Plane, sub: str, rg: str, registry: str, name: str) -> Response:
    """Delete a run's record (409 while it runs)."""
    rid = R.RegistryRef(sub, rg, registry).child("pipelineRuns", name)
    return lro.delete_reply(request, rid, p.runs.delete(sub, rg, registry, name))


@router.get(RUNS, responses=answers({200: M.PipelineRunList}, 403, 404))
def list_runs(
    request: Request, _: Reader, p: Plane, sub: str, rg: str, registry: str, skip: Skip = 0, top: Top = 100
) -> dict[str, Any]:
    p.registries.get(sub, rg, registry)
    return page(request, [run.document() for run in p.runs.list(sub, rg, registry)], skip, top)
