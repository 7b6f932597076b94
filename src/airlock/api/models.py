"""The request and response models the OpenAPI declares.

Request bodies are the control plane's own models (:mod:`airlock.pipelines.resources`), which
validate them, except the registry PATCH (merged and checked here) and the token request.
Response models describe the documents the control plane returns; ``extra="allow"`` where ARM
lets a resource carry more than airlock reads.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from airlock.pipelines import resources as R

# -- requests ------------------------------------------------------------------------------------


class ExportPipelineBody(R.PipelineBody):
    """PUT body of an export pipeline (ACR's ExportPipeline)."""

    properties: R.ExportPipelineProperties  # type: ignore[assignment]


class ImportPipelineBody(R.PipelineBody):
    """PUT body of an import pipeline (ACR's ImportPipeline)."""

    properties: R.ImportPipelineProperties  # type: ignore[assignment]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class RegistryPatch(_Body):
    """PATCH body of a registry (ACR's RegistryUpdateParameters): given ``tags`` and ``sku`` replace the
    stored ones, given ``properties`` are merged in; ``identity`` is accepted and ignored (an airlock
    registry has none)."""

    tags: dict[str, str] | None = None
    sku: dict[str, str] | None = None
    identity: dict[str, Any] | None = None
    properties: dict[str, Any] | None = None


class TokenBody(_Body):
    """POST body of /airlock/tokens (checked by :func:`airlock.api.tokens.token_request`)."""

    name: str
    role: str


# -- responses -----------------------------------------------------------------------------------


class _Doc(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class ErrorAdditionalInfo(BaseModel):
    type: str
    info: dict[str, Any]


class ErrorDetail(BaseModel):
    code: str
    message: str
    additionalInfo: list[ErrorAdditionalInfo] | None = None


class ErrorResponse(BaseModel):
    """ARM's error envelope."""

    error: ErrorDetail


class OperationError(BaseModel):
    code: str
    message: str


class OperationStatus(BaseModel):
    id: str
    name: str
    status: Literal["InProgress", "Succeeded", "Failed", "Canceled"]
    startTime: str | None = None
    endTime: str | None = None
    percentComplete: float | None = None
    error: OperationError | None = None


class Sku(BaseModel):
    name: str
    tier: str


class RegistryState(_Doc):
    loginServer: str
    provisioningState: str
    exportPolicy: dict[str, str] | None = None


class Registry(_Doc):
    id: str
    name: str
    type: str
    location: str | None = None
    sku: Sku
    properties: RegistryState


class UserAssignedIdentity(_Doc):
    principalId: str
    clientId: str


class PipelineIdentity(_Doc):
    type: str
    principalId: str | None = None
    tenantId: str | None = None
    userAssignedIdentities: dict[str, UserAssignedIdentity] | None = None


class PipelineStorage(_Doc):
    type: str
    uri: str
    keyVaultUri: str | None = None
    storageAccessMode: str


class ExportPipelineState(_Doc):
    target: PipelineStorage
    options: list[str]
    provisioningState: str
    warnings: list[str] | None = None


class ImportPipelineState(_Doc):
    source: PipelineStorage
    trigger: dict[str, Any]
    options: list[str]
    provisioningState: str
    sourceTriggerReport: dict[str, Any] | None = None
    warnings: list[str] | None = None


class ExportPipeline(_Doc):
    id: str
    name: str
    type: str
    location: str | None = None
    identity: PipelineIdentity
    properties: ExportPipelineState


class ImportPipeline(_Doc):
    id: str
    name: str
    type: str
    location: str | None = None
    identity: PipelineIdentity
    properties: ImportPipelineState


class PipelineRunState(_Doc):
    request: dict[str, Any]
    forceUpdateTag: str | None = None
    provisioningState: str
    response: dict[str, Any]


class PipelineRun(_Doc):
    id: str
    name: str
    type: str
    properties: PipelineRunState


class IdentityState(_Doc):
    principalId: str
    clientId: str
    tenantId: str


class Identity(_Doc):
    id: str
    name: str
    type: str
    location: str | None = None
    properties: IdentityState


class VaultState(_Doc):
    vaultUri: str
    tenantId: str
    accessPolicies: list[dict[str, Any]]
    sku: dict[str, str]
    provisioningState: str


class Vault(_Doc):
    id: str
    name: str
    type: str
    location: str | None = None
    properties: VaultState


class SecretAttributes(_Doc):
    enabled: bool
    created: str


class Secret(_Doc):
    id: str
    name: str
    attributes: SecretAttributes
    contentType: str | None = None
    value: str | None = None


class NewToken(BaseModel):
    name: str
    role: str
    token: str


class TokenInfo(BaseModel):
    name: str
    role: str
    created: str


class TokenList(BaseModel):
    value: list[TokenInfo]


class RegistryList(BaseModel):
    """A page of Registry documents; ``nextLink`` when more remain."""

    value: list[Registry]
    nextLink: str | None = None


class ExportPipelineList(BaseModel):
    """A page of ExportPipeline documents; ``nextLink`` when more remain."""

    value: list[ExportPipeline]
    nextLink: str | None = None


class ImportPipelineList(BaseModel):
    """A page of ImportPipeline documents; ``nextLink`` when more remain."""

    value: list[ImportPipeline]
    nextLink: str | None = None


class PipelineRunList(BaseModel):
    """A page of PipelineRun documents; ``nextLink`` when more remain."""

    value: list[PipelineRun]
    nextLink: str | None = None


class IdentityList(BaseModel):
    """A page of Identity documents; ``nextLink`` when more remain."""

    value: list[Identity]
    nextLink: str | None = None


class VaultList(BaseModel):
    """A page of Vault documents; ``nextLink`` when more remain."""

    value: list[Vault]
    nextLink: str | None = None


class SecretList(BaseModel):
    """A page of Secret documents; ``nextLink`` when more remain."""

    value: list[Secret]
    nextLink: str | None = None
