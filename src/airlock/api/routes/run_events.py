"""A pipeline run's live updates: ``GET registries/{registry}/pipelineRuns/{name}/events``, a
server-sent event stream (``text/event-stream``), authorized like GET of the run (Reader).

Each ``run`` event's data is the run's JSON document, sent when it changes (the first at once);
each ``state`` event's data is ``{"state": …, "worker": …}`` when either changes: the state as
executors see it (``Queued``, ``Running``, …; the document's provisioningState is ``Creating``
until the run ends) and the process that runs it (host:pid:start:plane);
the stream ends with an ``end`` event once the run has ended (Succeeded, Failed, Canceled), or a
``deleted`` event if its record is deleted. While nothing changes a comment line is sent every
:data:`KEEPALIVE` seconds, so proxies keep the connection. The run is read from the control plane's
database every :data:`POLL` seconds, so the stream follows a run whichever process or worker runs
it. Scripts can read it with ``curl -N`` or any SSE client; the dashboard's run page uses it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from airlock.api.deps import Plane, Reader
from airlock.api.openapi import answers
from airlock.api.routes.runs import RUNS
from airlock.pipelines import arm
from airlock.pipelines import resources as R
from airlock.pipelines.models import PipelineRun
from airlock.pipelines.plane import ControlPlane

router = APIRouter(tags=["pipelineRuns"])

POLL = 0.5
KEEPALIVE = 15.0
EVENT_STREAM = "text/event-stream"

_STREAM_ANSWER = {
    "description": "Server-sent events: `run` (the run's document, on every change), then `end` or `deleted`",
    "content": {EVENT_STREAM: {"schema": {"type": "string"}}},
}


@router.get(
    RUNS + "/{name}/events",
    response_class=StreamingResponse,
    responses={**answers({200: None}, 403, 404), 200: _STREAM_ANSWER},
)
async def run_events(_: Reader, p: Plane, sub: str, rg: str, registry: str, name: str) -> StreamingResponse:
    """Follow a run as server-sent events until it ends (404 when there is no such run)."""
    run = await run_in_threadpool(p.runs.get, sub, rg, registry, name)  # the 404 comes before the stream
    return StreamingResponse(
        events(p, R.RegistryRef(sub, rg, registry).child("pipelineRuns", run.name), run),
        media_type=EVENT_STREAM,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def events(p: ControlPlane, rid: str, first: PipelineRun | None) -> AsyncIterator[str]:
    """The event stream of run ``rid``, starting from ``first`` (as just read)."""
    yield f"retry: {int(POLL * 4000)}\n\n"
    last, last_state = "", ""
    quiet_since = time.monotonic()
    run = first
    while True:
        if run is None:
            yield "event: deleted\ndata: {}\n\n"
            return
        state, worker = await run_in_threadpool(p.runs.execution, rid)
        text = json.dumps({"state": state, "worker": worker}, separators=(",", ":"))
        if text != last_state:
            last_state = text
            yield f"event: state\ndata: {text}\n\n"
        text = json.dumps(run.document(), separators=(",", ":"))
        if text != last:
            last = text
            quiet_since = time.monotonic()
            yield f"event: run\ndata: {text}\n\n"
        elif time.monotonic() - quiet_since >= KEEPALIVE:
            quiet_since = time.monotonic()
            yield ": keep-alive\n\n"
        if run.properties.provisioningState in arm.TERMINAL_STATES:
            yield "event: end\ndata: {}\n\n"
            return
        await asyncio.sleep(POLL)
        run = await run_in_threadpool(p.runs.find, rid)
