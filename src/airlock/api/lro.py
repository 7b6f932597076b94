"""ARM's long-running-operation answers: 201/202 with ``Azure-AsyncOperation`` (and ``Location`` on
DELETE) pointing at an ``operationStatuses`` resource, and ``Retry-After`` so clients poll briskly.

Operations of registries, identities, vaults and pipelines complete before their PUT or DELETE
answers; their status URL names the time they completed (``operationStatuses/done-<ms>``) and
always reports ``Succeeded``. A pipeline run's is ``operationStatuses/run``: it reports the run's
state, ``InProgress`` until it ends.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from airlock.pipelines import arm

# Seconds a client should wait between polls of a running operation. ARM clients (the Azure SDK)
# otherwise wait 30 s; runs of small batches take well under a second.
RETRY_AFTER = "1"
RUN_OPERATION = "run"
_DONE = re.compile(r"done-(\d{1,15})")


def done_operation() -> str:
    return f"done-{int(time.time() * 1000)}"


def done_time(op: str) -> str | None:
    """The ISO time a ``done-<ms>`` operation name records, None for another name."""
    m = _DONE.fullmatch(op)
    if m is None:
        return None
    try:
        when = datetime.fromtimestamp(int(m.group(1)) / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _status_url(request: Request, rid: str, op: str) -> str:
    # The caller's own api-version (already checked), so that the poll speaks the caller's dialect.
    version = request.query_params.get("api-version") or arm.DEFAULT_API_VERSION
    return str(request.base_url).rstrip("/") + f"{rid}/operationStatuses/{op}?api-version={version}"


def put_reply(
    request: Request, doc: dict[str, Any], created: bool, *, running: bool = False, run: bool = False
) -> JSONResponse:
    """200 (replaced) or 201 (created, or a run started) with the resource and its operation.

    A pipeline run (``run``) always points at its own operation, which reports the run's state: an
    identical re-PUT (200) of a run still going, or of one that failed, must not read as Succeeded.
    """
    resp = JSONResponse(doc, status_code=201 if created or running else 200)
    resp.headers["Azure-AsyncOperation"] = _status_url(
        request, doc["id"], RUN_OPERATION if running or run else done_operation()
    )
    finished = (doc.get("properties") or {}).get("provisioningState") in ("Succeeded", "Failed", "Canceled")
    if resp.status_code == 201 or (run and not finished):
        resp.headers["Retry-After"] = RETRY_AFTER
    return resp


def delete_reply(request: Request, rid: str, existed: bool) -> Response:
    """202 with the operation when the resource existed, 204 when there was nothing to delete."""
    if not existed:
        return Response(status_code=204)
    url = _status_url(request, rid, done_operation())
    return Response(status_code=202, headers={"Azure-AsyncOperation": url, "Location": url, "Retry-After": RETRY_AFTER})


def run_status(rid: str, op: str, run: dict[str, Any]) -> JSONResponse:
    """The operation status of a pipeline run (``InProgress`` until it ends, with Retry-After)."""
    props = run["properties"]
    response = props.get("response") or {}
    state = props.get("provisioningState")
    out: dict[str, Any] = {
        "id": f"{rid}/operationStatuses/{op}",
        "name": op,
        "status": state if state in arm.TERMINAL_STATES else "InProgress",
    }
    if response.get("startTime"):
        out["startTime"] = response["startTime"]
    if state in arm.TERMINAL_STATES and response.get("finishTime"):
        out["endTime"] = response["finishTime"]
    try:
        out["percentComplete"] = float((response.get("progress") or {}).get("percentage", 0))
    except (TypeError, ValueError):
        pass
    if state == "Failed":
        out["error"] = {"code": "PipelineRunFailed", "message": str(response.get("pipelineRunErrorMessage") or "")}
    resp = JSONResponse(out)
    if out["status"] == "InProgress":
        resp.headers["Retry-After"] = RETRY_AFTER
    return resp


def done_status(path_id: str, op: str, when: str) -> dict[str, Any]:
    return {
        "id": f"{path_id}/operationStatuses/{op}",
        "name": op,
        "status": "Succeeded",
        "startTime": when,
        "endTime": when,
        "percentComplete": 100.0,
    }
