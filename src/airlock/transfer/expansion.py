"""A :class:`~airlock.transfer.selection.Selection` applied to a registry: the artifacts it names.

Globs expand through ``/v2/_catalog`` (read once, page by page), each repository's tags through
``tags/list``; ``keep`` by ``created`` reads each candidate's config (an index's: its first
child's), ``concurrency`` at a time. The result is a list of references, in selection order, each
with the platforms it was asked for, ready for :func:`airlock.transfer.export.export_artifacts`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from airlock.archive.format import MAX_ARTIFACTS
from airlock.errors import NotFound, UsageError
from airlock.oci.reference import ArtifactReference, validate_repository
from airlock.registry.client import RegistryClient
from airlock.transfer.selection import (
    Platform,
    PlatformIndexMode,
    RepositoryRule,
    Selection,
    glob_regex,
    is_glob,
    newest,
    parse_created,
)

# A config larger than this is not read for its ``created`` time (configs are KiBs).
MAX_CONFIG_FOR_CREATED = 4 * 1024 * 1024


@dataclass(frozen=True)
class Selected:
    """One artifact a selection names, and the platforms asked for it (empty: all)."""

    reference: ArtifactReference
    platforms: tuple[Platform, ...] = ()


def expand(
    client: RegistryClient,
    selection: Selection,
    *,
    parse: Callable[[str], ArtifactReference],
    concurrency: int = 4,
) -> list[Selected]:
    """The artifacts ``selection`` names in ``client``'s registry, each once (first mention wins,
    platforms merged), ``artifacts`` first, then repositories in order (with ``keep``: newest first).

    ``parse`` turns an ``artifacts`` entry into a reference (the caller's rules for hosts).

    Raises:
        UsageError: an entry that is not a valid reference or repository name.
        NotFound: a glob that matches no repository, or a repository without a tag.
        RegistryError: the catalog, a tag list, a manifest or a config could not be read.
    """
    default = tuple(Platform.parse(p) for p in selection.platforms or [])
    out: dict[ArtifactReference, tuple[Platform, ...]] = {}

    def add(ref: ArtifactReference, platforms: tuple[Platform, ...]) -> None:
        if ref in out:
            # Asked twice: all platforms if either asked for all, else both sets.
            out[ref] = () if not out[ref] or not platforms else tuple(dict.fromkeys((*out[ref], *platforms)))
        else:
            out[ref] = platforms

    for text in selection.artifacts:
        add(parse(text), default)
    catalog: list[str] | None = None
    for rule in selection.repositories:
        platforms = rule.platform_set or default
        if is_glob(rule.name):
            catalog = list(client.list_repositories()) if catalog is None else catalog
            pattern = glob_regex(rule.name)
            names = [r for r in catalog if pattern.fullmatch(r)]
            if not names:
                raise NotFound(
                    f"repository glob {rule.name} matches none of the registry's {len(catalog)} repositories"
                )
        else:
            names = [validate_repository(rule.name)]
        for repo in names:
            tags = client.list_tags(repo)
            if not tags and not is_glob(rule.name):
                raise NotFound(f"repository {repo} has no tags in the source registry", status=404)
            for tag in _chosen(client, repo, rule, tags, concurrency):
                add(ArtifactReference(repo, tag, None), platforms)
    return [Selected(ref, platforms) for ref, platforms in out.items()]


def _chosen(client: RegistryClient, repo: str, rule: RepositoryRule, tags: list[str], concurrency: int) -> list[str]:
    candidates = [t for t in tags if rule.wants(t)]
    if rule.keep is None:
        return candidates

    def created(wanted: Sequence[str]) -> dict[str, datetime | None]:
        with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(wanted)))) as pool:
            return dict(zip(wanted, pool.map(lambda t: created_time(client, repo, t), wanted), strict=True))

    return newest(candidates, created, rule.keep)


def created_time(client: RegistryClient, repo: str, tag: str) -> datetime | None:
    """The ``created`` time in the config of ``repo:tag`` (an index's: its first child's); None
    when it has none (artifacts, configs without the field, or a config too large to read).

    Raises:
        RegistryError, IntegrityError: a manifest or the config could not be read or verified.
    """
    manifest = client.get_manifest(repo, tag)
    if manifest.is_index:
        if not manifest.children:
            return None
        manifest = client.get_manifest(repo, str(manifest.children[0].digest))
        if manifest.is_index:
            return None
    if not manifest.blobs or manifest.blobs[0].size > MAX_CONFIG_FOR_CREATED:
        return None
    raw = b"".join(client.iter_blob(repo, manifest.blobs[0]))  # verified by digest and size as it streams
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    return parse_created(doc.get("created")) if isinstance(doc, dict) else None


@dataclass(frozen=True)
class ExportPlan:
    """A selection expanded: what ``export_artifacts`` takes as ``artifacts``, ``platforms`` and
    ``platform_index``."""

    references: list[ArtifactReference]
    platforms: dict[ArtifactReference, tuple[Platform, ...]]
    platform_index: PlatformIndexMode


def plan_export(
    client: RegistryClient,
    selection: Selection,
    *,
    parse: Callable[[str], ArtifactReference],
    concurrency: int = 4,
) -> ExportPlan:
    """:func:`expand`, as an export takes it.

    Raises:
        NotFound: the selection expands to nothing (every tag filtered out).
        UsageError: it expands to more artifacts than one archive holds; and what ``expand`` raises.
    """
    selected = expand(client, selection, parse=parse, concurrency=concurrency)
    if not selected:
        raise NotFound("the selection names no artifact: its repositories have no tag that passes its filters")
    if len(selected) > MAX_ARTIFACTS:
        raise UsageError(f"the selection names {len(selected)} artifacts; one archive holds at most {MAX_ARTIFACTS}")
    return ExportPlan(
        [s.reference for s in selected],
        {s.reference: s.platforms for s in selected if s.platforms},
        selection.platform_index,
    )
