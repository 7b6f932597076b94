"""API tokens (airlock's own, not ARM's: no api-version): create, list, revoke. Owner only."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response

from airlock.api import models as M
from airlock.api.deps import OWNER_OF_TOKENS, Tokens, body
from airlock.api.openapi import answers, request_body
from airlock.api.tokens import Caller, token_request
from airlock.pipelines import arm

router = APIRouter(tags=["tokens"])
OwnerOfTokens = Annotated[Caller, Depends(OWNER_OF_TOKENS)]


@router.post(
    arm.TOKENS_PATH,
    status_code=201,
    responses=answers({201: M.NewToken}, 403, 409, 413, 415, lro=False),
    openapi_extra=request_body(M.TokenBody),
)
def create_token(_: OwnerOfTokens, tokens: Tokens, data: Annotated[Any, Depends(body())]) -> JSONResponse:
    """A new token with a role; its value is in this answer only."""
    name, role = token_request(data)
    return JSONResponse({"name": name, "role": role, "token": tokens.create(name, role)}, status_code=201)


@router.get(arm.TOKENS_PATH, responses=answers({200: M.TokenList}, 403))
def list_tokens(_: OwnerOfTokens, tokens: Tokens) -> dict[str, Any]:
    return {"value": tokens.list()}


@router.delete(arm.TOKENS_PATH + "/{name}", status_code=204, responses=answers({204: None}, 403, 404))
def revoke_token(_: OwnerOfTokens, tokens: Tokens, name: str) -> Response:
    tokens.revoke(name)
    return Response(status_code=204)
