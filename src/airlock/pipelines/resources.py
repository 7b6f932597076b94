"""ARM shapes of ACR transfer resources: ids, request models, validation and defaults.

Request bodies are parsed with pydantic models that forbid unknown properties (a typo in an ARM
body must fail, not be ignored); the template keys ARM deployments carry (``type``, ``name``,
``apiVersion``, ``dependsOn``, ``location``) are accepted at the top level.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from airlock.errors import ResourceConflict, UsageError

PROVIDER = "Microsoft.ContainerRegistry"
REGISTRY_TYPE = f"{PROVIDER}/registries"
EXPORT_TYPE = f"{REGISTRY_TYPE}/exportPipelines"
IMPORT_TYPE = f"{REGISTRY_TYPE}/importPipelines"
RUN_TYPE = f"{REGISTRY_TYPE}/pipelineRuns"
IDENTITY_TYPE = "Microsoft.ManagedIdentity/userAssignedIdentities"
VAULT_TYPE = "Microsoft.KeyVault/vaults"

MAX_ARTIFACTS_PER_RUN = 50  # ACR's limit (spec §4.1)
NAME_RE = re.compile(r"[a-zA-Z0-9]{5,50}")  # ACR: 5-50 alphanumerics for registries, pipelines, runs
GENERIC_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,126}[A-Za-z0-9_]|[A-Za-z0-9]")  # identities
RG_RE = re.compile(r"[-\w._()]{1,90}")
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
        raise UsageError(f"invalid {what} name {name!r}: 5 to 50 letters and digits (no '-' or '_')")


def check_resource_group(name: str) -> None:
    if not RG_RE.fullmatch(name) or name.endswith("."):
        raise UsageError(f"invalid resource group name {name!r}")


def check_generic_name(name: str, what: str) -> None:
    if not GENERIC_NAME_RE.fullmatch(name):
        raise UsageError(f"invalid {what} name {name!r}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class _Envelope(BaseModel):
    # Keys an ARM template resource carries beside the body; accepted and ignored.
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    type: str | None = None
    name: str | None = None
    api_version: str | None = Field(default=None, alias="apiVersion")
    depends_on: list[Any] | None = Field(default=None, alias="dependsOn")
    location: str | None = None
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
    provisioning_state: str | None = Field(default=None, alias="provisioningState")  # read-only, ignored


class ImportPipelineProperties(_Strict):
    source: StorageModel
    trigger: TriggerModel = Field(default_factory=TriggerModel)
    options: Annotated[list[Option], Field(max_length=5)] = Field(default_factory=list)
    provisioning_state: str | None = Field(default=None, alias="provisioningState")
    source_trigger_report: Any = Field(default=None, alias="sourceTriggerReport")  # read-only, ignored


class PipelineBody(_Envelope):
    identity: IdentityModel = Field(default_factory=IdentityModel)
    properties: dict[str, Any]
    id: str | None = None


class RunSide(_Strict):
    type: str | None = None
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


class RunState(StrEnum):
    """A pipeline run's life, as ``properties.provisioningState`` and the store's state column show it."""

    QUEUED = "Queued"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELED = "Canceled"

    @property
    def terminal(self) -> bool:
        return self in (RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELED)


# Every move a run may make, in one place. A finished run starts again only when its request or
# forceUpdateTag changes (a new PUT); a running one may be re-written (progress) while it runs.
RUN_TRANSITIONS: dict[RunState | None, frozenset[RunState]] = {
    None: frozenset({RunState.QUEUED, RunState.RUNNING}),
    RunState.QUEUED: frozenset({RunState.RUNNING, RunState.FAILED, RunState.CANCELED}),
    RunState.RUNNING: frozenset({RunState.RUNNING, RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELED}),
    RunState.SUCCEEDED: frozenset({RunState.QUEUED, RunState.RUNNING}),
    RunState.FAILED: frozenset({RunState.QUEUED, RunState.RUNNING}),
    RunState.CANCELED: frozenset({RunState.QUEUED, RunState.RUNNING}),
}


def run_transition(current: str | None, to: RunState, run: str) -> RunState:
    """``to``, if a run in state ``current`` may move there.

    Raises:
        ResourceConflict: the move is not allowed (a finished run's result is never rewritten).
    """
    state = RunState(current) if current else None
    if to not in RUN_TRANSITIONS[state]:
        raise ResourceConflict(f"pipeline run {run} is {current}: it cannot become {to.value}")
    return to


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


def parse(model: type[BaseModel], body: Any, what: str) -> Any:
    """Validate ``body`` against ``model``; a UsageError names the first offending field."""
    if not isinstance(body, dict):
        raise UsageError(f"{what}: the request body must be a JSON object")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ())) or "body"
        raise UsageError(f"{what}: invalid value at '{where}': {err.get('msg')}") from None
