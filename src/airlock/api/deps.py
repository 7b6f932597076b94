"""Dependencies the routers share: the control plane, the caller and its role, the api-version,
paging, and JSON bodies validated against the models the OpenAPI declares.

A route states the role it needs, ``Depends(require(Role.OWNER))``; the check runs in this order:
bearer token (401), api-version (400), role (403), the path's ids (400), then the body (415, 400;
a body over the limit got its 413 from ``limits.BodyLimit`` before any of this).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from airlock.api import limits
from airlock.api.envelope import ArmError, api_version_error, unauthenticated
from airlock.api.tokens import Caller, Role, TokenStore
from airlock.api.ui.session import cookie_caller
from airlock.errors import AccessDenied
from airlock.observability import logs
from airlock.pipelines import arm
from airlock.pipelines import resources as R
from airlock.pipelines.plane import ControlPlane

PAGE = 100

_bearer = HTTPBearer(auto_error=False, description="The token in AIRLOCK_HOME/api-token, or one from /airlock/tokens.")


def plane(request: Request) -> ControlPlane:
    found: ControlPlane = request.app.state.control["plane"]
    return found


def tokens(request: Request) -> TokenStore:
    found: TokenStore = request.app.state.tokens
    return found


Plane = Annotated[ControlPlane, Depends(plane)]
Tokens = Annotated[TokenStore, Depends(tokens)]


def authenticate(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Caller:
    """The caller of a bearer token, or of the dashboard's session cookie (its CSRF header checked on
    every request that changes something: ``ui/session.py``). Raises the 401 ArmError, or the 403 one."""
    caller = tokens(request).authenticate(credentials.credentials.strip()) if credentials else cookie_caller(request)
    if caller is None:
        raise unauthenticated()
    logs.annotate(principal=caller.name)  # the token's name, never the token: on the request's log lines
    return caller


def api_version(
    _: Annotated[Caller, Depends(authenticate)],
    version: Annotated[
        str | None,
        Query(
            alias="api-version",
            description="An ACR transfer API version.",
        ),
    ] = None,
) -> str:
    """The request's api-version, one of :data:`arm.API_VERSIONS`. Raises the 400 ArmError
    (MissingApiVersionParameter, InvalidApiVersionParameter). Declared optional here so that the
    check runs after authentication; the OpenAPI marks it required (``openapi.py``)."""
    if version not in arm.API_VERSIONS:
        raise api_version_error(version)
    return version


def require(role: Role, *, arm_route: bool = True) -> Callable[..., Caller]:
    """A dependency admitting callers whose role includes ``role`` (on ARM routes, with a valid
    api-version). Raises the 401/400 ArmError, or AccessDenied (403)."""

    def check(request: Request, caller: Caller) -> Caller:
        # scope["path"] is exactly what the router matched (percent-decoded), never a re-built URL.
        path = str(request.scope.get("path", ""))
        request.state.caller = caller  # also when denied: the audit trail records who tried (audit_requests.py)
        if not Role(caller.role).includes(role):
            raise AccessDenied(f"the caller '{caller.name}' (role {caller.role}) may not {request.method} {path}")
        R.check_path(path)  # every id part, on every route, before any lookup
        return caller

    if arm_route:

        def dependency(
            request: Request,
            caller: Annotated[Caller, Depends(authenticate)],
            _: Annotated[str, Depends(api_version)],
        ) -> Caller:
            return check(request, caller)

    else:

        def dependency(request: Request, caller: Annotated[Caller, Depends(authenticate)]) -> Caller:  # type: ignore[misc]
            return check(request, caller)

    return dependency


# One dependency object per role, so FastAPI runs each once per request.
READER = require(Role.READER)
CONTRIBUTOR = require(Role.TRANSFER_PIPELINE_CONTRIBUTOR)
OWNER = require(Role.OWNER)
OWNER_OF_TOKENS = require(Role.OWNER, arm_route=False)

Reader = Annotated[Caller, Depends(READER)]
Contributor = Annotated[Caller, Depends(CONTRIBUTOR)]
Owner = Annotated[Caller, Depends(OWNER)]

Skip = Annotated[int, Query(alias="$skiptoken", ge=0, description="Where the page starts (from nextLink).")]
Top = Annotated[int, Query(alias="$top", ge=1, le=1000, description="Items per page (at most 100 are sent).")]


def page(request: Request, items: list[dict[str, Any]], skip: int, top: int) -> dict[str, Any]:
    """An ARM list page: ``value`` and, when more remain, ``nextLink``."""
    top = max(1, min(top, PAGE))
    out: dict[str, Any] = {"value": items[skip : skip + top]}
    if skip + top < len(items):
        out["nextLink"] = str(request.url.include_query_params(**{"$skiptoken": str(skip + top), "$top": str(top)}))
    return out


async def read_json(request: Request, *, optional: bool = False) -> Any:
    """The request's JSON body ({} when ``optional`` and empty), parsed strictly (``limits.py``; its
    middleware has already refused a body over the limit with 413).

    Raises the 415 ArmError (a Content-Type that is not JSON), or UsageError (no body, or not JSON)."""
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind and kind != "application/json" and not kind.endswith("+json"):
        raise ArmError(
            415, "UnsupportedMediaType", f"the content type {kind[:100]!r} is not supported; send application/json"
        )
    return await limits.read_json(request, optional=optional)


def body(model: type[BaseModel] | None = None, *, optional: bool = False) -> Callable[[Request], Awaitable[Any]]:
    """A dependency giving the JSON body, checked against ``model`` when one is given (the model the
    route's OpenAPI declares; ``None`` when the control plane validates the body itself)."""

    async def dependency(request: Request) -> Any:
        data = await read_json(request, optional=optional)
        if model is not None and not (optional and data == {}):
            R.parse(model, data, "the request body")
        return data

    return dependency
