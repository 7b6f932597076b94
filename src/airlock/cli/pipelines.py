"""``airlock acr export-pipeline|import-pipeline|pipeline-run``: the acrtransfer commands of az.

Flags, short flags and request bodies are those of the ``acrtransfer`` extension: container and
secret URIs are lower-cased (``file://`` paths are kept as written: a path is case-sensitive), the
identity is SystemAssigned unless a user-assigned identity is given, ``-e`` sets the import source
trigger. The ``pipeline-run`` commands are in :mod:`airlock.cli.runs`.
"""

from __future__ import annotations

import os
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer

from airlock.cli import signatures, signing
from airlock.cli.arm import IDENTITY_PROVIDER, ArmClient, group_path, registry_path
from airlock.cli.common import RegistryOpt, Row, dig, hint, text
from airlock.cli.kernel import Arm, Columns, command
from airlock.cli.sync import RenameOpt, rename_map
from airlock.cli.volumes import PipelineVolumeSizeOpt, pipeline_volume_size
from airlock.errors import ResourceNotFound, UsageError
from airlock.storage.location import is_local_path, local_uri, parse_container_uri
from airlock.transfer.options import EXPORT_OPTIONS, IMPORT_OPTIONS, PipelineOption, parse_options

export_app = typer.Typer(
    rich_markup_mode=None,
    help="Export pipelines: where export runs write transfer blobs (a storage container) and how they "
    "authenticate (a SAS token in a key vault, or a managed identity).",
    no_args_is_help=True,
)
import_app = typer.Typer(
    rich_markup_mode=None,
    help="Import pipelines: the storage container import runs read transfer blobs from, and its source "
    "trigger (auto-import of new blobs, needs `airlock serve`).",
    no_args_is_help=True,
)

KINDS = {"export": "exportPipelines", "import": "importPipelines"}
UAI_MARKER = f"/providers/{IDENTITY_PROVIDER}/".lower()

ContainerOpt = Annotated[
    str,
    typer.Option(
        "--storage-container-uri",
        "-c",
        help="Storage account container URI of the source or target storage account container of the form "
        "https://$MyStorageAccount.blob.core.windows.net/$MyContainer (or file:///a/directory, or an Azurite "
        "http://127.0.0.1:10000/$Account/$MyContainer). Note that the URI may be different outside of AzureCloud.",
    ),
]
SecretOpt = Annotated[
    str | None,
    typer.Option(
        "--secret-uri",
        "-s",
        help="Keyvault secret URI containing a valid SAS token to the associated storage account of the form "
        "https://$MyKeyvault.vault.azure.net/secrets/$MySecret. Note that the URI may be different outside of "
        "AzureCloud. Required when --storage-access-mode is SasToken (not for file:// containers).",
    ),
]
ModeOpt = Annotated[
    str,
    typer.Option(
        "--storage-access-mode",
        "-m",
        help="Storage account access mode. Allowed values: ManagedIdentity, SasToken. When using ManagedIdentity, "
        "a managed identity is required (use --assign-identity).",
    ),
]
IdentityOpt = Annotated[
    str | None,
    typer.Option(
        "--assign-identity",
        "-i",
        help="Managed identity for the pipeline. Provide a user-assigned identity resource ID of the form "
        "/subscriptions/$MySubID/resourceGroups/$MyRG/providers/Microsoft.ManagedIdentity/userAssignedIdentities/"
        "$MyIdentity (or just its name, in the pipeline's resource group), or use [system] to provision a "
        "system-assigned identity (the default).",
    ),
]


def _pipeline_path(rg: str, registry: str, kind: str, name: str = "") -> str:
    return f"{registry_path(rg, registry)}/{KINDS[kind]}" + (f"/{name}" if name else "")


DISABLE_SOURCE_TRIGGER = "DisableSourceTrigger"


def _lower_uri(uri: str) -> str:
    # az lower-cases both URIs; a file:// path is case-sensitive, so it is kept.
    return uri if uri.lower().startswith("file:") else uri.lower()


def _identity(value: str | None, rg: str) -> dict[str, Any]:
    if value is None or value.strip().lower() == "[system]":
        return {"type": "SystemAssigned"}
    uai = value.strip()
    if "/" not in uai:  # a bare name: the identity in the pipeline's resource group
        uai = f"{group_path(rg)}/providers/{IDENTITY_PROVIDER}/{uai}"
    elif UAI_MARKER not in uai.lower():
        raise UsageError(
            f"--assign-identity {value!r}: expected [system], an identity name, or a resource ID "
            f"/subscriptions/<sub>/resourceGroups/<rg>/providers/{IDENTITY_PROVIDER}/<name>"
        )
    return {"type": "UserAssigned", "userAssignedIdentities": {uai: {}}}


