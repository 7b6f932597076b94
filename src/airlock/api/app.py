"""The ARM-compatible REST API: routers over :class:`airlock.pipelines.service.ControlPlane`.

Paths are ARM's (``/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ContainerRegistry/
registries/{registry}/exportPipelines/{name}`` and siblings), each with ``?api-version=`` (one of
:data:`airlock.pipelines.arm.API_VERSIONS`). PUT and DELETE are long-running operations: 201/202
with ``Azure-AsyncOperation`` (and ``Retry-After``) whose URL reports ``InProgress``/``Succeeded``/
``Failed`` (``lro.py``). Every answer carries ``x-ms-request-id`` and ``x-ms-correlation-request-id``
(``middleware.py``); every error is ARM's envelope (``envelope.py``). Every route but ``/healthz``,
``/metrics`` (Prometheus, ``routes/metrics.py``) and the OpenAPI needs ``Authorization: Bearer
<token>`` (the token in ``AIRLOCK_HOME/api-token``) with the role the route declares (``deps.py``).
Requests are counted for ``/metrics`` and logged (``telemetry.py``). This module only assembles the parts.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from airlock.api import envelope, limits, openapi
from airlock.api.audit_requests import AuditRequests
from airlock.api.middleware import ArmHeaders
from airlock.api.routes import (
    audit,
    identities,
    metrics,
    operations,
    pipelines,
    registries,
    run_events,
    runs,
    tokens,
    vaults,
)
from airlock.api.telemetry import RequestTelemetry
from airlock.api.tokens import TokenStore
from airlock.pipelines import arm
from airlock.pipelines.plane import ControlPlane
from airlock.pipelines.trigger import SourceTrigger

log = logging.getLogger(__name__)

API_VERSION = arm.DEFAULT_API_VERSION

# operations last: its catch-all path must not shadow the resources' own paths.
ROUTERS = (
    registries.router,
    pipelines.export_router,
    pipelines.import_router,
    runs.router,
    run_events.router,
    identities.router,
    vaults.router,
    tokens.router,
    audit.router,
    metrics.router,
    operations.router,
)


def create_app(
    open_plane: Callable[[], ControlPlane],
    *,
    token: str,
    trigger_interval: float | None = 10.0,
    trust_token: bool = False,
    dashboard: bool = True,
) -> FastAPI:
    """The app. ``open_plane`` is called once at startup; ``trigger_interval`` None disables the trigger.
    ``trust_token``: ``token`` is an Owner in this process whatever the database records (the CLI's
    in-process app, which holds the database itself). ``dashboard`` False: no ``/ui`` (the CLI's
    in-process app, which no browser can reach; its templates cost each command 25 ms to load)."""
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        plane = open_plane()
        app.state.tokens = TokenStore(plane.engine, token, trust_bootstrap=trust_token)
        if not app.state.tokens.bootstrap_accepted:
            log.warning(
                "this home's api-token is not the deployment's Owner token (another server recorded its own "
                "first): use that server's AIRLOCK_HOME/api-token, or tokens made with `airlock token create`"
            )
        recovered = plane.runs.recover()
        if recovered:
            log.warning("marked %d interrupted run(s) as failed", len(recovered))
        state["plane"] = plane
        trigger = SourceTrigger(plane, interval=trigger_interval or 10.0)
        state["trigger"] = trigger
        if trigger_interval is not None:
            trigger.start()
        try:
            yield
        finally:
            trigger.stop()
            plane.close(wait=True)

    app = FastAPI(
        title="airlock",
        version=API_VERSION,
        description="ACR transfer pipelines (ExportPipeline, ImportPipeline, PipelineRun), self-hosted.",
        lifespan=lifespan,
        redirect_slashes=False,  # ARM has no trailing-slash redirects: such a path is a 404
    )
    envelope.install(app)
    limits.install(app)  # bodies bounded while they stream (413), strict JSON, quiet client disconnects
    # Inside ArmHeaders (its lines carry the correlation id), outside the body limit (413s counted);
    # given the routes (filled below) to name the route of a request refused before routing.
    routes: list[BaseRoute] = []
    app.add_middleware(RequestTelemetry, routes=routes)
    app.add_middleware(AuditRequests, control=state)  # every change made through the API, once answered
    app.add_middleware(ArmHeaders)  # added last, so outermost: its ids are on the 413s too

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    for router in ROUTERS:
        app.include_router(router)
        routes.extend(router.routes)
    if dashboard:
        from airlock.api.ui import routes as ui

        routes.extend(ui.install(app, token))  # the dashboard at /ui (api/ui), signed in with the same tokens
    # What a 405's Allow names: the methods of every route whose path matches (envelope.py).
    app.state.route_methods = [
        (route.path_regex, set(route.methods or ()))
        for router in ROUTERS
        for route in router.routes
        if isinstance(route, APIRoute)
    ]
    openapi.install(app)
    app.state.control = state
    return app
