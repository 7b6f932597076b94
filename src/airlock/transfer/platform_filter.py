"""Platform filtering of a multi-arch index, both ways, and what import does with the result.

``keep`` (the default) carries the index as it is — its digest, its signatures and the tag's
identity unchanged — with only the chosen platforms' manifests; the catalog lists the children
left out (``omittedManifests``, feature ``platforms`` in ``requires``), so the import's graph walk
expects them to be missing. The target registry must then accept an index whose children it
lacks; distribution (the CNCF registry) does not, and :func:`push_manifest` turns its refusal into one
line that names the artifact and the missing children and suggests ``rewrite``.

``rewrite`` writes a new index holding only the chosen entries (every other byte of each entry,
and of the index, as the source had it): the archive is self-contained and any registry takes it,
but the tag gets a new digest, reported beside the old one (``sourceDigest``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from airlock.archive.format import CatalogArtifact
from airlock.errors import IncompleteIndexRefused, NotFound, RegistryError
from airlock.oci.digest import Digest
from airlock.oci.manifest import Descriptor, Manifest
from airlock.registry.client import RegistryClient
from airlock.transfer.selection import Platform, PlatformIndexMode, describe_platform, kept_children


@dataclass(frozen=True)
class FilteredIndex:
    """What travels of an index filtered by platform."""

    top: Manifest  # the index written to the archive: the source's (keep) or a new one (rewrite)
    omitted: frozenset[Digest]  # children left out of the archive that ``top`` still names (keep)
    source_digest: Digest | None  # rewrite: the digest of the source's index


def filter_index(
    top: Manifest, platforms: Sequence[Platform], mode: PlatformIndexMode, *, where: str
) -> FilteredIndex | None:
    """Apply ``platforms`` to the entries of ``top`` (its own entries; nested indexes are entries
    like any other). None when ``top`` is an image manifest, which travels as it is.

    Raises:
        NotFound: no entry of the index is for any of ``platforms`` (the message lists what it has).
    """
    if not top.is_index:
        return None
    kept = kept_children(top.children, platforms)
    if not kept:
        has = ", ".join(sorted({describe_platform(c.platform) for c in top.children})) or "no manifests"
        wanted = ", ".join(map(str, platforms))
        raise NotFound(f"{where}: index {top.digest} has no manifest for {wanted} (it has {has})", status=404)
    if len(kept) == len(top.children):
        return FilteredIndex(top, frozenset(), None)
    if mode == "keep":
        return FilteredIndex(top, frozenset(c.digest for c in top.children if c not in kept), None)
    return FilteredIndex(_rewritten(top, kept, where=where), frozenset(), top.digest)


def _rewritten(top: Manifest, kept: list[Descriptor], *, where: str) -> Manifest:
    doc = json.loads(top.raw)
    wanted = {str(c.digest) for c in kept}
    doc["manifests"] = [e for e in doc["manifests"] if isinstance(e, dict) and e.get("digest") in wanted]
    raw = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
    return Manifest.parse(raw, media_type=top.media_type, where=f"{where} (rewritten index)")


def record_filter(entry: CatalogArtifact, filtered: FilteredIndex, platforms: Sequence[Platform]) -> None:
    """Set the catalog artifact's platform fields: what was asked, and what it changed."""
    entry.platforms = [str(p) for p in platforms]
    if filtered.omitted:
        entry.omitted_manifests = sorted(str(d) for d in filtered.omitted)
    if filtered.source_digest is not None:
        entry.source_digest = str(filtered.source_digest)


def platform_fields(entry: CatalogArtifact) -> dict[str, object]:
    """The catalog artifact's platform fields by their JSON names, for ``inspect`` (none: {})."""
    return entry.to_json(include={"platforms", "omitted_manifests", "source_digest"})


def omitted_of(entry: CatalogArtifact) -> frozenset[Digest]:
    """The children an archive's artifact names but left out (feature ``platforms``)."""
    return frozenset(Digest.parse(d) for d in entry.omitted_manifests or [])


def push_manifest(client: RegistryClient, repository: str, manifest: Manifest, entry: CatalogArtifact) -> None:
    """Put ``manifest`` by digest; when it is an index that travelled without some of its children
    and the registry refuses it, say so in one line.

    Raises:
        IncompleteIndexRefused: the registry refused an index whose left-out children it lacks.
        RegistryError: any other refusal, as ``put_manifest`` raised it.
    """
    try:
        client.put_manifest(repository, str(manifest.digest), manifest)
    except RegistryError as exc:
        omitted = omitted_of(entry)
        if exc.transient or not omitted or str(manifest.digest) != entry.digest:
            raise
        missing = sorted(str(d) for d in omitted if client.head_manifest(repository, str(d)) is None)
        if not missing:
            raise
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise IncompleteIndexRefused(
            f"artifact {entry.reference}: the target registry refuses index {manifest.digest} without the "
            f"manifests the platform filter ({', '.join(entry.platforms or [])}) left out, which {repository} "
            f"lacks: {shown}; export again with --platform-index rewrite (a new index of the chosen platforms "
            "only) or import the other platforms first",
            status=exc.status,
            codes=exc.codes,
        ) from None