def _principal(doc: dict[str, Any]) -> tuple[str, str]:
    """(principalId, clientId) of a pipeline's identity; '' when unknown."""
    identity = doc.get("identity") or {}
    for props in (identity.get("userAssignedIdentities") or {}).values():
        return text(props.get("principalId")), text(props.get("clientId"))
    return text(identity.get("principalId")), ""


def _permission_hints(doc: dict[str, Any], kind: str, rg: str) -> None:
    """What the pipeline's identity needs before a run can succeed (az prints role guidance too)."""
    storage = dig(doc, "properties", "target" if kind == "export" else "source") or {}
    principal, client_id = _principal(doc)
    secret_uri = text(storage.get("keyVaultUri"))
    if storage.get("storageAccessMode") == "ManagedIdentity":
        uri = text(storage.get("uri"))
        if uri.lower().startswith("file:"):
            return
        account = parse_container_uri(uri).account
        role = "Storage Blob Data Contributor"
        if kind == "import" and "DeleteSourceBlobOnSuccess" not in (dig(doc, "properties", "options") or []):
            role = "Storage Blob Data Reader"
        who = f"the managed identity with client id {client_id}" if client_id else "the airlock server's Azure identity"
        hint(
            f"ManagedIdentity mode: runs reach storage account {account} as {who}. Grant it the '{role}' role: "
            f'az role assignment create --assignee <its principal id> --role "{role}" --scope '
            f"/subscriptions/<storage subscription>/resourceGroups/<storage resource group>/providers/"
            f"Microsoft.Storage/storageAccounts/{account}"
        )
    elif secret_uri:
        vault = (urlsplit(secret_uri).hostname or "").split(".", 1)[0]
        hint(
            f"The pipeline's identity must be able to read the SAS token secret; grant it with: "
            f"airlock keyvault set-policy -n {vault} --object-id {principal} --secret-permissions get"
        )


def _create_pipeline(
    kind: str,
    arm: Arm,
    *,
    registry: str,
    name: str,
    container: str,
    secret: str | None,
    mode: str,
    options: list[str],
    identity: str | None,
    trigger_enabled: bool | None = None,
    rename: dict[str, str] | None = None,
    volume_size: str | None = None,
    extensions: dict[str, object] | None = None,
    signature_policy: dict[str, Any] | None = None,
) -> dict[str, Any]:
    rg = arm.group  # first, as it always was: a missing -g is said before any value of the pipeline's
    modes = {"sastoken": "SasToken", "managedidentity": "ManagedIdentity"}
    if mode.lower() not in modes:
        raise UsageError(f"--storage-access-mode {mode!r}: use SasToken or ManagedIdentity")
    mode = modes[mode.lower()]
    allowed = EXPORT_OPTIONS if kind == "export" else IMPORT_OPTIONS
    extra = {DISABLE_SOURCE_TRIGGER.lower()} if kind == "import" else set()
    words = [w for value in options for w in value.replace(",", " ").split()]
    if any(w.lower() == DISABLE_SOURCE_TRIGGER.lower() for w in words):
        # az lists it for import pipelines; it means the trigger's status, which is where it goes.
        if trigger_enabled is True:
            raise UsageError("--options DisableSourceTrigger contradicts --source-trigger-enabled True")
        trigger_enabled = False
    chosen = parse_options([w for w in words if w.lower() not in extra], allowed, kind=f"{kind} pipelines")
    options = [o.value for o in PipelineOption if o in chosen]  # ACR's spelling, in a stable order
    if is_local_path(container) and not os.path.isabs(os.path.expanduser(container)) and not arm.local:
        raise UsageError(
            f"--storage-container-uri {container!r}: a relative path would be resolved here, but the server at "
            "AIRLOCK_ENDPOINT reads paths on its own machine; give an absolute path"
        )
    container = _lower_uri(local_uri(container))
    parse_container_uri(container)  # a malformed URI says what is wrong before any other check
    if mode == "SasToken" and not secret and not container.startswith("file:"):
        raise UsageError(
            "--secret-uri/-s is required with --storage-access-mode SasToken: the key-vault secret holding the "
            "container's SAS token (or use --storage-access-mode ManagedIdentity)"
        )
    if mode == "ManagedIdentity" and secret:
        raise UsageError("--secret-uri/-s is only used with --storage-access-mode SasToken")
    storage: dict[str, Any] = {"type": "AzureStorageBlobContainer", "uri": container, "storageAccessMode": mode}
    if secret:
        storage["keyVaultUri"] = _lower_uri(secret)
    properties: dict[str, Any] = {"target" if kind == "export" else "source": storage, "options": options}
    if volume_size is not None:
        properties["volumeSize"] = pipeline_volume_size(volume_size)
    properties.update(extensions or {})
    if kind == "import":
        status = "Enabled" if trigger_enabled in (None, True) else "Disabled"
        properties["trigger"] = {"sourceTrigger": {"status": status}}
        if rename:
            properties["rename"] = rename
        if signature_policy:
            properties["signaturePolicy"] = signature_policy
    body = {"identity": _identity(identity, rg), "properties": properties}
    path = _pipeline_path(rg, registry, kind, name)
    arm.client.put(path, body)
    doc: dict[str, Any] = arm.client.get(path)
    for warning in dig(doc, "properties", "warnings") or []:
        hint(f"warning: {warning}")
    _permission_hints(doc, kind, rg)
    return doc


