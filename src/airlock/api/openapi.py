"""The served OpenAPI, made to say what the API does.

FastAPI's generated document is adjusted in four ways: request bodies read by the routes
themselves (``deps.body``) are declared with the models that check them (``request_body``); its
automatic 422 answers are removed (a bad body or parameter is a 400 ARM envelope here); 202 and
204 answers have no body; and the ``api-version`` parameter, checked after authentication, is
marked required with its values.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from airlock.api.models import ErrorResponse
from airlock.pipelines import arm

_BODIES: dict[str, type[BaseModel]] = {}

_DESCRIPTIONS = {
    200: "OK",
    201: "Created (a pipeline run: started; poll Azure-AsyncOperation)",
    202: "Accepted: poll Azure-AsyncOperation",
    204: "No content (nothing to delete)",
    400: "Invalid request (body, parameter or api-version)",
    401: "Missing or invalid bearer token",
    403: "The caller's role does not allow it",
    404: "No such resource",
    409: "Conflicts with the resource's state",
    413: "Request body too large",
    415: "Request body is not JSON",
}
_RETRY_AFTER = {"description": "Seconds to wait before polling", "schema": {"type": "integer"}}
_ASYNC = {"description": "The operation's status URL", "schema": {"type": "string"}}


def answers(ok: dict[int, type[BaseModel] | None], *errors: int, lro: bool = True) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of a route: its success statuses (with their models; 201/202 of an ARM
    route carry Azure-AsyncOperation and Retry-After) and error statuses, every error with ARM's
    envelope. 401 and 400 are always possible (token, api-version or parameters)."""
    out: dict[int | str, dict[str, Any]] = {}
    for status, model in ok.items():
        entry: dict[str, Any] = {"description": _DESCRIPTIONS[status]}
        if model is not None:
            entry["model"] = model
        if lro and status in (201, 202):
            entry["headers"] = {"Azure-AsyncOperation": _ASYNC, "Retry-After": _RETRY_AFTER}
        out[status] = entry
    for status in sorted({400, 401, *errors}):
        out[status] = {"description": _DESCRIPTIONS[status], "model": ErrorResponse}
    return out


def request_body(model: type[BaseModel], *, required: bool = True) -> dict[str, Any]:
    """``openapi_extra`` declaring ``model`` as the route's JSON request body."""
    _BODIES[model.__name__] = model
    schema = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": required, "content": {"application/json": {"schema": schema}}}}


def install(app: FastAPI) -> None:
    """Serve the adjusted document at /openapi.json (built once, on first use)."""

    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            _adjust(doc)
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = build  # type: ignore[method-assign]


def _adjust(doc: dict[str, Any]) -> None:
    components = doc.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    _, defs = models_json_schema(
        [(m, "validation") for m in _BODIES.values()], ref_template="#/components/schemas/{model}"
    )
    for name, schema in defs.get("$defs", {}).items():
        if name in components and components[name] != schema:
            raise RuntimeError(f"two OpenAPI schemas are called {name}")
        components[name] = schema
    for item in doc.get("paths", {}).values():
        for operation in item.values():
            responses = operation.get("responses", {})
            responses.pop("422", None)
            for status in ("202", "204"):
                # These answers have no body; FastAPI would document an empty JSON one.
                responses.get(status, {}).pop("content", None)
            for param in operation.get("parameters", []):
                if param.get("name") == "api-version" and param.get("in") == "query":
                    param["required"] = True
                    param["schema"] = {"type": "string", "enum": list(arm.API_VERSIONS), "title": "Api-Version"}
