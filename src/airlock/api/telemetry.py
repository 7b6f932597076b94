"""ASGI middleware counting API requests for ``/metrics`` and logging each one (INFO, ``-v``).

Pure ASGI, like ``middleware.py``. It sits inside :class:`~airlock.api.middleware.ArmHeaders`, so its
line carries the request's correlation id (and the caller's principal, once authenticated), and
outside the body limit, so the limit's 413s are counted too. The ``route`` label is the template of
the route that matched (``/subscriptions/{subscriptionId}/...``), found by the router or, for a
request answered before routing (a 413), by matching the app's routes here; never the request's
path, so ids and names do not become label values.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from airlock.observability import metrics

log = logging.getLogger("airlock.api.requests")


def route_template(scope: Scope, routes: Sequence[BaseRoute]) -> str:
    """The path template of the route that answers ``scope`` (a wrong method still names its path's
    route), or :data:`~airlock.observability.metrics.UNMATCHED_ROUTE`."""
    route = scope.get("route")
    if route is None:
        partial = None
        for candidate in routes:
            match, _ = candidate.matches(scope)
            if match is Match.FULL:
                route = candidate
                break
            if match is Match.PARTIAL and partial is None:
                partial = candidate
        route = route or partial
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else metrics.UNMATCHED_ROUTE


class RequestTelemetry:
    """Counts every HTTP answer in ``airlock_http_requests_total{method,route,status}`` and logs it.
    ``routes`` are the routers' routes (a list the app fills as it includes them)."""

    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 0
        started = time.monotonic()

        async def send_counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        except Exception:
            status = status or 500  # ArmHeaders, around us, answers it with the 500 envelope
            raise
        finally:
            method = str(scope.get("method", ""))
            if status:  # 0: the client went away before any answer; nothing was answered
                metrics.http_request(method, route_template(scope, self.routes), status)
            log.info(
                "%s %s answered %s in %.0f ms",
                method,
                scope.get("path", ""),
                status or "nothing (client gone)",
                (time.monotonic() - started) * 1000,
            )
