"""ARM shapes of ACR transfer resources: ids, request models, validation and defaults.

Request bodies are parsed with pydantic models that forbid unknown properties (a typo in an ARM
body must fail, not be ignored); the template keys ARM deployments carry (``type``, ``name``,
``apiVersion``, ``dependsOn``, ``location``) are accepted at the top level.

Every part of a resource id is checked before anything is stored or looked up (:func:`check_path`):
the subscription is a GUID (ARM's rule); a resource group is ARM's character set *in ASCII*
(ARM also admits Unicode letters; airlock does not, so that every id is plain ASCII in URLs,
``Azure-AsyncOperation`` headers and logs, and no two group names merely look alike); resource
names follow their kind's own rule. Nothing with a control character or a non-ASCII character
gets into an id.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from airlock.errors import UsageError, first_invalid
from airlock.pipelines import arm
from airlock.secrets.embedded import check_secret_name, check_vault_name
from airlock.transfer.selection import Selection

# The ARM type names, from the module the API and the CLI share.
PROVIDER = arm.CONTAINER_REGISTRY
REGISTRY_TYPE = arm.REGISTRY_TYPE
EXPORT_TYPE = arm.EXPORT_TYPE
IMPORT_TYPE = arm.IMPORT_TYPE
RUN_TYPE = arm.RUN_TYPE
IDENTITY_TYPE = arm.IDENTITY_TYPE
VAULT_TYPE = arm.VAULT_TYPE

MAX_ARTIFACTS_PER_RUN = 50  # ACR's limit (spec §4.1)
NAME_RE = re.compile(r"[a-zA-Z0-9]{5,50}")  # ACR: 5-50 alphanumerics for registries, pipelines, runs
GENERIC_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,126}[A-Za-z0-9_]|[A-Za-z0-9]")  # identities
RG_RE = re.compile(r"[-A-Za-z0-9_.()]{1,90}")  # ARM's set, ASCII only (see the module docstring)
SUBSCRIPTION_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
TRIGGER_RUN_RE = re.compile(r"[a-zA-Z0-9]{1,30}_[0-9a-f]{16}")  # service.trigger_run_name
TOKEN_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
PLACEHOLDER_DIGESTS = {"", "sha256@"}  # what ACR's templates send when there is no digest to check


@dataclass(frozen=True)
class RegistryRef:
    subscription: str
    resource_group: str
    registry: str

    @property
    def id(self) -> str:
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
            f"/providers/{PROVIDER}/registries/{self.registry}"
        )

    def child(self, kind: str, name: str) -> str:
        return f"{self.id}/{kind}/{name}"


def resource_id(subscription: str, resource_group: str, type_: str, name: str) -> str:
    return f"/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/{type_}/{name}"


def check_name(name: str, what: str) -> None:
    """Raises UsageError unless ``name`` has 5-50 alphanumerics (ACR's rule)."""
    if not NAME_RE.fullmatch(name):
        raise UsageError(f"invalid {what} name {name[:60]!r}: 5 to 50 letters and digits (no '-' or '_')")


def check_subscription(sub: str) -> None:
    """Raises UsageError unless ``sub`` is a GUID (ARM's subscription ids are)."""
    if not SUBSCRIPTION_RE.fullmatch(sub):
        raise UsageError(
            f"invalid subscription id {sub[:64]!r}: expected a GUID such as 00000000-0000-0000-0000-000000000000"
        )


def check_resource_group(name: str) -> None:
    """Raises UsageError unless ``name`` is 1-90 of ASCII letters, digits, '-', '_', '.', '(' and ')',
    not ending in '.' (ARM's rule, restricted to ASCII)."""
    if not RG_RE.fullmatch(name) or name.endswith("."):
        raise UsageError(
            f"invalid resource group name {name[:100]!r}: 1 to 90 ASCII letters, digits, '-', '_', '.', '(' "
            "and ')', not ending in '.'"
        )


def check_generic_name(name: str, what: str) -> None:
    """Raises UsageError unless ``name`` is 1-128 ASCII letters, digits, '-', '_', '.' (identities)."""
    if not GENERIC_NAME_RE.fullmatch(name):
        raise UsageError(f"invalid {what} name {name[:140]!r}: 1 to 128 ASCII letters, digits, '-', '_' and '.'")


def check_run_name(name: str) -> None:
    """A run's name: ACR's rule, or the form the source trigger gives the runs it starts."""
    if not TRIGGER_RUN_RE.fullmatch(name):
        check_name(name, "pipeline run")


# The name rule of each resource type that can appear in a path (lower-cased type segment).
_NAME_RULES = {
    "registries": lambda n: check_name(n, "registry"),
    "exportpipelines": lambda n: check_name(n, "export pipeline"),
    "importpipelines": lambda n: check_name(n, "import pipeline"),
    "pipelineruns": check_run_name,
    "userassignedidentities": lambda n: check_generic_name(n, "identity"),
    "vaults": check_vault_name,
    "secrets": check_secret_name,
}


def check_path(path: str) -> None:
    """Check every id part of an ARM ``path`` (percent-decoded): the subscription, the resource group,
    and each ``{type}/{name}`` pair after ``providers/{namespace}`` against its type's name rule.

    Decided on the path's structure, so a resource group may be called ``subscriptions``. Paths
    outside ``/subscriptions/`` are not ARM ids and pass.

    Raises:
        UsageError: naming the first invalid part.
    """
    parts = path.split("/")[1:]
    if len(parts) < 2 or parts[0].lower() != "subscriptions":
        return
    check_subscription(parts[1])
    rest = parts[2:]
    if len(rest) >= 2 and rest[0].lower() == "resourcegroups":
        check_resource_group(rest[1])
        rest = rest[2:]
    if len(rest) >= 2 and rest[0].lower() == "providers":
        pairs = rest[2:]
        for kind, name in zip(pairs[::2], pairs[1::2], strict=False):
            rule = _NAME_RULES.get(kind.lower())
            if rule is not None:
                rule(name)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class _Envelope(BaseModel):
    # Keys an ARM template resource carries beside the body; accepted and ignored.
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    type: str | None = None
    name: str | None = None
    api_version: str | None = Field(default=None, alias="apiVersion")
    depends_on: list[Any] | None = Field(default=None, alias="dependsOn")
    location: Annotated[str, Field(max_length=90)] | None = None
    tags: dict[str, str] | None = None


Option = Literal["OverwriteTags", "OverwriteBlobs", "DeleteSourceBlobOnSuccess", "ContinueOnErrors", "IncludeReferrers"]


class IdentityModel(_Strict):
    type: Literal["SystemAssigned", "UserAssigned", "SystemAssigned, UserAssigned", "None"] = "SystemAssigned"
    user_assigned_identities: dict[str, dict[str, Any]] | None = Field(default=None, alias="userAssignedIdentities")
    principal_id: str | None = Field(default=None, alias="principalId")  # read-only, ignored
    tenant_id: str | None = Field(default=None, alias="tenantId")  # read-only, ignored


class StorageModel(_Strict):
    type: str = "AzureStorageBlobContainer"
    uri: Annotated[str, Field(min_length=1, max_length=2048)]
    key_vault_uri: str | None = Field(default=None, alias="keyVaultUri")
    storage_access_mode: Literal["SasToken", "ManagedIdentity"] = Field(default="SasToken", alias="storageAccessMode")


class SourceTriggerModel(_Strict):
    status: Literal["Enabled", "Disabled"] = "Enabled"


class TriggerModel(_Strict):
    source_trigger: SourceTriggerModel = Field(default_factory=SourceTriggerModel, alias="sourceTrigger")


class ExportPipelineProperties(_Strict):
    target: StorageModel
    options: Annotated[list[Option], Field(max_length=5)] = Field(default_factory=list)
    # airlock's: runs write multi-volume bundles of volumes of at most this size ("4GiB"; archive.volumes)
    volume_size: Annotated[str, Field(min_length=1, max_length=32)] | None = Field(default=None, alias="volumeSize")
    # airlock's: runs sign their bundles with the PEM private key in this secret, read as the pipeline's identity
    signing_key_secret_uri: Annotated[str, Field(min_length=1, max_length=2048)] | None = Field(
        default=None, alias="signingKeySecretUri"
    )
    provisioning_state: str | None = Field(default=None, alias="provisioningState")  # read-only, ignored


class SignaturePolicyModel(_Strict):
    """airlock's extension ``properties.signaturePolicy``: what ``import --require-signed-by`` and
    ``--trusted-root`` require (transfer.signature_policy), PEM keys as text, the root as its JSON."""

    require_signed_by: Annotated[list[Annotated[str, Field(max_length=16384)]], Field(max_length=64)] = Field(
        default_factory=list, alias="requireSignedBy"
    )
    trusted_root: dict[str, Any] | None = Field(default=None, alias="trustedRoot")
    certificate_identity: Annotated[str, Field(max_length=1024)] | None = Field(
        default=None, alias="certificateIdentity"
    )
    certificate_oidc_issuer: Annotated[str, Field(max_length=1024)] | None = Field(
        default=None, alias="certificateOidcIssuer"
    )


class ImportPipelineProperties(_Strict):
    source: StorageModel
    trigger: TriggerModel = Field(default_factory=TriggerModel)
    options: Annotated[list[Option], Field(max_length=5)] = Field(default_factory=list)
    # airlock's extension: repository prefix map applied on import (transfer.rename), e.g. {"team/": "mirror/team/"}.
    rename: (
        Annotated[
            dict[Annotated[str, Field(min_length=1, max_length=255)], Annotated[str, Field(max_length=255)]],
            Field(max_length=64),
        ]
        | None
    ) = None
    # airlock's extension: PEM public keys; runs (the trigger's too) import only bundles one of them signed.
    trusted_keys: Annotated[list[Annotated[str, Field(min_length=1, max_length=4096)]], Field(max_length=16)] | None = (
        Field(default=None, alias="trustedKeys")
    )
    signature_policy: SignaturePolicyModel | None = Field(default=None, alias="signaturePolicy")  # airlock's
    provisioning_state: str | None = Field(default=None, alias="provisioningState")
    source_trigger_report: Any = Field(default=None, alias="sourceTriggerReport")  # read-only, ignored


class PipelineBody(_Envelope):
    identity: IdentityModel = Field(default_factory=IdentityModel)
    properties: dict[str, Any]
    id: str | None = None


class RunSide(_Strict):
    # ACR's only kind; another is refused, not ignored. "" is what ACR's own ARM template for an
    # export run sends as its (unused) source.
    type: Literal["AzureStorageBlob", ""] | None = None
    name: Annotated[str, Field(max_length=1024)] = ""
    uri: str | None = None  # echoed back by GET; ignored on PUT


class RunRequest(_Strict):
    pipeline_resource_id: Annotated[str, Field(min_length=1, max_length=1024)] = Field(alias="pipelineResourceId")
    artifacts: Annotated[list[Annotated[str, Field(max_length=512)]], Field(max_length=MAX_ARTIFACTS_PER_RUN)] = Field(
        default_factory=list
    )
    source: RunSide | None = None
    target: RunSide | None = None
    catalog_digest: str | None = Field(default=None, alias="catalogDigest")
    # airlock's extension (export runs): the rules of `airlock export --selection`, with any number of
    # artifacts; ACR's 50-artifact limit stays on ``artifacts``, which keeps ACR's meaning.
    selection: Selection | None = None


class RunProperties(_Strict):
    request: RunRequest
    force_update_tag: str | None = Field(default=None, alias="forceUpdateTag", max_length=256)
    provisioning_state: str | None = Field(default=None, alias="provisioningState")
    response: Any = None  # read-only, ignored


class RunBody(_Envelope):
    properties: RunProperties
    id: str | None = None


class RegistryProperties(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)  # ACR registries have many more properties
    login_server: Annotated[str, Field(min_length=1, max_length=512)] = Field(alias="loginServer")
    credentials: dict[str, str] | None = None  # {"username", "passwordSecretUri"}
    export_policy: dict[str, str] | None = Field(default=None, alias="exportPolicy")


class RegistryBody(_Envelope):
    model_config = ConfigDict(extra="allow", populate_by_name=True)
    properties: RegistryProperties
    id: str | None = None


SKUS = ("Basic", "Standard", "Premium")


def registry_sku(given: Any, registry: str) -> dict[str, str]:
    """ACR's ``sku`` of a registry: ``{"name": T, "tier": T}``, Premium (transfer's tier) by default.

    airlock has no tiers: the value is recorded so that ARM clients see what they set.

    Raises:
        UsageError: ``given`` is not ``{"name": "Basic"|"Standard"|"Premium"}``.
    """
    if given is None:
        return {"name": "Premium", "tier": "Premium"}
    name = given.get("name") if isinstance(given, dict) else None
    tier = next((t for t in SKUS if isinstance(name, str) and name.lower() == t.lower()), None)
    if tier is None:
        raise UsageError(f"registry {registry}: sku.name must be one of {', '.join(SKUS)}")
    return {"name": tier, "tier": tier}


class IdentityProperties(_Strict):
    # An existing Azure managed identity is registered by its ids; all three are GUIDs when given.
    client_id: str | None = Field(default=None, alias="clientId")
    principal_id: str | None = Field(default=None, alias="principalId")
    tenant_id: str | None = Field(default=None, alias="tenantId")


class IdentityBody(_Envelope):
    properties: IdentityProperties | None = None
    id: str | None = None


SecretList = Annotated[list[Annotated[str, Field(max_length=32)]], Field(max_length=16)]


class PolicyPermissions(_Strict):
    secrets: SecretList = Field(default_factory=list)
    # Key Vault's other planes: accepted so Azure's policy bodies pass; the embedded vault holds secrets only.
    keys: SecretList | None = None
    certificates: SecretList | None = None
    storage: SecretList | None = None


class AccessPolicy(_Strict):
    tenant_id: str | None = Field(default=None, alias="tenantId")
    object_id: Annotated[str, Field(min_length=1, max_length=128)] = Field(alias="objectId")
    application_id: str | None = Field(default=None, alias="applicationId")
    permissions: PolicyPermissions = Field(default_factory=PolicyPermissions)


Policies = Annotated[list[AccessPolicy], Field(max_length=1024)]  # Key Vault's limit


class VaultProperties(_Strict):
    access_policies: Policies | None = Field(default=None, alias="accessPolicies")
    # The rest of Key Vault's ARM properties: accepted (templates and GET results carry them), unused.
    tenant_id: str | None = Field(default=None, alias="tenantId")
    sku: dict[str, str] | None = None
    vault_uri: str | None = Field(default=None, alias="vaultUri")
    provisioning_state: str | None = Field(default=None, alias="provisioningState")
    create_mode: str | None = Field(default=None, alias="createMode")
    public_network_access: str | None = Field(default=None, alias="publicNetworkAccess")
    enabled_for_deployment: bool | None = Field(default=None, alias="enabledForDeployment")
    enabled_for_disk_encryption: bool | None = Field(default=None, alias="enabledForDiskEncryption")
    enabled_for_template_deployment: bool | None = Field(default=None, alias="enabledForTemplateDeployment")
    enable_soft_delete: bool | None = Field(default=None, alias="enableSoftDelete")
    enable_purge_protection: bool | None = Field(default=None, alias="enablePurgeProtection")
    enable_rbac_authorization: bool | None = Field(default=None, alias="enableRbacAuthorization")
    soft_delete_retention_in_days: int | None = Field(default=None, alias="softDeleteRetentionInDays")
    network_acls: dict[str, Any] | None = Field(default=None, alias="networkAcls")


class VaultBody(_Envelope):
    properties: VaultProperties | None = None
    id: str | None = None


class PolicyListProperties(_Strict):
    access_policies: Annotated[Policies, Field(min_length=1)] = Field(alias="accessPolicies")


class AccessPolicyBody(_Envelope):
    properties: PolicyListProperties
    id: str | None = None


class SecretProperties(_Strict):
    value: Annotated[str, Field(min_length=1, max_length=25 * 1024)]  # Key Vault's 25 KiB
    content_type: Annotated[str, Field(max_length=255)] | None = Field(default=None, alias="contentType")
    attributes: dict[str, Any] | None = None  # enabled/exp/nbf: accepted, not enforced by the embedded vault


class SecretBody(_Envelope):
    properties: SecretProperties
    id: str | None = None


def check_guid(value: str | None, where: str) -> str | None:
    """``value`` as a lower-case GUID (None stays None). Raises UsageError naming ``where``."""
    if value is None:
        return None
    if not SUBSCRIPTION_RE.fullmatch(value):
        raise UsageError(f"{where} must be a GUID")
    return value.lower()


def check_document(value: Any, what: str, depth: int = 0) -> None:
    """Raises UsageError unless ``value`` is JSON that can be stored and rendered back: at most 64
    levels deep, string keys, finite numbers, strings that encode as UTF-8 (no lone surrogates).

    The API refuses these when it parses a body; this check is for every other caller of the domain."""
    if depth > 64:
        raise UsageError(f"{what}: the body is nested deeper than 64 levels")
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise UsageError(f"{what}: a string in the body is not valid Unicode (a lone surrogate)") from None
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise UsageError(f"{what}: NaN and Infinity are not JSON numbers")
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise UsageError(f"{what}: object keys must be strings")
            check_document(key, what, depth + 1)
            check_document(item, what, depth + 1)
    elif isinstance(value, list):
        for item in value:
            check_document(item, what, depth + 1)
    elif value is not None and not isinstance(value, bool | int):
        raise UsageError(f"{what}: the body holds a {type(value).__name__}, which is not JSON")


def parse(model: type[BaseModel], body: Any, what: str) -> Any:
    """Validate ``body`` against ``model``; a UsageError names the first offending field.

    Raises:
        UsageError: not a JSON object, not storable JSON (:func:`check_document`), or invalid for ``model``.
    """
    if not isinstance(body, dict):
        raise UsageError(f"{what}: the request body must be a JSON object")
    check_document(body, what)
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        where, why = first_invalid(exc)
        where = (where or "body")[:200]  # keys are the caller's text
        raise UsageError(f"{what}: invalid value at {where!r}: {why}") from None
