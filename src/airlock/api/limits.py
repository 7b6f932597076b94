"""Request bodies the API accepts: bounded in size while they stream, and strict JSON.

- :class:`BodyLimit` (ASGI middleware) answers ``413`` with the ARM envelope as soon as a body is
  known to exceed ``AIRLOCK_MAX_BODY_BYTES`` (default 4 MiB): at once from ``Content-Length``, or
  when the bytes received so far pass it (chunked uploads). The rest is never read into memory.
- :func:`parse_json` refuses what would break later: nesting deeper than :data:`MAX_DEPTH` (found
  by a scan *before* the recursive parser runs), ``NaN``/``Infinity`` and numbers that overflow to
  them (they cannot be rendered back as JSON), and lone surrogates (they cannot be encoded as UTF-8).
- A client that goes away mid-body is logged as one line, never as a traceback.

No FastAPI import at module level: the CLI uses :func:`parse_json` for ``airlock rest --body``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from airlock.api.error_body import asgi_error
from airlock.errors import UsageError

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.requests import Request

log = logging.getLogger(__name__)

ENV = "AIRLOCK_MAX_BODY_BYTES"
DEFAULT_MAX_BODY = 4 * 1024 * 1024
MAX_DEPTH = 64

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# A JSON string (escapes included), so that brackets inside strings are not counted as nesting.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def max_body_bytes() -> int:
    """``AIRLOCK_MAX_BODY_BYTES``, or 4 MiB. Raises UsageError for a value that is not a positive integer."""
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_BODY
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise UsageError(f"{ENV} {raw[:40]!r}: expected a positive number of bytes, e.g. {DEFAULT_MAX_BODY}")
    return value


def _too_deep(raw: bytes, limit: int) -> bool:
    depth = 0
    for c in _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS):
        if c in b"[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


class _Refused(ValueError):
    pass


def _no_constant(name: str) -> Any:
    raise _Refused(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"the number {text[:40]} is out of range")
    return value


def parse_json(raw: bytes, what: str = "the request body") -> Any:
    """The JSON value of ``raw``.

    Raises:
        UsageError: naming ``what``: not JSON (or not UTF-8), nested deeper than :data:`MAX_DEPTH`,
            ``NaN``/``Infinity`` or a number out of a double's range, or a string with a lone surrogate.
    """
    if _too_deep(raw, MAX_DEPTH):
        raise UsageError(f"{what} is nested deeper than {MAX_DEPTH} levels")
    try:
        value = json.loads(raw, parse_constant=_no_constant, parse_float=_finite)
    except RecursionError:  # not reached after the scan; kept so no input can become a 500
        raise UsageError(f"{what} is nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{what} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except UnicodeDecodeError:
        raise UsageError(f"{what} is not valid JSON (it is not UTF-8 text)") from None
    except _Refused as exc:
        raise UsageError(f"{what} is not valid JSON ({exc})") from None
    except ValueError:  # int() refuses more than sys.get_int_max_str_digits() digits
        raise UsageError(f"{what} is not valid JSON (a number with too many digits)") from None
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(f"{what} has a string that is not valid Unicode (a lone surrogate escape)") from None
    return value


async def read_json(request: Request, *, optional: bool = False) -> Any:
    """The request's JSON body ({} for an empty one when ``optional``). Raises UsageError as :func:`parse_json`."""
    raw = await request.body()
    if not raw.strip():
        if optional:
            return {}
        raise UsageError("the request needs a JSON body")
    return parse_json(raw)


def _envelope(status: int, code: str, message: str) -> tuple[Message, Message]:
    # Named UsageError, as every envelope names its class: the CLI raises it.
    return asgi_error(status, code, message, "UsageError")


class BodyLimit:
    """ASGI middleware: a body over ``limit`` bytes gets ``413 RequestEntityTooLarge`` before it is read.

    The application then sees the client as gone (``http.disconnect``) and whatever it answers is
    dropped, so nothing it started on a partial body is acknowledged.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    def _refusal(self) -> tuple[Message, Message]:
        return _envelope(
            413,
            "RequestEntityTooLarge",
            f"the request body is larger than {self.limit} bytes (the server's {ENV})",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = [v for k, v in scope.get("headers", []) if k.lower() == b"content-length"]
        if declared:
            try:
                length = int(declared[0])
            except ValueError:
                length = -1
            if length < 0:
                for message in _envelope(400, "InvalidRequestContent", "invalid Content-Length header"):
                    await send(message)
                return
            if length > self.limit:
                for message in self._refusal():
                    await send(message)
                return
        received = 0
        refused = False

        async def limited() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    refused = True
                    scope["airlock.body_refused"] = True  # for the disconnect handler: not the client's doing
                    for reply in self._refusal():
                        await send(reply)
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            if not refused:
                await send(message)

        await self.app(scope, limited, guarded)


def install(app: FastAPI) -> None:
    """Bound ``app``'s request bodies (:class:`BodyLimit` at ``AIRLOCK_MAX_BODY_BYTES``) and answer a
    client that disconnected mid-body without a traceback. Raises UsageError for a bad setting."""
    from fastapi.responses import Response
    from starlette.requests import ClientDisconnect

    limit = max_body_bytes()

    async def _gone(request: Request, exc: Exception) -> Response:
        if request.scope.get("airlock.body_refused"):
            log.info("refused a request body over %d bytes (%s %r)", limit, request.method, request.url.path)
        else:
            log.warning(
                "a client disconnected before sending its whole request body (%s %r)",
                request.method,
                request.url.path,
            )
        return Response(status_code=400)  # nobody reads it: the client is gone, or has its 413

    app.add_exception_handler(ClientDisconnect, _gone)
    app.add_middleware(BodyLimit, limit=limit)
