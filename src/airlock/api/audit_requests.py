"""ASGI middleware writing the audit trail's entry of every API call that changes something.

Every authenticated request other than a GET (PUT, PATCH, POST, DELETE: pipelines, runs,
registries, identities, vaults, access policies, secrets, tokens) is one entry, and so is every
GET of a secret's value: the caller's token name as principal, the action from the route's
template (``exportPipelines.write``, ``pipelineRuns.cancel``, ``tokens.delete``,
``secrets.read``), the path as the resource, and the outcome by status (``Succeeded``,
``Denied (403)``, ``Failed (409)``). Bodies are never recorded (a secret's value travels in one).
Unauthenticated requests (401) are not recorded: they change nothing and name nobody. The entry
is written after the answer was sent, so a failure to write it (the database went away) cannot
change the answer: it is one error line in the log.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio.to_thread
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

_VERBS = {"PUT": "write", "PATCH": "write", "DELETE": "delete", "POST": "create", "GET": "read"}


def action_of(method: str, template: str) -> str:
    """``<resource type>.<verb>`` from a route template: the last literal segment before a
    parameter names the type; a literal after the last parameter (``/cancel``) is the verb."""
    parts = [p for p in template.split("/") if p]
    verb = _VERBS.get(method, method.lower())
    if parts and not parts[-1].startswith("{") and len(parts) > 1 and parts[-2].startswith("{"):
        verb, parts = parts[-1], parts[:-1]
    literals = [p for p in parts if not p.startswith("{")]
    return f"{literals[-1] if literals else 'api'}.{verb}"


def _audited(method: str, template: str) -> bool:
    if method in ("HEAD", "OPTIONS"):
        return False
    if method == "GET":  # reads change nothing; a secret's value is the one read that is recorded
        return "/secrets/{" in template
    return True


def _result(status: int) -> str:
    if 200 <= status < 300:
        return "Succeeded"
    return f"Denied ({status})" if status == 403 else f"Failed ({status})"


class AuditRequests:
    """Records each audited request once it was answered. ``control`` is the app's state dict,
    whose ``plane`` the lifespan sets."""

    def __init__(self, app: ASGIApp, control: dict[str, Any]) -> None:
        self.app = app
        self.control = control

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 0

        async def send_seen(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_seen)
        finally:
            caller = (scope.get("state") or {}).get("caller")
            template = getattr(scope.get("route"), "path", None)
            method = str(scope.get("method", ""))
            plane = self.control.get("plane")
            if caller is not None and isinstance(template, str) and plane is not None and _audited(method, template):
                entry = {
                    "principal": f"token:{caller.name}",
                    "resources": [str(scope.get("path", ""))],
                    "result": _result(status or 500),
                }
                try:
                    await anyio.to_thread.run_sync(lambda: plane.audit.record(action_of(method, template), **entry))
                except Exception as exc:  # the answer is sent (or the route's own error is on its way)
                    log.error("audit entry for %s %s not written: %s", method, template, type(exc).__name__)
