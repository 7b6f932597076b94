"""``airlock keyvault``: the embedded key vaults (as ``az keyvault``).

A vault created here answers for ``https://<name>.vault.azure.net/secrets/<secret>`` URIs, so
pipelines built from ACR walkthroughs (``--secret-uri``) read their SAS tokens from it unchanged;
secrets are encrypted at rest in ``AIRLOCK_HOME``. A pipeline's identity reads a secret only
after ``airlock keyvault set-policy`` granted it ``get``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from airlock.cli.argv import BOOLEAN_WORDS
from airlock.cli.arm import VAULT_PROVIDER, ArmClient, group_path, load_defaults, resource_group, subscription
from airlock.cli.common import GroupOpt, OutputOpt, QueryOpt, Row, accepted_for_az, dig, emit, group_of, hint, text
from airlock.cli.output import check_output
from airlock.errors import ResourceNotFound, UsageError

keyvault_app = typer.Typer(
    rich_markup_mode=None,
    help="Embedded key vaults: secrets (SAS tokens, registry passwords) that pipelines read by secret URI "
    "https://<vault>.vault.azure.net/secrets/<name>, with access policies per identity.\n\n"
    "Typical flow: `keyvault create`, `keyvault secret set`, then after creating a pipeline "
    "`keyvault set-policy` for its identity.",
    no_args_is_help=True,
)
secret_app = typer.Typer(
    rich_markup_mode=None,
    help="Secrets of an embedded key vault (values are encrypted at rest; only `secret show` prints one).",
    no_args_is_help=True,
)
keyvault_app.add_typer(secret_app, name="secret")

NameOpt = Annotated[str, typer.Option("--name", "-n", help="Name of the key vault: 3-24 letters, digits and '-'.")]
VaultOpt = Annotated[str, typer.Option("--vault-name", help="Name of the key vault.")]
SecretNameOpt = Annotated[str, typer.Option("--name", "-n", help="Name of the secret: letters, digits and '-'.")]


def _path(rg: str, vault: str = "") -> str:
    return f"{group_path(rg)}/providers/{VAULT_PROVIDER}" + (f"/{vault}" if vault else "")


def _columns(item: Any) -> Row:
    return {
        "NAME": text(item.get("name")),
        "RESOURCE GROUP": group_of(text(item.get("id"))),
        "LOCATION": text(item.get("location")),
        "VAULT URI": text(dig(item, "properties", "vaultUri")),
    }


def _secret_columns(item: Any) -> Row:
    return {
        "NAME": text(item.get("name")),
        "ID": text(item.get("id")),
        "ENABLED": text(dig(item, "attributes", "enabled")),
        "CREATED": text(dig(item, "attributes", "created")),
    }


def vault_group(client: ArmClient, vault: str, given: str | None) -> str:
    """The resource group of ``vault``: ``-g``, else the configured default, else found by listing the
    subscription's vaults (as az does when -g is left out)."""
    if given or load_defaults().get("group"):
        return resource_group(given)
    try:
        vaults = client.list(f"/subscriptions/{subscription()}/providers/{VAULT_PROVIDER}")
    except ResourceNotFound:  # a server without the subscription-wide list
        raise UsageError(
            f"cannot find key vault {vault}'s resource group: give it with -g "
            "(or set a default once: airlock configure --defaults group=<name>)"
        ) from None
    for doc in vaults:
        if text(doc.get("name")).lower() == vault.lower():
            return group_of(text(doc.get("id")))
    raise ResourceNotFound(f"key vault {vault} not found in subscription {subscription()}")


# -------------------------------------------------------------------------------- vaults


