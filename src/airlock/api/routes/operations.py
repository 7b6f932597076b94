"""``operationStatuses``: what the Azure-AsyncOperation and Location URLs of PUT and DELETE answer.

A run's operation (``.../pipelineRuns/{name}/operationStatuses/run``) follows the run; every other
operation (``.../operationStatuses/done-<ms>``) completed before its PUT or DELETE answered.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from airlock.api import lro
from airlock.api import models as M
from airlock.api.deps import Plane, Reader
from airlock.api.openapi import answers
from airlock.errors import ResourceNotFound
from airlock.pipelines import arm
from airlock.pipelines import resources as R

router = APIRouter(tags=["operations"])


@router.get(
    arm.REGISTRY_PATH + "/pipelineRuns/{name}/operationStatuses/" + lro.RUN_OPERATION,
    responses=answers({200: M.OperationStatus}, 403, 404),
)
def run_operation(_: Reader, p: Plane, sub: str, rg: str, registry: str, name: str) -> JSONResponse:
    """The run's status: InProgress (with Retry-After) until it ends, then Succeeded or Failed."""
    rid = R.RegistryRef(sub, rg, registry).child("pipelineRuns", name)
    return lro.run_status(rid, lro.RUN_OPERATION, p.runs.by_id(rid).document())


@router.get("/subscriptions/{rest:path}/operationStatuses/{op}", responses=answers({200: M.OperationStatus}, 403, 404))
def done_operation(_: Reader, rest: str, op: str) -> dict[str, Any]:
    """An operation that completed when its request was answered (``done-<ms>``)."""
    when = lro.done_time(op)
    if when is None:
        raise ResourceNotFound(f"operation {op[:100]!r} not found (airlock names completed operations done-<ms>)")
    return lro.done_status(f"/subscriptions/{rest}", op, when)
