"""The dashboard's pages: one router under ``/ui`` (not in the OpenAPI), and its static files.

Pages are rendered on the server from :mod:`airlock.api.ui.views`; a page needs a session
(:mod:`airlock.api.ui.session`, else 303 to ``/ui/signin``). Actions are not here: the page's
script calls the JSON API's own routes (PUT of a run with a new forceUpdateTag, POST ``…/cancel``,
PUT of an import pipeline with its trigger's status), authenticated by the session cookie and
its CSRF header, with the role checks every caller gets (:mod:`airlock.api.deps`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.routing import BaseRoute, Mount

from airlock.api.routes.audit import AUDIT_ROLE
from airlock.api.tokens import Role, TokenStore
from airlock.api.ui import audit_view, charts, views
from airlock.api.ui.audit_view import AuditFilters
from airlock.api.ui.security import UiHeaders
from airlock.api.ui.session import Session, Sessions, check_csrf, check_signin_csrf, remember_signin, signin_value
from airlock.errors import ResourceNotFound, UsageError
from airlock.pipelines import arm

HERE = Path(__file__).parent
router = APIRouter(prefix="/ui", include_in_schema=False)
_templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))
_templates.filters["size"] = views.size
_templates.filters["moment"] = views.moment
_templates.filters["stamp"] = lambda text: views.moment(views.parse_time(text)) or text
MAX_FORM = 8192


def install(app: FastAPI, secret: str) -> list[BaseRoute]:
    """Serve the dashboard on ``app``; sessions are keyed from ``secret`` (the server's Owner token).
    Returns the routes added (for the request telemetry's route names)."""
    app.state.ui_sessions = Sessions(secret)
    app.include_router(router)
    static = Mount("/ui/static", app=StaticFiles(directory=HERE / "static"), name="ui-static")
    app.router.routes.append(static)
    app.add_middleware(UiHeaders)
    return [*router.routes, static]  # requests for static files are counted as /ui/static


def _session(request: Request) -> Session | None:
    sessions: Sessions = request.app.state.ui_sessions
    return sessions.open(request)


def _page(request: Request, session: Session, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = _templates.get_template(template).render(
        caller=session.caller,
        csrf=session.csrf,
        can_act=Role(session.caller.role).includes(Role.TRANSFER_PIPELINE_CONTRIBUTOR),
        api_version=arm.DEFAULT_API_VERSION,
        path=request.url.path,
        **context,
    )
    return HTMLResponse(html, status_code=status)


def _signin_first() -> RedirectResponse:
    return RedirectResponse("/ui/signin", status_code=303)


def _signin_page(request: Request, status: int = 200, error: str = "") -> HTMLResponse:
    csrf = signin_value(request)
    html = _templates.get_template("signin.html").render(csrf=csrf, error=error)
    response = HTMLResponse(html, status_code=status)
    remember_signin(request, response, csrf)
    return response


@router.get("/signin")
def signin_form(request: Request) -> HTMLResponse:
    return _signin_page(request)


@router.post("/signin")
async def signin(request: Request) -> Response:
    """Sign in with an API token given in the form (never in the URL); 401 with the form again when
    the token is not valid, 403 when the form's CSRF value is not the sign-in cookie's."""
    form = parse_qs((await request.body())[:MAX_FORM].decode("utf-8", "replace"))
    token = (form.get("token") or [""])[0].strip()
    if not check_signin_csrf(request, (form.get("csrf") or [""])[0]):
        return HTMLResponse("the sign-in form expired; reload it", status_code=403)
    store: TokenStore = request.app.state.tokens
    if not token or store.authenticate(token) is None:
        return _signin_page(request, 401, "that API token is not valid (or was revoked)")
    response = RedirectResponse("/ui", status_code=303)
    request.app.state.ui_sessions.sign_in(response, request, token)
    return response


@router.post("/signout")
async def signout(request: Request) -> Response:
    session = _session(request)
    if session is not None:
        form = parse_qs((await request.body())[:MAX_FORM].decode("utf-8", "replace"))
        check_csrf(session, (form.get("csrf") or [""])[0])
    response = RedirectResponse("/ui/signin", status_code=303)
    Sessions.sign_out(response)
    return response


@router.get("")
def overview(
    request: Request, rg: str = "", registry: str = "", pipeline: str = "", state: str = "", hours: int = 0
) -> Response:
    session = _session(request)
    if session is None:
        return _signin_first()
    filters = views.Filters(rg, registry, pipeline, state, max(0, hours))
    data = views.overview(request.app.state.control["plane"], filters, datetime.now(UTC))
    return _page(request, session, "overview.html", filters=filters, **data)


@router.get("/runs/{sub}/{rg}/{registry}/{name}")
def run_page(request: Request, sub: str, rg: str, registry: str, name: str) -> Response:
    session = _session(request)
    if session is None:
        return _signin_first()
    try:
        run = views.run_detail(request.app.state.control["plane"], sub, rg, registry, name, datetime.now(UTC))
    except ResourceNotFound as exc:
        return _page(request, session, "missing.html", status=404, message=str(exc))
    return _page(request, session, "run.html", run=run)


@router.get("/trigger")
def trigger_page(request: Request) -> Response:
    session = _session(request)
    if session is None:
        return _signin_first()
    pipelines = views.triggers(request.app.state.control["plane"], datetime.now(UTC))
    return _page(request, session, "trigger.html", pipelines=pipelines)


@router.get("/throughput")
def throughput_page(request: Request, window: str = "24h", pipeline: str = "") -> Response:
    session = _session(request)
    if session is None:
        return _signin_first()
    now = datetime.now(UTC)
    window = window if window in charts.WINDOWS else "24h"
    data = views.overview(request.app.state.control["plane"], views.Filters(pipeline=pipeline), now)
    rows = [r for r in data["runs"] if r["finished"] is not None]
    found, width = charts.buckets(rows, window, now)
    labels = [b.start.strftime("%H:%M" if window != "7d" else "%m-%d %H:%M") for b in found]
    scope = f"pipeline {pipeline}" if pipeline else "all pipelines"
    return _page(
        request,
        session,
        "throughput.html",
        window=window,
        windows=list(charts.WINDOWS),
        pipeline=pipeline,
        pipelines=data["choices"]["pipeline"],
        rate_chart=charts.bar_chart(
            f"MB/s, {scope}, last {window}", "MB/s", labels, [b.mb_per_s for b in found], "rate"
        ),
        runs_chart=charts.bar_chart(
            f"Runs per hour, {scope}, last {window}", "runs/h", labels, [b.per_hour(width) for b in found], "runs"
        ),
        table=[
            {"label": label, "bucket": b, "per_hour": b.per_hour(width)} for label, b in zip(labels, found, strict=True)
        ],
    )


def _audit_reader(request: Request) -> Session | Response:
    """The session, if its role may read the audit trail (the API route's role); else the answer."""
    session = _session(request)
    if session is None:
        return _signin_first()
    if not Role(session.caller.role).includes(AUDIT_ROLE):
        return HTMLResponse(f"the role {session.caller.role} may not read the audit trail", status_code=403)
    return session


@router.get("/audit")
def audit_page(request: Request, since: str = "", until: str = "", action: str = "", before: int = 0) -> Response:
    """The audit trail (newest first, a page at a time, filtered), its chain's verification, and a
    link to the period's export; read through the audit service, as ``GET /airlock/audit`` is."""
    session = _audit_reader(request)
    if not isinstance(session, Session):
        return session
    filters = AuditFilters(since.strip(), until.strip(), action.strip()[:64])
    plane = request.app.state.control["plane"]
    try:
        data = audit_view.audit(plane.audit, filters, before if before > 0 else None)
    except UsageError as exc:
        return _page(request, session, "audit.html", status=400, filters=filters, error=str(exc))
    return _page(request, session, "audit.html", filters=filters, error="", **data)


@router.get("/audit/export")
def audit_export(request: Request, since: str = "", until: str = "", action: str = "") -> Response:
    """The period's entries as JSON Lines, as ``airlock audit export`` writes them, as a download."""
    session = _audit_reader(request)
    if not isinstance(session, Session):
        return session
    filters = AuditFilters(since.strip(), until.strip(), action.strip()[:64])
    try:
        lines = request.app.state.control["plane"].audit.lines(
            since=filters.since, until=filters.until, action=filters.action
        )
    except UsageError as exc:
        return Response(str(exc) + "\n", status_code=400, media_type="text/plain")
    disposition = f'attachment; filename="{filters.filename()}"'
    return StreamingResponse(lines, media_type="application/jsonl", headers={"Content-Disposition": disposition})
