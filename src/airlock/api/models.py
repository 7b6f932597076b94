"""The request and response models the OpenAPI declares.

Request bodies are the control plane's own models (:mod:`airlock.pipelines.resources`), which
validate them, except the registry PATCH (merged and checked here) and the token request.
Responses are the control plane's resource models (:mod:`airlock.pipelines.models`), in pages of
``value`` and ``nextLink``, plus the error envelope, operation statuses, secrets and tokens.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from airlock.pipelines import models as D
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

    value: list[D.Registry]
    nextLink: str | None = None


class ExportPipelineList(BaseModel):
    """A page of ExportPipeline documents; ``nextLink`` when more remain."""

    value: list[D.ExportPipeline]
    nextLink: str | None = None


class ImportPipelineList(BaseModel):
    """A page of ImportPipeline documents; ``nextLink`` when more remain."""

    value: list[D.ImportPipeline]
    nextLink: str | None = None


class PipelineRunList(BaseModel):
    """A page of PipelineRun documents; ``nextLink`` when more remain."""

    value: list[D.PipelineRun]
    nextLink: str | None = None


class IdentityList(BaseModel):
    """A page of Identity documents; ``nextLink`` when more remain."""

    value: list[D.UserAssignedIdentity]
    nextLink: str | None = None


class VaultList(BaseModel):
    """A page of Vault documents; ``nextLink`` when more remain."""

    value: list[D.KeyVault]
    nextLink: str | None = None


class SecretList(BaseModel):
    """A page of Secret documents; ``nextLink`` when more remain."""

    value: list[Secret]
    nextLink: str | None = None
