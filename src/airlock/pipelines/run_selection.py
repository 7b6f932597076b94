"""What an export run exports: ACR's ``artifacts`` plus airlock's ``selection`` extension, expanded."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airlock.pipelines.access import run_artifact
from airlock.pipelines.models import Registry
from airlock.registry.client import RegistryClient
from airlock.transfer.expansion import ExportPlan, plan_export
from airlock.transfer.selection import Selection, parse_selection


def run_plan(
    client: RegistryClient, artifacts: Sequence[str], selection: dict[str, Any] | None, registry: Registry
) -> ExportPlan:
    """The run's ``artifacts`` (ACR's, at most 50, checked on PUT) and its ``selection`` (any number),
    expanded against the pipeline's registry; an artifact may carry the registry's own host.

    Raises:
        UsageError: the stored selection no longer validates, or names another registry's artifact.
        NotFound, RegistryError: as :func:`airlock.transfer.expansion.expand`.
    """
    rules = Selection(artifacts=list(artifacts))
    if selection is not None:
        rules = rules.merged(parse_selection(selection, where="request.selection"))
    return plan_export(client, rules, parse=lambda text: run_artifact(text, registry))