@keyvault_app.command("create")
def create(
    name: NameOpt,
    resource_group_name: GroupOpt = None,
    location: Annotated[str | None, typer.Option("--location", "-l", help="Location label.")] = None,
    enable_rbac_authorization: Annotated[
        str | None,
        typer.Option(
            "--enable-rbac-authorization",
            help="Accepted for az compatibility (alone, or true/false) and ignored: embedded vaults authorize "
            "with access policies (airlock keyvault set-policy).",
            show_default=False,
        ),
    ] = None,
    sku: Annotated[
        str | None,
        typer.Option("--sku", help="Accepted for az compatibility (standard/premium) and ignored.", show_default=False),
    ] = None,
    output: OutputOpt = "json",
    query: QueryOpt = None,
) -> None:
    """Create an embedded key vault (an existing one is kept, with its secrets).

    Example:

        airlock keyvault create -g myrg -n myvault --query properties.vaultUri -o tsv
    """
    check_output(output, query)
    if enable_rbac_authorization is not None:
        if enable_rbac_authorization.lower() not in BOOLEAN_WORDS:
            raise UsageError(f"--enable-rbac-authorization {enable_rbac_authorization!r}: must be true or false")
        accepted_for_az("--enable-rbac-authorization", "ignored, embedded vaults authorize with access policies")
    if sku is not None:
        if sku.lower() not in ("standard", "premium"):
            raise UsageError(f"--sku {sku!r}: must be standard or premium")
        accepted_for_az("--sku", "ignored, embedded vaults have no pricing tiers")
    rg = resource_group(resource_group_name)
    with ArmClient() as client:
        doc = client.put(_path(rg, name), {"location": location} if location else {})
    emit(doc, output, query, _columns)


@keyvault_app.command("show")
def show(
    name: NameOpt,
    resource_group_name: GroupOpt = None,
    output: OutputOpt = "json",
    query: QueryOpt = None,
) -> None:
    """Show a key vault: its vaultUri and access policies."""
    check_output(output, query)
    with ArmClient() as client:
        doc = client.get(_path(vault_group(client, name, resource_group_name), name))
    emit(doc, output, query, _columns)


@keyvault_app.command("list")
def list_(
    resource_group_name: GroupOpt = None,
    output: OutputOpt = "json",
    query: QueryOpt = None,
) -> None:
    """List the key vaults of a resource group."""
    check_output(output, query)
    rg = resource_group(resource_group_name)
    with ArmClient() as client:
        items = client.list(_path(rg))
    emit(items, output, query, _columns)


@keyvault_app.command("delete")
def delete(
    name: NameOpt,
    resource_group_name: GroupOpt = None,
    output: OutputOpt = "json",
    query: QueryOpt = None,
) -> None:
    """Delete a key vault and every secret in it (there is no soft delete)."""
    check_output(output, query)
    with ArmClient() as client:
        path = _path(vault_group(client, name, resource_group_name), name)
        client.get(path)  # checks the resource group too
        client.delete(path)


@keyvault_app.command("set-policy")
def set_policy(
    name: NameOpt,
    object_id: Annotated[
        str,
        typer.Option(
            "--object-id",
            help="Principal id to grant: a pipeline's identity.principalId, or an identity's properties.principalId.",
        ),
    ],
    secret_permissions: Annotated[
        list[str],
        typer.Option(
            "--secret-permissions",
            help="Space-separated secret permissions: get, list, set, delete, backup, restore, recover, purge, "
            "all. Pipelines need get. Replaces what the principal had.",
        ),
    ],
    resource_group_name: GroupOpt = None,
    output: OutputOpt = "json",
    query: QueryOpt = None,
) -> None:
    """Grant a principal permissions on the vault's secrets (as `az keyvault set-policy`).

    Example (the command `airlock acr export-pipeline create` prints):

        airlock keyvault set-policy -n myvault --secret-permissions get --object-id \\
            "$(airlock acr export-pipeline show -g myrg -r myregistry -n myexport \\
            --query identity.principalId -o tsv)"
    """
    check_output(output, query)
    with ArmClient() as client:
        path = _path(vault_group(client, name, resource_group_name), name)
        vault = client.get(path)
        policy = {
            "tenantId": dig(vault, "properties", "tenantId"),
            "objectId": object_id,
            "permissions": {"secrets": list(secret_permissions)},
        }
        doc = client.put(f"{path}/accessPolicies/add", {"properties": {"accessPolicies": [policy]}})
    emit(doc, output, query, _columns)


# -------------------------------------------------------------------------------- secrets


