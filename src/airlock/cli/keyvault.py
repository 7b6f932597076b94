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
from airlock.cli.arm import VAULT_PROVIDER, group_path, load_defaults, subscription
from airlock.cli.common import Row, accepted_for_az, dig, group_of, hint, text
from airlock.cli.kernel import Arm, command
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


def vault_path(arm: Arm, vault: str) -> str:
    """The ARM path of ``vault``, in its resource group: ``-g``, else the configured default, else the one
    found by listing the subscription's vaults (as az does when -g is left out)."""
    return _path(_vault_group(arm, vault), vault)


def _vault_group(arm: Arm, vault: str) -> str:
    if arm.given_group or load_defaults().get("group"):
        return arm.group
    try:
        vaults = arm.client.list(f"/subscriptions/{subscription()}/providers/{VAULT_PROVIDER}")
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


@command(keyvault_app, "create", columns=_columns, group=True)
def create(
    name: NameOpt,
    arm: Arm,
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
) -> Any:
    """Create an embedded key vault (an existing one is kept, with its secrets).

    Example:

        airlock keyvault create -g myrg -n myvault --query properties.vaultUri -o tsv
    """
    if enable_rbac_authorization is not None:
        if enable_rbac_authorization.lower() not in BOOLEAN_WORDS:
            raise UsageError(f"--enable-rbac-authorization {enable_rbac_authorization!r}: must be true or false")
        accepted_for_az("--enable-rbac-authorization", "ignored, embedded vaults authorize with access policies")
    if sku is not None:
        if sku.lower() not in ("standard", "premium"):
            raise UsageError(f"--sku {sku!r}: must be standard or premium")
        accepted_for_az("--sku", "ignored, embedded vaults have no pricing tiers")
    return arm.client.put(_path(arm.group, name), {"location": location} if location else {})


@command(keyvault_app, "show", columns=_columns, group=True)
def show(name: NameOpt, arm: Arm) -> Any:
    """Show a key vault: its vaultUri and access policies."""
    return arm.client.get(vault_path(arm, name))


@command(keyvault_app, "list", columns=_columns, group=True)
def list_(arm: Arm) -> Any:
    """List the key vaults of a resource group."""
    return arm.client.list(_path(arm.group))


@command(keyvault_app, "delete", group=True)
def delete(name: NameOpt, arm: Arm) -> None:
    """Delete a key vault and every secret in it (there is no soft delete)."""
    path = vault_path(arm, name)
    arm.client.get(path)  # checks the resource group too
    arm.client.delete(path)


@command(keyvault_app, "set-policy", columns=_columns, group=True)
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
    arm: Arm,
) -> Any:
    """Grant a principal permissions on the vault's secrets (as `az keyvault set-policy`).

    Example (the command `airlock acr export-pipeline create` prints):

        airlock keyvault set-policy -n myvault --secret-permissions get --object-id \\
            "$(airlock acr export-pipeline show -g myrg -r myregistry -n myexport \\
            --query identity.principalId -o tsv)"
    """
    path = vault_path(arm, name)
    vault = arm.client.get(path)
    policy = {
        "tenantId": dig(vault, "properties", "tenantId"),
        "objectId": object_id,
        "permissions": {"secrets": list(secret_permissions)},
    }
    return arm.client.put(f"{path}/accessPolicies/add", {"properties": {"accessPolicies": [policy]}})


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


@command(secret_app, "set", columns=_secret_columns, group=True)
def secret_set(
    vault_name: VaultOpt,
    name: SecretNameOpt,
    arm: Arm,
    value: Annotated[
        str | None,
        typer.Option("--value", help="The secret value (visible in shell history; prefer --file)."),
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option("--file", "-f", help="Read the value from this file (one trailing newline is dropped)."),
    ] = None,
) -> Any:
    """Store a new version of a secret; prints its id and attributes, never the value.

    Example:

        airlock keyvault secret set --vault-name myvault -n exportsas \\
            --file export.sas
    """
    secret = _read_value(value, file)
    _check_secret_value(secret, name)
    doc = arm.client.put(f"{vault_path(arm, vault_name)}/secrets/{name}", {"properties": {"value": secret}})
    if isinstance(doc, dict):
        doc.pop("value", None)
    return doc


@command(secret_app, "show", columns=_secret_columns, group=True)
def secret_show(
    vault_name: VaultOpt,
    name: SecretNameOpt,
    arm: Arm,
    version: Annotated[str | None, typer.Option("--version", help="A version (default: the latest).")] = None,
) -> Any:
    """Show a secret with its value (as az does; e.g. --query value -o tsv)."""
    return arm.client.get(f"{vault_path(arm, vault_name)}/secrets/{name}" + (f"?version={version}" if version else ""))


@command(secret_app, "list", columns=_secret_columns, group=True)
def secret_list(vault_name: VaultOpt, arm: Arm) -> Any:
    """List a vault's secrets (latest versions, without values)."""
    return arm.client.list(f"{vault_path(arm, vault_name)}/secrets")


@command(secret_app, "delete", group=True)
def secret_delete(vault_name: VaultOpt, name: SecretNameOpt, arm: Arm) -> None:
    """Delete a secret, every version of it."""
    if arm.client.delete(f"{vault_path(arm, vault_name)}/secrets/{name}") == 204:
        raise ResourceNotFound(f"key vault {vault_name}: secret '{name}' does not exist")
