"""``airlock identity create|show|list|delete``: user-assigned identities (as ``az identity``).

A pipeline created with ``--assign-identity <identity id or name>`` reads its secrets as this
identity: grant its ``principalId`` access with ``airlock keyvault set-policy``.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from airlock.cli.arm import IDENTITY_PROVIDER, group_path
from airlock.cli.common import Row, dig, group_of, text
from airlock.cli.kernel import Arm, command
from airlock.errors import ResourceNotFound

identity_app = typer.Typer(
    rich_markup_mode=None,
    help="User-assigned identities for pipelines (Microsoft.ManagedIdentity/userAssignedIdentities).\n\n"
    "Create one, give it to pipelines with `--assign-identity`, and grant its principalId access to key-vault "
    "secrets with `airlock keyvault set-policy`.",
    no_args_is_help=True,
)

NameOpt = Annotated[str, typer.Option("--name", "-n", help="Name of the identity.")]


def _path(rg: str, name: str = "") -> str:
    return f"{group_path(rg)}/providers/{IDENTITY_PROVIDER}" + (f"/{name}" if name else "")


def _columns(item: Any) -> Row:
    return {
        "NAME": text(item.get("name")),
        "RESOURCE GROUP": group_of(text(item.get("id"))),
        "LOCATION": text(item.get("location")),
        "PRINCIPAL ID": text(dig(item, "properties", "principalId")),
        "CLIENT ID": text(dig(item, "properties", "clientId")),
    }


@command(identity_app, "create", columns=_columns, group=True)
def create(
    name: NameOpt,
    arm: Arm,
    location: Annotated[str | None, typer.Option("--location", "-l", help="Location label.")] = None,
) -> Any:
    """Create a user-assigned identity (an existing one is returned unchanged).

    Example:

        airlock identity create -g myrg -n pipelineid \\
            --query properties.principalId -o tsv
    """
    return arm.client.put(_path(arm.group, name), {"location": location} if location else {})


@command(identity_app, "show", columns=_columns, group=True)
def show(name: NameOpt, arm: Arm) -> Any:
    """Show an identity: its principalId (for access policies) and clientId."""
    return arm.client.get(_path(arm.group, name))


@command(identity_app, "list", columns=_columns, group=True)
def list_(arm: Arm) -> Any:
    """List the identities of a resource group."""
    return arm.client.list(_path(arm.group))


@command(identity_app, "delete", group=True)
def delete(name: NameOpt, arm: Arm) -> None:
    """Delete an identity (pipelines that use it can no longer read their secrets)."""
    arm.client.get(_path(arm.group, name))
    if arm.client.delete(_path(arm.group, name)) == 204:
        raise ResourceNotFound(f"identity {name} not found in resource group {arm.group}")
