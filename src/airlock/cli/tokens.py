"""``airlock token create|list|revoke``: bearer tokens with roles for the REST API (Owner only).

Roles: ``Owner`` (everything), ``TransferPipelineContributor`` (create, run and delete pipelines
and runs; read the rest; no registries, identities, vaults or secrets), ``Reader`` (GET only, no
secret values). The token is shown once, at creation; only its hash is stored.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

import typer

from airlock.cli.arm import ArmClient
from airlock.cli.common import OutputOpt, QueryOpt, Row, emit, text
from airlock.cli.output import check_output

token_app = typer.Typer(
    rich_markup_mode=None,
    help="API tokens with roles (Owner, TransferPipelineContributor, Reader); needs the Owner token.",
    no_args_is_help=True,
)
NameOpt = Annotated[str, typer.Option("--name", "-n", help="A name for the token (to list and revoke it).")]


def _columns(item: Any) -> Row:
    return {"NAME": text(item.get("name")), "ROLE": text(item.get("role")), "CREATED": text(item.get("created"))}


def _created_columns(item: Any) -> Row:
    return {"NAME": text(item.get("name")), "ROLE": text(item.get("role")), "TOKEN": text(item.get("token"))}


@token_app.command("create")
def create(
    name: NameOpt,
    role: Annotated[
        str, typer.Option("--role", help="Owner, TransferPipelineContributor or Reader.")
    ] = "TransferPipelineContributor",
    output: OutputOpt = "json",
    query: QueryOpt = None,
) -> None:
    """Create a token; it is printed once (field ``token``) and cannot be shown again.

    Example:

        AIRLOCK_TOKEN=$(airlock token create -n ci --role TransferPipelineContributor --query token -o tsv)
    """
    check_output(output, query)
    with ArmClient() as client:
        _status, doc = client.request("POST", "/airlock/tokens", {"name": name, "role": role})
    emit(doc, output, query, _created_columns)  # the token is shown in every format: this is its only showing


@token_app.command("list")
def list_(output: OutputOpt = "json", query: QueryOpt = None) -> None:
    """List tokens (names, roles, creation times; never the tokens)."""
    check_output(output, query)
    with ArmClient() as client:
        doc = client.get("/airlock/tokens")
    emit(doc.get("value", []) if isinstance(doc, dict) else [], output, query, _columns)


@token_app.command("revoke")
def revoke(name: NameOpt) -> None:
    """Revoke a token at once: calls with it get 401 from then on."""
    with ArmClient() as client:
        client.request("DELETE", f"/airlock/tokens/{quote(name, safe='')}")
