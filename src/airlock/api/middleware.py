"""ASGI middleware: ARM's request-id headers on every answer, and a 500 envelope for bugs.

Pure ASGI (not Starlette's BaseHTTPMiddleware), so streamed bodies pass through untouched.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from airlock.api.error_body import asgi_error
from airlock.observability import logs

log = logging.getLogger("airlock.api")

REQUEST_ID = "x-ms-request-id"
CORRELATION_ID = "x-ms-correlation-request-id"
_MAX_ECHO = 256


def _correlation(scope: Scope) -> str:
    """The caller's correlation id, if it is one we can echo safely; else a new one."""
    for name, value in scope.get("headers", ()):
        if name == CORRELATION_ID.encode():
            text = bytes(value).decode("latin-1")
            if 0 < len(text) <= _MAX_ECHO and text.isascii() and text.isprintable():
                return text
    return str(uuid.uuid4())


class ArmHeaders:
    """Adds ``x-ms-request-id`` (new for each request) and ``x-ms-correlation-request-id`` (the
    caller's, when given) to every HTTP answer, and binds the correlation id to the request's log
    lines (``airlock.observability.logs``). An exception nothing else handled becomes a 500
    ARM envelope without details (the log has them), then propagates to the server as usual."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        correlation = _correlation(scope)
        ids = [
            (REQUEST_ID.encode(), str(uuid.uuid4()).encode()),
            (CORRELATION_ID.encode(), correlation.encode()),
        ]
        started = False

        async def send_with_ids(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in {i for i, _ in ids}]
                message = {**message, "headers": headers + ids}
            await send(message)

        with logs.bind(correlation_id=correlation):  # every line logged for this request names it
            try:
                await self.app(scope, receive, send_with_ids)
            except Exception as exc:
                log.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
                if not started:
                    await _internal_error(send_with_ids, exc)
                raise


async def _internal_error(send: Any, exc: Exception) -> None:
    # The exception's text could hold anything (a URL with a token): only its type is named.
    message = f"internal error ({type(exc).__name__}); see the server log"
    for part in asgi_error(500, "InternalServerError", message, "AirlockError"):
        await send(part)
