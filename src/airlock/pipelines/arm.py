"""ARM constants shared by the REST API (``airlock.api``) and its client (``airlock.cli``).

Both edges may import ``airlock.pipelines``; this module imports nothing, so the CLI can read it
without loading the control plane.
"""

from __future__ import annotations

# The ACR API versions that carry exportPipelines, importPipelines and pipelineRuns, all with the
# schema airlock serves: the published previews from 2019-12-01-preview (the first with transfer)
# to 2025-06-01-preview, and 2026-09-01-preview. The Azure SDK (azure-mgmt-containerregistry 14)
# sends 2025-03-01-preview.
API_VERSIONS: tuple[str, ...] = (
    "2019-12-01-preview",
    "2020-11-01-preview",
    "2021-06-01-preview",
    "2021-08-01-preview",
    "2021-12-01-preview",
    "2022-02-01-preview",
    "2023-01-01-preview",
    "2023-06-01-preview",
    "2023-08-01-preview",
    "2023-11-01-preview",
    "2024-11-01-preview",
    "2025-03-01-preview",
    "2025-05-01-preview",
    "2025-06-01-preview",
    "2026-09-01-preview",
)
DEFAULT_API_VERSION = "2025-06-01-preview"  # what the CLI sends
SDK_API_VERSION = "2025-03-01-preview"  # azure-mgmt-containerregistry 14.0.0's default for transfer

TERMINAL_STATES = ("Succeeded", "Failed", "Canceled")

CONTAINER_REGISTRY = "Microsoft.ContainerRegistry"
REGISTRY_TYPE = f"{CONTAINER_REGISTRY}/registries"
EXPORT_TYPE = f"{REGISTRY_TYPE}/exportPipelines"
IMPORT_TYPE = f"{REGISTRY_TYPE}/importPipelines"
RUN_TYPE = f"{REGISTRY_TYPE}/pipelineRuns"
IDENTITY_TYPE = "Microsoft.ManagedIdentity/userAssignedIdentities"
VAULT_TYPE = "Microsoft.KeyVault/vaults"

PIPELINE_KINDS = ("exportPipelines", "importPipelines")

# Path templates of the API, with FastAPI's {parameter} names.
SUBSCRIPTION_PATH = "/subscriptions/{sub}"
GROUP_PATH = SUBSCRIPTION_PATH + "/resourceGroups/{rg}"
REGISTRIES_PATH = GROUP_PATH + f"/providers/{REGISTRY_TYPE}"
REGISTRY_PATH = REGISTRIES_PATH + "/{registry}"
ALL_REGISTRIES_PATH = SUBSCRIPTION_PATH + f"/providers/{REGISTRY_TYPE}"
IDENTITIES_PATH = GROUP_PATH + f"/providers/{IDENTITY_TYPE}"
VAULTS_PATH = GROUP_PATH + f"/providers/{VAULT_TYPE}"
ALL_VAULTS_PATH = SUBSCRIPTION_PATH + f"/providers/{VAULT_TYPE}"
TOKENS_PATH = "/airlock/tokens"
