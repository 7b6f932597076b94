"""The last step of an import: manifests and tags into the target registry.

Manifests go by digest, children first, many at once (``transfer.concurrent_publish``); then
tags, only for artifacts whose whole content is in place; referrers after their subjects, and then
indexed where the registry does not do it itself.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

from airlock.archive.format import CatalogArtifact
from airlock.errors import AirlockError
from airlock.oci.digest import Digest
from airlock.oci.manifest import Descriptor
from airlock.registry.client import RegistryClient
from airlock.transfer.concurrent_publish import push_manifests, push_tags
from airlock.transfer.graph import Closure
from airlock.transfer.options import Progress

log = logging.getLogger(__name__)


@dataclass(slots=True)  # one per artifact, for the whole import
class ArtifactEntry:
    """One artifact of the archive being imported: its catalog entry, and what became of it."""

    entry: CatalogArtifact
    digest: Digest
    closure: Closure | None = None
    error: str | None = None
    source_repository: str | None = None  # before --rename (a signature may name either)


def publish(
    client: RegistryClient,
    artifacts: list[ArtifactEntry],
    *,
    fail: Callable[[ArtifactEntry, AirlockError], None],
    progress: Progress,
) -> list[str]:
    """Push manifests by digest (children first), then tags; referrers after their subjects.

    Returns the references imported. An artifact whose push fails is handed to ``fail`` with the
    error and gets no tag; ``fail`` may raise instead (without ContinueOnErrors), which ends this.
    """
    imported: list[str] = []
    ordered = sorted(artifacts, key=lambda a: a.entry.subject is not None)
    pushed: set[tuple[str, Digest]] = set()
    # Subjects' manifests before their referrers' (a signature on an SBOM after the SBOM: a registry
    # that checks ``subject`` wants it there), each group children first, many at once.
    subjects = frozenset(a.entry.subject for a in ordered if a.entry.subject)
    for group in _referrer_levels(ordered):
        push_manifests(client, group, fail=fail, pushed=pushed, subjects=subjects)

    def done(art: ArtifactEntry) -> None:
        assert art.closure is not None
        imported.append(art.entry.reference)
        progress.artifact_done(art.entry.reference, str(art.digest), art.closure.size)

    # Tags last, and only for artifacts whose whole content is in place.
    push_tags(client, ordered, fail=fail, done=done)
    landed = set(imported)  # a set: thousands of artifacts would make a list lookup quadratic
    _index_referrers(client, [a for a in ordered if a.entry.reference in landed])
    return imported


def _index_referrers(client: RegistryClient, artifacts: list[ArtifactEntry]) -> None:
    """Keep imported referrers discoverable: a registry with the referrers API indexes them from
    their ``subject``; on one without it, list them in the subject's tag-schema index (which the
    archive lacks when the source had the API). Best effort: the artifacts are already imported."""
    groups: dict[tuple[str, Digest], list[Descriptor]] = {}
    for art in artifacts:
        top = art.closure.top if art.closure else None
        if top is None or top.subject is None:
            continue
        doc = json.loads(top.raw)
        annotations = doc.get("annotations") if isinstance(doc.get("annotations"), dict) else {}
        desc = Descriptor(
            top.media_type,
            top.digest,
            top.size,
            artifact_type=top.artifact_type,
            annotations={str(k): str(v) for k, v in annotations.items()},
        )
        groups.setdefault((art.entry.repository, top.subject.digest), []).append(desc)
    for (repo, subject), referrers in groups.items():
        try:
            if not client.has_referrers_api(repo, subject):
                client.add_to_referrers_tag(repo, subject, referrers)
        except AirlockError as exc:
            log.warning("referrers of %s@%s could not be indexed: %s", repo, subject, exc)


def _referrer_levels(artifacts: list[ArtifactEntry]) -> list[list[ArtifactEntry]]:
    """The artifacts grouped by how far each is from an artifact that refers to nothing: subjects
    first, then their referrers, then referrers of those (a subject outside the archive counts as 0)."""
    by_digest = {str(a.digest): a for a in artifacts}
    level: dict[int, int] = {}

    def depth(art: ArtifactEntry, seen: frozenset[int] = frozenset()) -> int:
        if id(art) in level:
            return level[id(art)]
        subject = by_digest.get(art.entry.subject) if art.entry.subject else None
        d = 0 if art.entry.subject is None else 1
        if subject is not None and id(subject) not in seen and subject is not art:
            d = 1 + depth(subject, seen | {id(art)})
        level[id(art)] = d
        return d

    groups: dict[int, list[ArtifactEntry]] = {}
    for art in artifacts:
        groups.setdefault(depth(art), []).append(art)
    return [groups[k] for k in sorted(groups)]
