"""The control plane's resources as typed models: what the store holds and the API returns.

One model per ARM resource (:class:`Registry`, :class:`UserAssignedIdentity`, :class:`KeyVault`,
:class:`ExportPipeline`, :class:`ImportPipeline`, :class:`PipelineRun`), field names exactly as
ARM spells them, and the run's state machine (:class:`RunState`, :func:`run_transition`).

Request bodies are not these: they are validated by the strict models of
:mod:`airlock.pipelines.resources`, and the services build these from them.

Round trips are exact. :meth:`Resource.document` dumps only the fields that were given or set
(``exclude_unset``), so a document read from the store and written back is unchanged, and a
``null`` that ARM shows (``keyVaultUri`` in ManagedIdentity mode) stays a ``null``. Each model
admits fields it does not name (``extra="allow"``): a newer release's fields survive an older
one's rewrite, and a registry keeps the ACR properties airlock does not read.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from airlock.errors import ResourceConflict
from airlock.pipelines import arm


class _Part(BaseModel):
    model_config = ConfigDict(extra="allow")


class Resource(_Part):
    """An ARM resource. ``TYPE`` is its ARM type, the store's ``type`` column."""

    TYPE: ClassVar[str] = ""
    id: str
    name: str
    type: str
    location: str | None = None
    tags: dict[str, str] | None = None

    def document(self) -> dict[str, Any]:
        """The ARM JSON document (only the fields given or set)."""
        return self.model_dump(mode="json", exclude_unset=True)

    @property
    def resource_group(self) -> str:
        """The resource group, as the id spells it."""
        return self.id.split("/")[4]

    @property
    def parent_id(self) -> str | None:
        """The registry a pipeline or run belongs to; None for a top-level resource."""
        parts = self.id.split("/")
        return "/".join(parts[:-2]) if len(parts) > 9 else None


R = TypeVar("R", bound=Resource)


# -- registries ------------------------------------------------------------------------------------


class Sku(_Part):
    name: str
    tier: str


class ExportPolicy(_Part):
    status: Literal["enabled", "disabled"] = "enabled"


class RegistryCredentials(_Part):
    username: str | None = None
    passwordSecretUri: str | None = None


class RegistryState(_Part):
    loginServer: str
    provisioningState: str = "Succeeded"
    exportPolicy: ExportPolicy | None = None
    credentials: RegistryCredentials | None = None


class Registry(Resource):
    TYPE: ClassVar[str] = arm.REGISTRY_TYPE
    sku: Sku | None = None
    properties: RegistryState

    @property
    def export_disabled(self) -> bool:
        return self.properties.exportPolicy is not None and self.properties.exportPolicy.status == "disabled"


# -- identities and vaults -------------------------------------------------------------------------


class IdentityIds(_Part):
    principalId: str
    clientId: str
    tenantId: str


class UserAssignedIdentity(Resource):
    TYPE: ClassVar[str] = arm.IDENTITY_TYPE
    properties: IdentityIds


class KeyVaultProperties(_Part):
    vaultUri: str
    tenantId: str
    accessPolicies: list[dict[str, Any]]
    sku: dict[str, str]
    provisioningState: str


class KeyVault(Resource):
    """An embedded key vault (kept by :class:`airlock.secrets.embedded.EmbeddedVaults`, not the store)."""

    TYPE: ClassVar[str] = arm.VAULT_TYPE
    properties: KeyVaultProperties


# -- pipelines -------------------------------------------------------------------------------------


class AssignedIdentity(_Part):
    principalId: str
    clientId: str


class PipelineIdentity(_Part):
    type: str
    principalId: str | None = None
    tenantId: str | None = None
    userAssignedIdentities: dict[str, AssignedIdentity] | None = None


class PipelineStorage(_Part):
    """A pipeline's container: ``target`` of an export pipeline, ``source`` of an import pipeline."""

    type: str = "AzureStorageBlobContainer"
    uri: str
    keyVaultUri: str | None = None
    storageAccessMode: Literal["SasToken", "ManagedIdentity"] = "SasToken"


