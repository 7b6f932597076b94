"""ARM's error envelope, and the one place where errors become HTTP statuses.

Every error answer is ``{"error": {"code", "message", "additionalInfo"?}}``. An airlock error also
names its class, ``additionalInfo: [{"type": "AirlockError", "info": {"class": "BlobExists"}}]``
(ARM's extension point for details), so that a client of the REST API (the CLI through
``AIRLOCK_ENDPOINT``) can raise the same error, with the same exit code, as it would locally.
Errors the API itself answers (unknown routes, wrong methods, bad api-versions, unreadable bodies)
name the class the CLI would raise for them: ResourceNotFound, UsageError, AccessDenied.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from airlock.api.error_body import error_document
from airlock.errors import (
    AccessDenied,
    AirlockError,
    ResourceConflict,
    ResourceNotFound,
    SecretError,
    UsageError,
)
from airlock.pipelines import arm
from airlock.secrets.base import SecretAccessDenied, SecretNotFound

log = logging.getLogger(__name__)


class ArmError(Exception):
    """An error the API layer answers itself, with its ARM ``code``; ``error_class`` is the airlock
    error class a client should raise for it."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        error_class: type[AirlockError] = UsageError,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.error_class = error_class
        self.headers = headers or {}

    def answer(self) -> JSONResponse:
        resp = envelope(self.status, self.code, self.message, self.error_class.__name__)
        resp.headers.update(self.headers)
        return resp


def unauthenticated() -> ArmError:
    return ArmError(
        401,
        "AuthenticationFailed",
        "missing or invalid bearer token (see AIRLOCK_HOME/api-token)",
        error_class=AccessDenied,
        headers={"WWW-Authenticate": 'Bearer realm="airlock"'},
    )


def status_of(exc: AirlockError) -> tuple[int, str]:
    """The HTTP status and ARM code of a domain error."""
    if isinstance(exc, ResourceNotFound | SecretNotFound):
        return 404, "ResourceNotFound"
    if isinstance(exc, ResourceConflict):
        return 409, "Conflict"
    if isinstance(exc, AccessDenied):
        return 403, "AuthorizationFailed"
    if isinstance(exc, SecretAccessDenied):
        return 403, "Forbidden"
    if isinstance(exc, UsageError):
        return 400, "InvalidRequestContent"
    if isinstance(exc, SecretError):
        return 400, "SecretError"
    return 400, "BadRequest"


def envelope(status: int, code: str, message: str, error_class: str | None = None) -> JSONResponse:
    """An ARM error answer (:func:`airlock.api.error_body.error_document`)."""
    return JSONResponse(error_document(code, message, error_class), status_code=status)


# What Starlette's own errors mean in ARM's words, and the class a client raises for them.
_HTTP_CODES: dict[int, tuple[str, type[AirlockError]]] = {
    400: ("BadRequest", UsageError),
    404: ("NotFound", ResourceNotFound),
    405: ("MethodNotAllowed", UsageError),
    413: ("RequestEntityTooLarge", UsageError),
    415: ("UnsupportedMediaType", UsageError),
}


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into the ARM envelope."""

    @app.exception_handler(AirlockError)
    async def _domain(_: Request, exc: AirlockError) -> JSONResponse:
        status, code = status_of(exc)
        return envelope(status, code, str(exc), type(exc).__name__)

    @app.exception_handler(ArmError)
    async def _arm(_: Request, exc: ArmError) -> JSONResponse:
        return exc.answer()

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _validation_answer(exc.errors())

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code, cls = _HTTP_CODES.get(exc.status_code, ("BadRequest" if exc.status_code < 500 else "InternalError", None))
        where = f"{request.method} {request.url.path}"
        if exc.status_code == 404:
            message = f"{where}: airlock serves no such path (see /docs)"
        elif exc.status_code == 405:
            allow = allowed_methods(app, request)
            message = f"{where}: the method is not allowed here; use {', '.join(allow) or 'none'}"
        else:
            message = f"{where}: {exc.detail}"
        resp = envelope(exc.status_code, code, message, cls.__name__ if cls else None)
        for key, value in (exc.headers or {}).items():
            resp.headers[key] = value
        if exc.status_code == 405:
            # Starlette names the methods of the first route that matched the path only.
            resp.headers["Allow"] = ", ".join(allowed_methods(app, request))
        return resp


def _validation_answer(errors: Iterable[Any]) -> JSONResponse:
    errors = list(errors)
    for err in errors:
        if tuple(err.get("loc", ())) == ("query", "api-version"):
            return api_version_error(None).answer()
    first = errors[0] if errors else {}
    where = ".".join(str(p) for p in first.get("loc", ()))
    message = f"invalid request at '{where}': {first.get('msg', 'invalid')}"
    return envelope(400, "InvalidRequestContent", message, UsageError.__name__)


def allowed_methods(app: FastAPI, request: Request) -> list[str]:
    """Every method some route of ``app`` serves at the request's path (``app.state.route_methods``,
    the routers' (path pattern, methods) pairs that ``create_app`` records)."""
    methods: set[str] = set()
    for pattern, route_methods in getattr(app.state, "route_methods", ()):
        if pattern.match(request.url.path):
            methods |= route_methods
    return sorted(methods)


def api_version_error(given: str | None) -> ArmError:
    """ARM's answer to a missing (None or empty) or unsupported ``api-version``."""
    supported = ", ".join(arm.API_VERSIONS)
    if not given:
        return ArmError(
            400,
            "MissingApiVersionParameter",
            f"the api-version query parameter (?api-version=) is required; supported versions: {supported}",
        )
    return ArmError(
        400,
        "InvalidApiVersionParameter",
        f"the api-version {given[:64]!r} is not supported; supported versions: {supported}",
    )
