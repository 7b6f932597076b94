"""ARM's error document, built in one place for every answer: the exception handlers
(:mod:`airlock.api.envelope`) and the ASGI middleware that answer before or outside FastAPI
(:mod:`airlock.api.limits`, :mod:`airlock.api.middleware`).

No FastAPI import: the CLI loads :mod:`airlock.api.limits` for ``airlock rest --body``.
"""

from __future__ import annotations

import json
from typing import Any

MAX_MESSAGE = 2000


def error_document(code: str, message: str, error_class: str | None) -> dict[str, Any]:
    """``{"error": {"code", "message", "additionalInfo"?}}``; the message is made one line (and
    bounded). ``error_class`` names the airlock error a client should raise (ARM's extension
    point for details, ``additionalInfo``)."""
    body: dict[str, Any] = {"code": code, "message": " ".join(message.split())[:MAX_MESSAGE]}
    if error_class:
        body["additionalInfo"] = [{"type": "AirlockError", "info": {"class": error_class}}]
    return {"error": body}


def asgi_error(status: int, code: str, message: str, error_class: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The two ASGI messages (start, body) of an error answer."""
    body = json.dumps(error_document(code, message, error_class)).encode()
    start = {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    }
    return start, {"type": "http.response.body", "body": body}
