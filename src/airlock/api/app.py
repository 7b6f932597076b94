"""The ARM-compatible REST API: thin routes over :class:`airlock.pipelines.service.ControlPlane`.

Paths are ARM's (``/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ContainerRegistry/
registries/{registry}/exportPipelines/{name}`` and siblings), with ``?api-version=``. PUT and DELETE
are long-running operations: 201/202 with an ``Azure-AsyncOperation`` header whose URL reports
``InProgress``/``Succeeded``/``Failed``. Errors use ARM's envelope ``{"error": {"code", "message"}}``;
this module is the only place domain errors become HTTP statuses. Every route but ``/healthz``
needs ``Authorization: Bearer <token>`` (the token in ``AIRLOCK_HOME/api-token``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from airlock.api import limits
from airlock.api.tokens import TokenStore, allowed, token_request
from airlock.errors import (
    AccessDenied,
    AirlockError,
    ResourceConflict,
    ResourceNotFound,
    SecretError,
    UsageError,
)
from airlock.pipelines import resources as R
from airlock.pipelines.service import TERMINAL, ControlPlane
from airlock.pipelines.trigger import SourceTrigger
from airlock.secrets.base import SecretAccessDenied, SecretNotFound
from airlock.secrets.embedded import Vault

log = logging.getLogger(__name__)

API_VERSION = "2025-06-01-preview"
PAGE = 100
REG = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ContainerRegistry/registries"
IDS = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities"
KV = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults"


def _status(exc: AirlockError) -> tuple[int, str]:
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


class _Unauthenticated(Exception):
    pass


def _plane(request: Request) -> ControlPlane:
    plane: ControlPlane = request.app.state.control["plane"]
    return plane


def _authenticated(request: Request) -> None:
    tokens: TokenStore = request.app.state.tokens
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    caller = tokens.authenticate(value.strip()) if scheme.lower() == "bearer" else None
    if caller is None:
        raise _Unauthenticated()
    # scope["path"] is exactly what the router matched (percent-decoded), never a re-built URL.
    path = str(request.scope.get("path", ""))
    if not allowed(caller.role, request.method, path):
        raise AccessDenied(f"the caller '{caller.name}' (role {caller.role}) may not {request.method} {path}")
    R.check_path(path)  # every id part, on every route, before any lookup
    request.state.caller = caller


Plane = Annotated[ControlPlane, Depends(_plane)]
Auth = Depends(_authenticated)
ApiVersion = Annotated[str, Query(alias="api-version")]
Skip = Annotated[int, Query(alias="$skiptoken", ge=0)]
Top = Annotated[int, Query(alias="$top", ge=1, le=1000)]


def error(status: int, code: str, message: str, error_class: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": " ".join(message.split())}
    if error_class:
        # The error's class, so that the CLI raises the same one (and exits with the same code) after
        # the REST hop: ARM's additionalInfo, typed "AirlockError".
        body["additionalInfo"] = [{"type": "AirlockError", "info": {"class": error_class}}]
    return JSONResponse({"error": body}, status_code=status)


def create_app(
    open_plane: Callable[[], ControlPlane],
    *,
    token: str,
    trigger_interval: float | None = 10.0,
) -> FastAPI:
    """The app. ``open_plane`` is called once at startup; ``trigger_interval`` None disables the trigger."""
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        plane = open_plane()
        app.state.tokens = TokenStore(plane.store.engine, token)
        recovered = plane.recover()
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
    )
    limits.install(app)  # bodies bounded while they stream (413), strict JSON, quiet client disconnects

    @app.exception_handler(AirlockError)
    async def _domain(_: Request, exc: AirlockError) -> JSONResponse:
        status, code = _status(exc)
        return error(status, code, str(exc), type(exc).__name__)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return error(400, "InvalidRequestContent", f"invalid request at '{where}': {first.get('msg', 'invalid')}")

    @app.exception_handler(Exception)
    async def _bug(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return error(500, "InternalServerError", f"internal error ({type(exc).__name__})")

    @app.exception_handler(_Unauthenticated)
    async def _unauth(_: Request, exc: _Unauthenticated) -> JSONResponse:
        resp = error(401, "AuthenticationFailed", "missing or invalid bearer token (see AIRLOCK_HOME/api-token)")
        resp.headers["WWW-Authenticate"] = 'Bearer realm="airlock"'
        return resp

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    def put_reply(request: Request, doc: dict[str, Any], created: bool, *, running: bool = False) -> JSONResponse:
        status = 201 if created or running else 200
        resp = JSONResponse(doc, status_code=status)
        op = f"{doc['id']}/operationStatuses/{'run' if running else 'done'}"
        resp.headers["Azure-AsyncOperation"] = str(request.base_url).rstrip("/") + op + f"?api-version={API_VERSION}"
        return resp

    def delete_reply(request: Request, rid: str, existed: bool) -> Response:
        if not existed:
            return Response(status_code=204)
        resp = Response(status_code=202)
        url = str(request.base_url).rstrip("/") + f"{rid}/operationStatuses/done?api-version={API_VERSION}"
        resp.headers["Azure-AsyncOperation"] = url
        resp.headers["Location"] = url
        return resp

    def page(request: Request, items: list[dict[str, Any]], skip: int, top: int) -> dict[str, Any]:
        top = max(1, min(top, PAGE))
        out: dict[str, Any] = {"value": items[skip : skip + top]}
        if skip + top < len(items):
            url = request.url.include_query_params(**{"$skiptoken": str(skip + top), "$top": str(top)})
            out["nextLink"] = str(url)
        return out

    # -- registries -----------------------------------------------------------------------------

    @app.put(REG + "/{registry}", dependencies=[Auth], tags=["registries"])
    async def put_registry(
        request: Request, p: Plane, sub: str, rg: str, registry: str, api_version: ApiVersion = API_VERSION
    ) -> JSONResponse:
        doc, created = p.put_registry(sub, rg, registry, await _json(request))
        return put_reply(request, doc, created)

    @app.get(REG + "/{registry}", dependencies=[Auth], tags=["registries"])
    def get_registry(
        p: Plane, sub: str, rg: str, registry: str, api_version: ApiVersion = API_VERSION
    ) -> dict[str, Any]:
        return p.get(R.resource_id(sub, rg, R.REGISTRY_TYPE, registry), "registry")

    @app.delete(REG + "/{registry}", dependencies=[Auth], tags=["registries"])
    def delete_registry(
        request: Request, p: Plane, sub: str, rg: str, registry: str, api_version: ApiVersion = API_VERSION
    ) -> Response:
        return delete_reply(
            request, R.resource_id(sub, rg, R.REGISTRY_TYPE, registry), p.delete_registry(sub, rg, registry)
        )

    @app.get(REG, dependencies=[Auth], tags=["registries"])
    def list_registries(
        request: Request,
        p: Plane,
        sub: str,
        rg: str,
        skip: Skip = 0,
        top: Top = PAGE,
        api_version: ApiVersion = API_VERSION,
    ) -> dict[str, Any]:
        return page(request, p.list_registries(sub, rg), skip, top)

    # -- pipelines --------------------------------------------------------------------------------

    for kind in ("exportPipelines", "importPipelines"):
        _pipeline_routes(app, kind, put_reply, delete_reply, page)

    # -- runs -------------------------------------------------------------------------------------

    @app.put(REG + "/{registry}/pipelineRuns/{name}", dependencies=[Auth], tags=["pipelineRuns"])
    async def put_run(
        request: Request, p: Plane, sub: str, rg: str, registry: str, name: str, api_version: ApiVersion = API_VERSION
    ) -> JSONResponse:
        doc, started = p.put_run(sub, rg, registry, name, await _json(request))
        return put_reply(request, doc, started, running=started)

    @app.get(REG + "/{registry}/pipelineRuns/{name}", dependencies=[Auth], tags=["pipelineRuns"])
    def get_run(
        p: Plane, sub: str, rg: str, registry: str, name: str, api_version: ApiVersion = API_VERSION
    ) -> dict[str, Any]:
        return p.get(R.RegistryRef(sub, rg, registry).child("pipelineRuns", name), "pipeline run")

    @app.delete(REG + "/{registry}/pipelineRuns/{name}", dependencies=[Auth], tags=["pipelineRuns"])
    def delete_run(
        request: Request, p: Plane, sub: str, rg: str, registry: str, name: str, api_version: ApiVersion = API_VERSION
    ) -> Response:
        rid = R.RegistryRef(sub, rg, registry).child("pipelineRuns", name)
        return delete_reply(request, rid, p.delete_run(rid))

    @app.get(REG + "/{registry}/pipelineRuns", dependencies=[Auth], tags=["pipelineRuns"])
    def list_runs(
        request: Request,
        p: Plane,
        sub: str,
        rg: str,
        registry: str,
        skip: Skip = 0,
        top: Top = PAGE,
        api_version: ApiVersion = API_VERSION,
    ) -> dict[str, Any]:
        p.get(R.resource_id(sub, rg, R.REGISTRY_TYPE, registry), "registry")
        return page(request, p.list_runs(sub, rg, registry), skip, top)

    @app.get(REG + "/{registry}/{kind}/{name}/operationStatuses/{op}", dependencies=[Auth], tags=["operations"])
    def operation(
        p: Plane, sub: str, rg: str, registry: str, kind: str, name: str, op: str, api_version: ApiVersion = API_VERSION
    ) -> dict[str, Any]:
        rid = R.RegistryRef(sub, rg, registry).child(kind, name)
        if op == "done":
            return {"id": f"{rid}/operationStatuses/done", "status": "Succeeded"}
        doc = p.get(rid, "pipeline run")
        state = doc["properties"]["provisioningState"]
        out: dict[str, Any] = {
            "id": f"{rid}/operationStatuses/{op}",
            "name": op,
            "status": state if state in TERMINAL else "InProgress",
        }
        if state == "Failed":
            out["error"] = {
                "code": "PipelineRunFailed",
                "message": doc["properties"]["response"].get("pipelineRunErrorMessage", ""),
            }
        return out

    # -- identities -------------------------------------------------------------------------------

    @app.put(IDS + "/{name}", dependencies=[Auth], tags=["identities"])
    async def put_identity(
        request: Request, p: Plane, sub: str, rg: str, name: str, api_version: ApiVersion = API_VERSION
    ) -> JSONResponse:
        doc, created = p.put_identity(sub, rg, name, await _json(request, optional=True))
        return put_reply(request, doc, created)

    @app.get(IDS + "/{name}", dependencies=[Auth], tags=["identities"])
    def get_identity(p: Plane, sub: str, rg: str, name: str, api_version: ApiVersion = API_VERSION) -> dict[str, Any]:
        return p.get(R.resource_id(sub, rg, R.IDENTITY_TYPE, name), "identity")

    @app.delete(IDS + "/{name}", dependencies=[Auth], tags=["identities"])
    def delete_identity(
        request: Request, p: Plane, sub: str, rg: str, name: str, api_version: ApiVersion = API_VERSION
    ) -> Response:
        rid = R.resource_id(sub, rg, R.IDENTITY_TYPE, name)
        return delete_reply(request, rid, p.delete_identity(sub, rg, name))

    @app.get(IDS, dependencies=[Auth], tags=["identities"])
    def list_identities(
        request: Request,
        p: Plane,
        sub: str,
        rg: str,
        skip: Skip = 0,
        top: Top = PAGE,
        api_version: ApiVersion = API_VERSION,
    ) -> dict[str, Any]:
        return page(request, p.list_identities(sub, rg), skip, top)

    # -- key vaults (embedded) --------------------------------------------------------------------

    @app.put(KV + "/{vault}", dependencies=[Auth], tags=["keyvaults"])
    async def put_vault(
        request: Request, p: Plane, sub: str, rg: str, vault: str, api_version: ApiVersion = API_VERSION
    ) -> JSONResponse:
        doc, created = p.put_vault(sub, rg, vault, await _json(request, optional=True))
        return put_reply(request, doc, created)

    @app.get(KV + "/{vault}", dependencies=[Auth], tags=["keyvaults"])
    def get_vault(p: Plane, sub: str, rg: str, vault: str, api_version: ApiVersion = API_VERSION) -> dict[str, Any]:
        return p.vault_doc(sub, _vault_in(p, rg, vault))

    @app.get("/subscriptions/{sub}/providers/Microsoft.KeyVault/vaults", dependencies=[Auth], tags=["keyvaults"])
    def list_all_vaults(
        request: Request, p: Plane, sub: str, skip: Skip = 0, top: Top = PAGE, api_version: ApiVersion = API_VERSION
    ) -> dict[str, Any]:
        return page(request, [p.vault_doc(sub, v) for v in p.vaults.list_vaults()], skip, top)

    @app.delete(KV + "/{vault}", dependencies=[Auth], tags=["keyvaults"])
    def delete_vault(
        request: Request, p: Plane, sub: str, rg: str, vault: str, api_version: ApiVersion = API_VERSION
    ) -> Response:
        if p.vaults.get_vault(vault) is not None:
            _vault_in(p, rg, vault)
        return delete_reply(request, R.resource_id(sub, rg, R.VAULT_TYPE, vault), p.vaults.delete_vault(vault))

    @app.get(KV, dependencies=[Auth], tags=["keyvaults"])
    def list_vaults(
        request: Request,
        p: Plane,
        sub: str,
        rg: str,
        skip: Skip = 0,
        top: Top = PAGE,
        api_version: ApiVersion = API_VERSION,
    ) -> dict[str, Any]:
        return page(request, [p.vault_doc(sub, v) for v in p.vaults.list_vaults(rg)], skip, top)

    @app.put(KV + "/{vault}/accessPolicies/{operation}", dependencies=[Auth], tags=["keyvaults"])
    async def set_policy(
        request: Request, p: Plane, sub: str, rg: str, vault: str, operation: str, api_version: ApiVersion = API_VERSION
    ) -> dict[str, Any]:
        _vault_in(p, rg, vault)
        return p.set_policies(sub, vault, operation, await _json(request))

    @app.put(KV + "/{vault}/secrets/{name}", dependencies=[Auth], tags=["keyvaults"])
    async def set_secret(
        request: Request, p: Plane, sub: str, rg: str, vault: str, name: str, api_version: ApiVersion = API_VERSION
    ) -> dict[str, Any]:
        _vault_in(p, rg, vault)
        return _secret_doc(p.set_secret(sub, vault, name, await _json(request)), None)

    @app.get(KV + "/{vault}/secrets/{name}", dependencies=[Auth], tags=["keyvaults"])
    def get_secret(
        p: Plane,
        sub: str,
        rg: str,
        vault: str,
        name: str,
        version: str | None = None,
        api_version: ApiVersion = API_VERSION,
    ) -> dict[str, Any]:
        _vault_in(p, rg, vault)
        meta, value = p.vaults.read(vault, name, version)
        return _secret_doc(meta, value)

    @app.get(KV + "/{vault}/secrets", dependencies=[Auth], tags=["keyvaults"])
    def list_secrets(
        request: Request,
        p: Plane,
        sub: str,
        rg: str,
        vault: str,
        skip: Skip = 0,
        top: Top = PAGE,
        api_version: ApiVersion = API_VERSION,
    ) -> dict[str, Any]:
        _vault_in(p, rg, vault)
        return page(request, [_secret_doc(v, None) for v in p.vaults.list_secrets(vault)], skip, top)

    @app.delete(KV + "/{vault}/secrets/{name}", dependencies=[Auth], tags=["keyvaults"])
    def delete_secret(
        request: Request, p: Plane, sub: str, rg: str, vault: str, name: str, api_version: ApiVersion = API_VERSION
    ) -> Response:
        _vault_in(p, rg, vault)
        return delete_reply(
            request,
            R.resource_id(sub, rg, R.VAULT_TYPE, vault) + f"/secrets/{name}",
            p.vaults.delete_secret(vault, name),
        )

    # -- API tokens (Owner only, enforced by `allowed`) ---------------------------------------------

    @app.post("/airlock/tokens", dependencies=[Auth], tags=["tokens"])
    async def create_token(request: Request) -> JSONResponse:
        name, role = token_request(await _json(request))
        tokens: TokenStore = request.app.state.tokens
        return JSONResponse({"name": name, "role": role, "token": tokens.create(name, role)}, status_code=201)

    @app.get("/airlock/tokens", dependencies=[Auth], tags=["tokens"])
    def list_tokens(request: Request) -> dict[str, Any]:
        tokens: TokenStore = request.app.state.tokens
        return {"value": tokens.list()}

    @app.delete("/airlock/tokens/{name}", dependencies=[Auth], tags=["tokens"])
    def revoke_token(request: Request, name: str) -> Response:
        tokens: TokenStore = request.app.state.tokens
        tokens.revoke(name)
        return Response(status_code=204)

    @app.get("/subscriptions/{rest:path}/operationStatuses/done", dependencies=[Auth], tags=["operations"])
    def operation_done(rest: str, api_version: ApiVersion = API_VERSION) -> dict[str, Any]:
        # PUT/DELETE of registries, identities, vaults and pipelines complete before they answer.
        return {"id": f"/subscriptions/{rest}/operationStatuses/done", "status": "Succeeded"}

    app.state.control = state
    return app


def _vault_in(p: ControlPlane, rg: str, vault: str) -> Vault:
    """The embedded vault, which must be in resource group ``rg`` (ARM scopes every call to one)."""
    found = p.vaults.get_vault(vault)
    if found is None or found.resource_group.lower() != rg.lower():
        raise ResourceNotFound(f"key vault {vault} not found in resource group {rg}")
    return found


def _secret_doc(version: Any, value: str | None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": version.id,
        "name": version.name,
        "attributes": {"enabled": True, "created": version.created_at.isoformat()},
        "contentType": version.content_type,
    }
    if value is not None:
        doc["value"] = value
    return doc


async def _json(request: Request, *, optional: bool = False) -> Any:
    return await limits.read_json(request, optional=optional)


def _pipeline_routes(app: FastAPI, kind: str, put_reply: Any, delete_reply: Any, page: Any) -> None:
    base = REG + "/{registry}/" + kind
    what = "export pipeline" if kind == "exportPipelines" else "import pipeline"

    @app.put(base + "/{name}", dependencies=[Auth], tags=[kind], name=f"put_{kind}")
    async def put_pipeline(
        request: Request, p: Plane, sub: str, rg: str, registry: str, name: str, api_version: ApiVersion = API_VERSION
    ) -> JSONResponse:
        privileged = request.state.caller.role == "Owner"
        doc, created = p.put_pipeline(sub, rg, registry, kind, name, await _json(request), privileged=privileged)
        return put_reply(request, doc, created)  # type: ignore[no-any-return]

    @app.get(base + "/{name}", dependencies=[Auth], tags=[kind], name=f"get_{kind}")
    def get_pipeline(
        p: Plane, sub: str, rg: str, registry: str, name: str, api_version: ApiVersion = API_VERSION
    ) -> dict[str, Any]:
        result: dict[str, Any] = p.get(R.RegistryRef(sub, rg, registry).child(kind, name), what)
        return result

    @app.delete(base + "/{name}", dependencies=[Auth], tags=[kind], name=f"delete_{kind}")
    def delete_pipeline(
        request: Request, p: Plane, sub: str, rg: str, registry: str, name: str, api_version: ApiVersion = API_VERSION
    ) -> Response:
        rid = R.RegistryRef(sub, rg, registry).child(kind, name)
        return delete_reply(  # type: ignore[no-any-return]
            request, rid, p.delete_pipeline(sub, rg, registry, kind, name)
        )

    @app.get(base, dependencies=[Auth], tags=[kind], name=f"list_{kind}")
    def list_pipelines(
        request: Request,
        p: Plane,
        sub: str,
        rg: str,
        registry: str,
        skip: Skip = 0,
        top: Top = PAGE,
        api_version: ApiVersion = API_VERSION,
    ) -> dict[str, Any]:
        p.get(R.resource_id(sub, rg, R.REGISTRY_TYPE, registry), "registry")
        result: dict[str, Any] = page(request, p.list_pipelines(sub, rg, registry, kind), skip, top)
        return result