def _read_value(value: str | None, file: Path | None) -> str:
    if (value is None) == (file is None):
        raise UsageError("give the secret with --value or --file (one of them)")
    if file is not None:
        try:
            data = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"--file {file}: cannot read it ({exc.strerror or type(exc).__name__})") from None
        except UnicodeDecodeError:
            raise UsageError(f"--file {file}: not UTF-8 text") from None
        return data.rstrip("\r\n")
    assert value is not None
    return value


def _check_secret_value(secret: str, name: str) -> None:
    """Refuse what can only come from a broken script; warn about a '?'-prefixed value that is no SAS.

    An empty value, or a lone '?', is what ``--value "?$(generate-sas ...)"`` stores when the nested
    command failed or a variable was unset: stored, it fails every run later, far from the cause.

    Raises:
        UsageError: the value is empty, blank or only '?'.
    """
    if secret.strip() in ("", "?"):
        raise UsageError(
            f"secret {name}: the value is {'empty' if not secret.strip() else 'only ?'}: did the command that "
            "makes it (e.g. `storage container generate-sas`) fail, or is a variable unset? Nothing was stored"
        )
    if secret.startswith("?") and not ("sig=" in secret and "sv=" in secret):
        hint(
            f"warning: secret {name} starts with '?' like a SAS token but has no sv= and sig= fields; a pipeline "
            "that uses it as its SAS token will fail to authenticate"
        )


@secret_app.command("set")
def secret_set(
    vault_name: VaultOpt,
    name: SecretNameOpt,
    value: Annotated[
        str | None,
        typer.Option("--value", help="The secret value (visible in shell history; prefer --file)."),
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option("--file", "-f", help="Read the value from this file (one trailing newline is dropped)."),
    ] = None,
    resource_group_name: GroupOpt = None,
    output: OutputOpt = "json",
    query: QueryOpt = None,
) -> None:
    """Store a new version of a secret; prints its id and attributes, never the value.

    Example:

        airlock keyvault secret set --vault-name myvault -n exportsas \\
            --file export.sas
    """
    check_output(output, query)
    secret = _read_value(value, file)
    _check_secret_value(secret, name)
    with ArmClient() as client:
        path = _path(vault_group(client, vault_name, resource_group_name), vault_name)
        doc = client.put(f"{path}/secrets/{name}", {"properties": {"value": secret}})
    if isinstance(doc, dict):
        doc.pop("value", None)
    emit(doc, output, query, _secret_columns)


@secret_app.command("show")
def secret_show(
    vault_name: VaultOpt,
    name: SecretNameOpt,
    version: Annotated[str | None, typer.Option("--version", help="A version (default: the latest).")] = None,
    resource_group_name: GroupOpt = None,
    output: OutputOpt = "json",
    query: QueryOpt = None,
) -> None:
    """Show a secret with its value (as az does; e.g. --query value -o tsv)."""
    check_output(output, query)
    with ArmClient() as client:
        path = _path(vault_group(client, vault_name, resource_group_name), vault_name)
        doc = client.get(f"{path}/secrets/{name}" + (f"?version={version}" if version else ""))
    emit(doc, output, query, _secret_columns)


@secret_app.command("list")
def secret_list(
    vault_name: VaultOpt,
    resource_group_name: GroupOpt = None,
    output: OutputOpt = "json",
    query: QueryOpt = None,
) -> None:
    """List a vault's secrets (latest versions, without values)."""
    check_output(output, query)
    with ArmClient() as client:
        path = _path(vault_group(client, vault_name, resource_group_name), vault_name)
        items = client.list(f"{path}/secrets")
    emit(items, output, query, _secret_columns)


@secret_app.command("delete")
def secret_delete(
    vault_name: VaultOpt,
    name: SecretNameOpt,
    resource_group_name: GroupOpt = None,
    output: OutputOpt = "json",
    query: QueryOpt = None,
) -> None:
    """Delete a secret, every version of it."""
    check_output(output, query)
    with ArmClient() as client:
        path = _path(vault_group(client, vault_name, resource_group_name), vault_name)
        if client.delete(f"{path}/secrets/{name}") == 204:
            raise ResourceNotFound(f"key vault {vault_name}: secret '{name}' does not exist")