def get_pipeline(client: ArmClient, kind: str, rg: str, registry: str, name: str) -> dict[str, Any]:
    try:
        doc: dict[str, Any] = client.get(_pipeline_path(rg, registry, kind, name))
    except ResourceNotFound:
        raise ResourceNotFound(
            f"{kind.capitalize()} pipeline {name} not found on registry {registry} in the {rg} resource group."
        ) from None
    return doc


def _pipeline_columns(kind: str) -> Columns:
    def columns(item: Any) -> Row:
        side = "target" if kind == "export" else "source"
        row = {
            "NAME": text(item.get("name")),
            "PROVISIONING_STATE": text(dig(item, "properties", "provisioningState")),
            "STORAGE_ACCOUNT": text(dig(item, "properties", side, "uri")),
        }
        if kind == "import":
            row["SOURCE_TRIGGER"] = text(dig(item, "properties", "trigger", "sourceTrigger", "status"))
        return row

    return columns


def _parse_bool(value: str | None, flag: str) -> bool | None:
    if value is None:
        return None
    if value.lower() in ("true", "yes", "1", "enabled"):
        return True
    if value.lower() in ("false", "no", "0", "disabled"):
        return False
    raise UsageError(f"{flag} {value!r}: must be either True or False")


# -------------------------------------------------------------------------------- pipeline commands


def _pipeline_commands(app: typer.Typer, kind: str) -> None:
    what = f"{kind} pipeline"
    columns = _pipeline_columns(kind)

    def show(registry: RegistryOpt, name: str, arm: Arm) -> Any:
        return get_pipeline(arm.client, kind, arm.group, registry, name)

    def list_(registry: RegistryOpt, arm: Arm) -> Any:
        return arm.client.list(_pipeline_path(arm.group, registry, kind))

    def delete(registry: RegistryOpt, name: str, arm: Arm) -> None:
        get_pipeline(arm.client, kind, arm.group, registry, name)
        arm.client.delete(_pipeline_path(arm.group, registry, kind, name))

    # A local alias cannot be a (string) annotation: typer gets the object.
    name_opt = Annotated[str, typer.Option("--name", "-n", help=f"Name of the {what}.")]
    show.__annotations__["name"] = delete.__annotations__["name"] = name_opt
    command(app, "show", columns=columns, group=True, help=f"Show an {what}.")(show)
    command(app, "list", columns=columns, group=True, help=f"List the {what}s of a registry.")(list_)
    command(app, "delete", group=True, help=f"Delete an {what} (its pipeline runs stay, for the record).")(delete)


