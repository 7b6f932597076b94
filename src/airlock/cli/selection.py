"""``airlock export``'s selection flags: repositories with tag rules, platforms, ``--selection FILE``,
``--dry-run``; parsed into one :class:`~airlock.transfer.selection.Selection` and expanded here."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import typer

from airlock.errors import UsageError
from airlock.oci.reference import ArtifactReference, RegistryURL
from airlock.registry.client import RegistryClient
from airlock.transfer.expansion import ExportPlan, plan_export
from airlock.transfer.selection import Selection, load_selection_file, parse_selection

RepositoryOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--repository",
        help="Every tag of this repository (repeatable). A glob (team/*; ** crosses '/') expands through the "
        "registry's catalog. Narrowed by --tags, --semver, --keep, --platform.",
    ),
]
TagsOpt = Annotated[
    str | None,
    typer.Option("--tags", help="With --repository: only tags this regular expression (RE2 syntax) matches in full."),
]
SemverOpt = Annotated[
    str | None,
    typer.Option(
        "--semver",
        help="With --repository: only tags that are semantic versions in this range, e.g. '>=1.4 <2' "
        "(space: and, '||': or); other tags are left out.",
    ),
]
KeepOpt = Annotated[
    int | None,
    typer.Option(
        "--keep",
        min=1,
        help="With --repository: the N newest tags, by semver when all are versions, else by the image "
        "config's created time.",
    ),
]
PlatformOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--platform",
        help="os/arch[/variant] (repeatable): of a multi-arch index, only these platforms' manifests travel.",
    ),
]
PlatformIndexOpt = Annotated[
    str | None,
    typer.Option(
        "--platform-index",
        help="What an index filtered by --platform becomes: keep (default; the index as it is, importable only "
        "where the target accepts an index with missing children) or rewrite (a new, smaller index; its new "
        "digest is reported beside the old one).",
    ),
]
SelectionOpt = Annotated[
    str | None,
    typer.Option(
        "--selection",
        help="A YAML or JSON file of the same rules: repositories (name, tags, semver, keep, platforms), "
        "artifacts, platforms, platformIndex (see README, 'Selecting what to export').",
    ),
]
RunSelectionOpt = Annotated[
    str | None,
    typer.Option(
        "--selection",
        help="Export only: a YAML or JSON selection file (repositories with tags/semver/keep/platforms, "
        "artifacts), sent as properties.request.selection, airlock's extension: any number of artifacts.",
    ),
]
DryRunOpt = Annotated[
    bool,
    typer.Option(
        "--dry-run", help="Resolve the selection and check every blob, print what would be exported, write nothing."
    ),
]


def export_selection(
    *,
    artifacts: Sequence[str],
    repositories: Sequence[str],
    tags: str | None,
    semver_range: str | None,
    keep: int | None,
    platforms: Sequence[str],
    platform_index: str | None,
    selection_file: str | None,
) -> Selection:
    """The one selection the flags (and ``--selection FILE``) describe. Raises UsageError."""
    if (tags is not None or semver_range is not None or keep is not None) and not repositories:
        raise UsageError("--tags, --semver and --keep narrow --repository: give one (or put them in --selection)")
    if platform_index is not None and platform_index not in ("keep", "rewrite"):
        raise UsageError(f"--platform-index {platform_index!r}: keep or rewrite")
    doc: dict[str, Any] = {
        "artifacts": list(artifacts),
        "repositories": [
            {"name": r, "tags": tags, "semver": semver_range, "keep": keep, "platforms": list(platforms) or None}
            for r in repositories
        ],
    }
    if platforms:
        doc["platforms"] = list(platforms)
    if platform_index is not None:
        doc["platformIndex"] = platform_index
    flags = parse_selection(_without_none(doc), where="export")
    chosen = load_selection_file(selection_file).merged(flags) if selection_file else flags
    if chosen.empty and selection_file:
        raise UsageError(f"selection file {selection_file} selects nothing: it lists no repositories and no artifacts")
    if chosen.empty:
        raise UsageError("export needs --artifacts, --repository or --selection FILE")
    return chosen


def resolve(client: RegistryClient, selection: Selection, registry: RegistryURL, concurrency: int) -> ExportPlan:
    """Expand ``selection`` against the source registry. Raises what :func:`plan_export` raises."""

    def parse(text: str) -> ArtifactReference:
        return ArtifactReference.parse_for(text, registry, named_by="--source-registry")

    return plan_export(client, selection, parse=parse, concurrency=concurrency)


def _without_none(doc: dict[str, Any]) -> dict[str, Any]:
    doc["repositories"] = [{k: v for k, v in r.items() if v is not None} for r in doc["repositories"]]
    return doc


def run_selection(path: str) -> dict[str, Any]:
    """A selection file as a PipelineRun's ``properties.request.selection``. Raises UsageError."""
    return load_selection_file(path).to_json()
