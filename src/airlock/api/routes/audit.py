"""The audit trail (airlock's own route, not ARM's: no api-version): read it and verify its chain.

Readers, contributors and Owners may read it (each role includes Reader's; the trail holds ids,
digests and outcomes, never a secret value); nobody can change it through the API (there is no
write route). See ARCHITECTURE.md, "The audit trail".
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict

from airlock.api.deps import Plane, require
from airlock.api.openapi import answers
from airlock.api.tokens import Caller, Role

AUDIT_PATH = "/airlock/audit"
PAGE = 100
AUDIT_ROLE = Role.READER  # who may read the trail (the dashboard's Audit page asks the same)

router = APIRouter(tags=["audit"])
AuditReader = Annotated[Caller, Depends(require(AUDIT_ROLE, arm_route=False))]


class AuditEntryDoc(BaseModel):
    """One entry: what was done, by whom, to what, with which outcome, and its place in the chain."""

    model_config = ConfigDict(extra="allow")
    seq: int
    time: str
    principal: str
    action: str
    resources: list[str]
    artifacts: list[dict[str, Any]]
    catalogDigest: str | None = None
    result: str
    prevHash: str
    hash: str


class AuditPage(BaseModel):
    value: list[AuditEntryDoc]
    nextLink: str | None = None


class AuditVerification(BaseModel):
    model_config = ConfigDict(extra="allow")
    verified: bool
    entries: int
    head: str
    firstBroken: dict[str, Any] | None = None


@router.get(AUDIT_PATH, responses=answers({200: AuditPage}, 403))
def list_audit(
    request: Request,
    _: AuditReader,
    p: Plane,
    since: Annotated[
        str | None, Query(description="ISO 8601 time (UTC unless it says): entries at or after it.")
    ] = None,
    until: Annotated[str | None, Query(description="ISO 8601 time: entries before it.")] = None,
    action: Annotated[
        str | None, Query(max_length=64, description="An action (export.run), or a prefix and *.")
    ] = None,
    after: Annotated[int, Query(alias="$skiptoken", ge=0, description="The seq the page starts after.")] = 0,
    top: Annotated[int, Query(alias="$top", ge=1, le=1000, description="Entries per page.")] = PAGE,
) -> dict[str, Any]:
    """Entries in chain order, a page at a time (``nextLink`` while more may remain)."""
    entries = p.audit.page(after=after, top=top, since=since, until=until, action=action)
    out: dict[str, Any] = {"value": [e.to_json() for e in entries]}
    if len(entries) == min(top, 1000):
        out["nextLink"] = str(request.url.include_query_params(**{"$skiptoken": str(entries[-1].seq)}))
    return out


@router.get(AUDIT_PATH + "/verify", responses=answers({200: AuditVerification}, 403))
def verify_audit(
    _: AuditReader,
    p: Plane,
    expect_head: Annotated[
        str | None,
        Query(
            alias="expectHead",
            max_length=71,
            pattern=r"^sha256:[0-9a-f]{64}$",
            description="A head hash recorded earlier.",
        ),
    ] = None,
) -> dict[str, Any]:
    """Check the whole chain; ``verified`` false names the first broken entry (``firstBroken``)."""
    return p.audit.verify(expect_head).to_json()