@command(export_app, "create", columns=_pipeline_columns("export"), group=True)
def export_create(
    registry: RegistryOpt,
    name: Annotated[str, typer.Option("--name", "-n", help="Name of the export pipeline.")],
    storage_container_uri: ContainerOpt,
    arm: Arm,
    secret_uri: SecretOpt = None,
    storage_access_mode: ModeOpt = "SasToken",
    options: Annotated[
        list[str] | None,
        typer.Option(
            "--options",
            "-z",
            help="Space-separated list of options. May only contain the following options: "
            "OverwriteBlobs,ContinueOnErrors,IncludeReferrers (airlock's: signatures, SBOMs and other referrers "
            "travel with each artifact).",
        ),
    ] = None,
    assign_identity: IdentityOpt = None,
    volume_size: PipelineVolumeSizeOpt = None,
    signing_key_secret_uri: signing.PipelineSigningKeyOpt = None,
) -> Any:
    """Create an export pipeline.

    Examples:

        airlock acr export-pipeline create -g myrg -r myregistry -n myexport \\
            -m SasToken -s https://myvault.vault.azure.net/secrets/exportsas \\
            -c https://srcacct.blob.core.windows.net/transfer

        airlock acr export-pipeline create -g myrg -r myregistry -n myexport \\
            -c /srv/transfer --options OverwriteBlobs ContinueOnErrors

        airlock acr export-pipeline create -g myrg -r myregistry -n myexport \\
            -c /srv/transfer --volume-size 4GiB

        airlock acr export-pipeline create -g myrg -r myregistry -n myexport \\
            -c /srv/transfer \\
            --signing-key-secret-uri https://myvault.vault.azure.net/secrets/bundlekey
    """
    return _create_pipeline(
        "export",
        arm,
        registry=registry,
        name=name,
        container=storage_container_uri,
        secret=secret_uri,
        mode=storage_access_mode,
        options=options or [],
        identity=assign_identity,
        volume_size=volume_size,
        extensions=signing.pipeline_signing(signing_key_secret_uri, None),
    )


@command(import_app, "create", columns=_pipeline_columns("import"), group=True)
def import_create(
    registry: RegistryOpt,
    name: Annotated[str, typer.Option("--name", "-n", help="Name of the import pipeline.")],
    storage_container_uri: ContainerOpt,
    arm: Arm,
    secret_uri: SecretOpt = None,
    storage_access_mode: ModeOpt = "SasToken",
    options: Annotated[
        list[str] | None,
        typer.Option(
            "--options",
            "-z",
            help="Space-separated list of options. May only contain the following options: "
            "DeleteSourceBlobOnSuccess,OverwriteTags,ContinueOnErrors,DisableSourceTrigger (the same as "
            "--source-trigger-enabled False).",
        ),
    ] = None,
    source_trigger_enabled: Annotated[
        str | None,
        typer.Option(
            "--source-trigger-enabled",
            "-e",
            help="Boolean parameter that determines whether source trigger is enabled on the pipeline. "
            "Must be either True or False. True by default.",
        ),
    ] = None,
    assign_identity: IdentityOpt = None,
    rename: RenameOpt = None,
    trusted_key: signing.TrustedKeyOpt = None,
    require_signed_by: signatures.RequireSignedByOpt = None,
    trusted_root: signatures.TrustedRootOpt = None,
    certificate_identity: signatures.CertificateIdentityOpt = None,
    certificate_oidc_issuer: signatures.CertificateIssuerOpt = None,
) -> Any:
    """Create an import pipeline.

    Examples:

        airlock acr import-pipeline create -g myrg -r myregistry -n myimport \\
            -m SasToken -s https://myvault.vault.azure.net/secrets/importsas \\
            -c https://dstacct.blob.core.windows.net/transfer \\
            --options DeleteSourceBlobOnSuccess OverwriteTags ContinueOnErrors \\
            --source-trigger-enabled False

        airlock acr import-pipeline create -g myrg -r myregistry -n myimport \\
            -c /srv/inbox --trusted-key sign.pub.pem --trusted-key next.pub.pem

    --rename is airlock's extension (properties.rename), honoured by every run, the source trigger's too;
    so are --trusted-key (properties.trustedKeys), --require-signed-by and --trusted-root
    (properties.signaturePolicy; see airlock import).
    """
    enabled = _parse_bool(source_trigger_enabled, "--source-trigger-enabled/-e")
    policy = signatures.pipeline_signature_policy(
        require_signed_by, trusted_root, certificate_identity, certificate_oidc_issuer
    )
    return _create_pipeline(
        "import",
        arm,
        registry=registry,
        name=name,
        container=storage_container_uri,
        secret=secret_uri,
        mode=storage_access_mode,
        options=options or [],
        identity=assign_identity,
        trigger_enabled=enabled,
        rename=renames.to_json() if (renames := rename_map(rename)) else None,
        extensions=signing.pipeline_signing(None, trusted_key),
        signature_policy=policy,
    )


_pipeline_commands(export_app, "export")
_pipeline_commands(import_app, "import")
