"""``airlock identity create|show|list|delete``: user-assigned identities (as ``az identity``).

A pipeline created with ``--assign-identity <identity id or name>`` reads its secrets as this
identity: grant its ``principalId`` access with ``airlock keyvault set-policy``.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from airlock.cli.arm import IDENTITY_PROVIDER, ArmClient, group_path, resource_group
from airlock.cli.common import GroupOpt, OutputOpt, QueryOpt, Row, dig, emit, group_of, text
from airlock.cli.output import check_output
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


@identity_app.command("create")
def create(
    name: NameOpt,
    resource_group_name: GroupOpt = None,
    location: Annotated[str | None, typer.Option("--location", "-l", help="Location label.")] = None,
    output: OutputOpt = "json",
    query: QueryOpt = None,
) -> None:
    """Create a user-assigned identity (an existing one is returned unchanged).

    Example:

        airlock identity create -g myrg -n pipelineid \\
            --query properties.principalId -o tsv
    """
    check_output(output, query)
    rg = resource_group(resource_group_name)
    with ArmClient() as client:
        doc = client.put(_path(rg, name), {"location": location} if location else {})
    emit(doc, output, query, _columns)


@identity_app.command("show")
def show(
    name: NameOpt,
    resource_group_name: GroupOpt = None,
    output: OutputOpt = "json",
    query: QueryOpt = None,
) -> None:
    """Show an identity: its principalId (for access policies) and clientId."""
    check_output(output, query)
    rg = resource_group(resource_group_name)
    with ArmClient() as client:
        doc = client.get(_path(rg, name))
    emit(doc, output, query, _columns)


@identity_app.command("list")
def list_(
    resource_group_name: GroupOpt = None,
    output: OutputOpt = "json",
    query: QueryOpt = None,
) -> None:
    """List the identities of a resource group."""
    check_output(output, query)
    rg = resource_group(resource_group_name)
    with ArmClient() as client:
        items = client.list(_path(rg))
    emit(items, output, query, _columns)


@identity_app.command("delete")
def delete(
    name: NameOpt,
    resource_group_name: GroupOpt = None,
    output: OutputOpt = "json",
    query: QueryOpt = None,
) -> None:
    """Delete an identity (pipelines that use it can no longer read their secrets)."""
    check_output(output, query)
    rg = resource_group(resource_group_name)
    with ArmClient() as client:
        client.get(_path(rg, name))
        if client.delete(_path(rg, name)) == 204:
            raise ResourceNotFound(f"identity {name} not found in resource group {rg}")
