"""``airlock acr create|show|list|delete``: the registry resources pipelines belong to.

A registry resource stands for one OCI registry: its login server URL and, when it needs them, a
username and the key-vault secret URI of the password (read by the pipeline's identity at run time).
The pipeline command groups (``export-pipeline``, ``import-pipeline``, ``pipeline-run``) hang below.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from airlock.cli.argv import BOOLEAN_WORDS
from airlock.cli.arm import registry_path
from airlock.cli.common import REGISTRY_SCHEME_RULE, Row, accepted_for_az, dig, group_of, text
from airlock.cli.kernel import Arm, command
from airlock.cli.pipelines import export_app, import_app
from airlock.cli.runs import run_app
from airlock.errors import ResourceNotFound, UsageError

acr_app = typer.Typer(
    rich_markup_mode=None,
    help=(
        "Registries and their ACR transfer pipelines (as `az acr` with the acrtransfer extension).\n\n"
        "Start with `airlock acr create`, then `airlock acr export-pipeline create` / `import-pipeline create`, "
        "then `airlock acr pipeline-run create`."
    ),
    no_args_is_help=True,
)
acr_app.add_typer(export_app, name="export-pipeline")
acr_app.add_typer(import_app, name="import-pipeline")
acr_app.add_typer(run_app, name="pipeline-run")

NameOpt = Annotated[str, typer.Option("--name", "-n", help="Name of the registry: 5-50 letters and digits.")]


def _columns(item: Any) -> Row:
    return {
        "NAME": text(item.get("name")),
        "RESOURCE GROUP": group_of(text(item.get("id"))),
        "LOCATION": text(item.get("location")),
        "LOGIN SERVER": text(dig(item, "properties", "loginServer")),
        "SKU": text(dig(item, "sku", "name")),
        "EXPORT POLICY": text(dig(item, "properties", "exportPolicy", "status")),
        "PROVISIONING STATE": text(dig(item, "properties", "provisioningState")),
    }


@command(acr_app, "create", columns=_columns, group=True)
def create(
    name: NameOpt,
    arm: Arm,
    login_server: Annotated[
        str | None,
        typer.Option(
            "--login-server",
            help="URL of the registry, e.g. https://registry.example.com or http://127.0.0.1:5000. "
            f"{REGISTRY_SCHEME_RULE} Default: https://<name>.azurecr.io.",
        ),
    ] = None,
    username: Annotated[
        str | None, typer.Option("--username", help="Registry username (with --password-secret-uri).")
    ] = None,
    password_secret_uri: Annotated[
        str | None,
        typer.Option(
            "--password-secret-uri",
            help="Key-vault secret URI holding the registry password, "
            "e.g. https://myvault.vault.azure.net/secrets/regpassword. Pipelines read it as their identity.",
        ),
    ] = None,
    export_policy: Annotated[
        str | None,
        typer.Option(
            "--export-policy",
            help="enabled (default) or disabled. Disabled forbids export pipelines on this registry.",
        ),
    ] = None,
    location: Annotated[str | None, typer.Option("--location", "-l", help="Location label.")] = None,
    sku: Annotated[
        str | None,
        typer.Option(
            "--sku",
            help="Basic, Standard or Premium (default). airlock has no tiers: the value is recorded, as ACR shows "
            "it, and changes nothing (transfer pipelines need Premium in ACR).",
            show_default=False,
        ),
    ] = None,
    admin_enabled: Annotated[
        str | None,
        typer.Option(
            "--admin-enabled",
            help="Accepted for az compatibility (alone, or true/false) and ignored: the registry's own users "
            "authenticate.",
            show_default=False,
        ),
    ] = None,
) -> Any:
    """Create (or update) a registry resource.

    Example:

        airlock acr create -g myrg -n myregistry \\
            --login-server https://registry.example.com --sku Premium
    """
    rg = arm.group
    if bool(username) != bool(password_secret_uri):
        raise UsageError("--username and --password-secret-uri go together (the password itself is never an argument)")
    properties: dict[str, Any] = {"loginServer": login_server or f"https://{name.lower()}.azurecr.io"}
    if username:
        properties["credentials"] = {"username": username, "passwordSecretUri": password_secret_uri}
    if export_policy is not None:
        if export_policy.lower() not in ("enabled", "disabled"):
            raise UsageError(f"--export-policy {export_policy!r}: use enabled or disabled")
        properties["exportPolicy"] = {"status": export_policy.lower()}
    body: dict[str, Any] = {"properties": properties}
    if sku is not None:
        body["sku"] = {"name": sku}
        accepted_for_az("--sku", "airlock has no service tiers; the value is only recorded")
    if admin_enabled is not None:
        if admin_enabled.lower() not in BOOLEAN_WORDS:
            raise UsageError(f"--admin-enabled {admin_enabled!r}: must be true or false")
        accepted_for_az("--admin-enabled", "ignored, airlock uses the registry's own accounts")
    if location:
        body["location"] = location
    return arm.client.put(registry_path(rg, name), body)


@command(acr_app, "show", columns=_columns, group=True)
def show(name: NameOpt, arm: Arm) -> Any:
    """Show a registry resource."""
    return arm.client.get(registry_path(arm.group, name))


@command(acr_app, "list", columns=_columns, group=True)
def list_(arm: Arm) -> Any:
    """List the registry resources of a resource group."""
    return arm.client.list(registry_path(arm.group, "").rstrip("/"))


@command(acr_app, "delete", group=True)
def delete(
    name: NameOpt,
    arm: Arm,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not prompt for confirmation.")] = False,
) -> None:
    """Delete a registry resource, with its pipelines and pipeline runs (the registry's content is untouched)."""
    rg = arm.group
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError(f"deleting registry {name} also deletes its pipelines and runs: confirm with --yes")
        typer.confirm(f"Delete registry {name} with its pipelines and runs?", abort=True)
    path = registry_path(rg, name)
    arm.client.get(path)
    if arm.client.delete(path) == 204:
        raise ResourceNotFound(f"registry {name} not found in resource group {rg}")