class SourceTrigger(_Part):
    status: Literal["Enabled", "Disabled"] = "Enabled"


class PipelineTrigger(_Part):
    sourceTrigger: SourceTrigger = Field(default_factory=SourceTrigger)


class _PipelineState(_Part):
    options: list[str] = Field(default_factory=list)
    provisioningState: str = "Succeeded"
    warnings: list[str] | None = None


class ExportPipelineState(_PipelineState):
    target: PipelineStorage
    volumeSize: str | None = None  # airlock's extension: runs write volumes of at most this size (archive.volumes)
    signingKeySecretUri: str | None = None  # airlock's extension: runs sign with this secret's PEM key (archive.keys)


class ImportPipelineState(_PipelineState):
    source: PipelineStorage
    rename: dict[str, str] | None = None  # airlock's extension: see transfer.rename
    trustedKeys: list[str] | None = None  # airlock's extension: PEM public keys a bundle must be signed by
    signaturePolicy: dict[str, Any] | None = None  # airlock's extension: see transfer.signature_policy
    trigger: PipelineTrigger = Field(default_factory=PipelineTrigger)
    sourceTriggerReport: dict[str, Any] | None = None


class ExportPipeline(Resource):
    TYPE: ClassVar[str] = arm.EXPORT_TYPE
    KIND: ClassVar[str] = "exportPipelines"
    SIDE: ClassVar[str] = "target"
    identity: PipelineIdentity
    properties: ExportPipelineState

    @property
    def storage(self) -> PipelineStorage:
        return self.properties.target


class ImportPipeline(Resource):
    TYPE: ClassVar[str] = arm.IMPORT_TYPE
    KIND: ClassVar[str] = "importPipelines"
    SIDE: ClassVar[str] = "source"
    identity: PipelineIdentity
    properties: ImportPipelineState

    @property
    def storage(self) -> PipelineStorage:
        return self.properties.source

    @property
    def trigger_enabled(self) -> bool:
        return self.properties.trigger.sourceTrigger.status == "Enabled"


Pipeline = ExportPipeline | ImportPipeline
PIPELINE_KINDS: dict[str, type[ExportPipeline] | type[ImportPipeline]] = {
    "exportPipelines": ExportPipeline,
    "importPipelines": ImportPipeline,
}


# -- runs ------------------------------------------------------------------------------------------


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


class BlobName(_Part):
    type: str = "AzureStorageBlob"
    name: str


class PipelineRunRequest(_Part):
    pipelineResourceId: str
    artifacts: list[str] | None = None
    target: BlobName | None = None
    source: BlobName | None = None
    catalogDigest: str | None = None
    selection: dict[str, Any] | None = None  # airlock's extension: transfer.selection.Selection, as given


class RunProgress(_Part):
    percentage: str = "0"


class PipelineRunResponse(_Part):
    """What a run reports: ``status`` and ``progress`` while it runs, its results when it ends."""

    status: str = "Running"
    progress: RunProgress | None = None
    startTime: str | None = None
    finishTime: str | None = None
    pipelineRunErrorMessage: str | None = None
    catalogDigest: str | None = None
    exportedArtifacts: list[str] | None = None
    importedArtifacts: list[str] | None = None
    interrupted: bool | None = None  # airlock's: ended by a process that stopped (a trigger retries it)
    cancelRequested: bool | None = None  # airlock's: a cancel was asked for; the run stops at its next check
    correlationId: str | None = None  # airlock's: the x-ms-correlation-request-id of the PUT that started it


class PipelineRunState(_Part):
    request: PipelineRunRequest
    forceUpdateTag: str | None = None
    provisioningState: str = "Creating"
    response: PipelineRunResponse


class PipelineRun(Resource):
    TYPE: ClassVar[str] = arm.RUN_TYPE
    properties: PipelineRunState

    @property
    def is_export(self) -> bool:
        return self.properties.request.target is not None


# Every model the store holds, by its ARM type (vaults live in the embedded vault store).
STORED: dict[str, type[Resource]] = {
    m.TYPE: m for m in (Registry, UserAssignedIdentity, ExportPipeline, ImportPipeline, PipelineRun)
}
