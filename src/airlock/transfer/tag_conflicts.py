"""Before an import uploads anything: which of its tags already point elsewhere in the target.

A tag that names other content than the archive's is a conflict (unless OverwriteTags). Asking
with one HEAD per tag costs a round trip per artifact, most of them for tags that do not exist
yet; here each repository's tag list is read once (a page per request) and only the tags it holds are
HEAD-checked, several at once. A repository the registry says does not exist (``NAME_UNKNOWN``)
has no tags; a registry that will not list a repository's tags, or answers a listing with a
404 that does not say so, gets a HEAD for each of its tags, as before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from airlock.errors import AirlockError, NotFound, RegistryError, TagConflict
from airlock.oci.signatures import referrers_tag_subject
from airlock.registry.client import ManifestInfo, RegistryClient
from airlock.transfer.concurrent_map import ordered_map, settled

if TYPE_CHECKING:  # publish imports what imports this module
    from airlock.transfer.publish import ArtifactEntry

log = logging.getLogger(__name__)


def check_tag_conflicts(
    client: RegistryClient,
    artifacts: list[ArtifactEntry],
    *,
    fail: Callable[[ArtifactEntry, AirlockError], None],
) -> None:
    """Hand every tagged artifact whose tag points to other content in the target to ``fail``
    (with a :class:`TagConflict`); ``fail`` may raise instead (without ContinueOnErrors).

    Raises:
        RegistryError: listing or HEAD-checking failed for a reason other than a refused listing.
    """
    # A referrers fallback index never conflicts: it is merged into the target's (concurrent_publish).
    tagged = [a for a in artifacts if a.entry.tag is not None and not _merged(a)]
    repositories = sorted({a.entry.repository for a in tagged})
    listed: dict[str, set[str] | None] = {}

    def tags_of(repo: str) -> list[str]:
        return client.list_tags(repo, strict=True)

    for repo, tags in zip(repositories, ordered_map(settled(tags_of), repositories), strict=True):
        if isinstance(tags, NotFound) and "NAME_UNKNOWN" in tags.codes:
            listed[repo] = set()  # the repository does not exist: none of its tags can conflict
        elif isinstance(tags, RegistryError) and not tags.transient and tags.status not in (401, 403):
            # A registry (or proxy) that will not list tags, or answers 404 for a listing without
            # saying the repository is unknown: a missed conflict would move a tag, so ask each tag.
            log.info("tags of %s cannot be listed (%s); checking each tag", repo, tags)
            listed[repo] = None
        elif isinstance(tags, BaseException):
            raise tags
        else:
            listed[repo] = set(tags)
    to_check = [a for a in tagged if (known := listed[a.entry.repository]) is None or a.entry.tag in known]

    def head(art: ArtifactEntry) -> ManifestInfo | None:
        assert art.entry.tag is not None
        return client.head_manifest(art.entry.repository, art.entry.tag)

    for art, existing in zip(to_check, ordered_map(settled(head), to_check), strict=True):
        if isinstance(existing, BaseException):
            raise existing
        if existing is not None and existing.digest != art.digest:
            fail(
                art,
                TagConflict(
                    f"artifact {art.entry.reference}: tag already points to {existing.digest} in the target "
                    f"registry, not {art.digest} (use the OverwriteTags option to move it)",
                    status=409,
                ),
            )


def _merged(art: ArtifactEntry) -> bool:
    # The manifest itself, not the catalog's word for it: push_tags merges only a real index.
    top = art.closure.top if art.closure is not None else None
    return top is not None and top.is_index and referrers_tag_subject(art.entry.tag) is not None
