"""``airlock token create|list|revoke``: bearer tokens with roles for the REST API (Owner only).

Roles: ``Owner`` (everything), ``TransferPipelineContributor`` (create, run and delete pipelines
and runs; read the rest; no registries, identities, vaults or secrets), ``Reader`` (GET only, no
secret values). The token is shown once, at creation; only its hash is stored.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

import typer

from airlock.cli.common import Row, text
from airlock.cli.kernel import Arm, command

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


@command(token_app, "create", columns=_created_columns)
def create(
    name: NameOpt,
    arm: Arm,
    role: Annotated[
        str, typer.Option("--role", help="Owner, TransferPipelineContributor or Reader.")
    ] = "TransferPipelineContributor",
) -> Any:
    """Create a token; it is printed once (field ``token``) and cannot be shown again.

    Example:

        AIRLOCK_TOKEN=$(airlock token create -n ci --role TransferPipelineContributor --query token -o tsv)
    """
    # The token is shown in every format, the table too: this is its only showing.
    return arm.client.request("POST", "/airlock/tokens", {"name": name, "role": role})[1]


@command(token_app, "list", columns=_columns)
def list_(arm: Arm) -> Any:
    """List tokens (names, roles, creation times; never the tokens)."""
    doc = arm.client.get("/airlock/tokens")
    return doc.get("value", []) if isinstance(doc, dict) else []


@command(token_app, "revoke", output=False)
def revoke(name: NameOpt, arm: Arm) -> None:
    """Revoke a token at once: calls with it get 401 from then on."""
    arm.client.request("DELETE", f"/airlock/tokens/{quote(name, safe='')}")
