"""Manifests and tags of many artifacts pushed concurrently, children before parents.

One artifact's manifests are a few round-trips; thousands of small artifacts pushed one after
another spend their time waiting on the registry. Here every distinct (repository, manifest) of
the artifacts is pushed once, level by level — image manifests (no children) first, then the
indexes over them, and so on — with :data:`~airlock.transfer.concurrent_map.REQUESTS_IN_FLIGHT`
requests at once, so no manifest is pushed before the children it names. Tags come after all
manifests, also concurrently.

A tag is a PUT of the whole manifest, so an artifact's own manifest, when nothing else needs it
by digest (no other artifact names it as a child or as its subject), is pushed once, by its tag,
in the tag step: one request per small image instead of three (HEAD, PUT by digest, PUT by tag).

A referrers fallback index (the ``sha256-<hex>`` tag of a registry without the referrers API) is
not the archive's alone: the target's may list referrers of its own (a provenance referrer an
earlier import added, a signature made there). Where the target's tag points at another index, the
archive's entries are added to it (:meth:`RegistryClient.add_to_referrers_tag`) instead of the tag
being moved or refused; where it has none, or the same, the archive's index is tagged as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from airlock.errors import AirlockError
from airlock.oci.digest import Digest
from airlock.oci.manifest import Manifest
from airlock.oci.signatures import referrers_tag_subject
from airlock.registry.client import RegistryClient
from airlock.transfer.concurrent_map import ordered_map, settled
from airlock.transfer.platform_filter import omitted_of, push_manifest

if TYPE_CHECKING:  # publish imports this module
    from airlock.transfer.publish import ArtifactEntry

Key = tuple[str, Digest]  # (repository, manifest digest)


def push_manifests(
    client: RegistryClient,
    artifacts: list[ArtifactEntry],
    *,
    fail: Callable[[ArtifactEntry, AirlockError], None],
    pushed: set[Key],
    subjects: frozenset[str] = frozenset(),
) -> None:
    """Push the manifests of ``artifacts`` that have not failed (by digest), children first.

    A manifest already in ``pushed`` is not pushed again; each one pushed is added to it. An
    artifact's tagged top manifest that no other artifact needs by digest, and that is not among
    ``subjects`` (the digests other artifacts refer to), is left to :func:`push_tags`. An index
    the platform filter left partial is not sent when the registry already holds it (HEAD): a
    registry refuses it without its children. A failed push is handed to ``fail``
    for every artifact that needs that manifest, and their parents are not pushed; ``fail`` may
    raise instead (without ContinueOnErrors), which ends this after the requests in flight.
    Errors that are not AirlockErrors propagate.
    """
    manifests: dict[Key, Manifest] = {}
    users: dict[Key, list[ArtifactEntry]] = {}
    level: dict[Key, int] = {}
    for art in artifacts:
        if art.error is not None or art.closure is None:
            continue
        repo = art.entry.repository
        for m in art.closure.manifests:  # children before parents: a child's level is known first
            key = (repo, m.digest)
            users.setdefault(key, []).append(art)
            if key in manifests:
                continue
            manifests[key] = m
            level[key] = 1 + max((level.get((repo, c.digest), 0) for c in m.children), default=-1)

    def push(key: Key) -> None:
        repo, digest = key
        entry = users[key][0].entry
        if str(digest) == entry.digest and omitted_of(entry) and client.head_manifest(repo, str(digest)):
            return  # a partial index already there (else its refusal is explained by push_manifest)
        push_manifest(client, repo, manifests[key], entry)

    def by_tag(key: Key) -> bool:
        return str(key[1]) not in subjects and all(_tagged_top(a, key[1]) for a in users[key])

    for depth in sorted(set(level.values())):
        keys = [
            k
            for k in manifests
            if level[k] == depth and k not in pushed and any(a.error is None for a in users[k]) and not by_tag(k)
        ]
        for key, outcome in zip(keys, ordered_map(settled(push), keys), strict=True):
            if outcome is None:
                pushed.add(key)
                continue
            if not isinstance(outcome, AirlockError):
                raise outcome
            for art in users[key]:
                if art.error is None:
                    fail(art, outcome)


def _tagged_top(art: ArtifactEntry, digest: Digest) -> bool:
    """Whether ``digest`` is ``art``'s own tagged manifest, which its tag's PUT will push."""
    return art.entry.tag is not None and art.digest == digest and not omitted_of(art.entry)


def push_tags(
    client: RegistryClient,
    artifacts: list[ArtifactEntry],
    *,
    fail: Callable[[ArtifactEntry, AirlockError], None],
    done: Callable[[ArtifactEntry], None],
) -> None:
    """Tag each artifact that has not failed (an untagged one needs nothing), concurrently; call
    ``done`` for each success in the artifacts' order, ``fail`` for each failure (which may raise)."""
    ready = [a for a in artifacts if a.error is None and a.closure is not None]

    def tag(art: ArtifactEntry) -> None:
        if art.entry.tag is None or art.closure is None:
            return
        repo, top = art.entry.repository, art.closure.top
        subject = referrers_tag_subject(art.entry.tag) if top.is_index else None
        if subject is not None:
            now = client.head_manifest(repo, art.entry.tag)
            if now is not None and now.digest != top.digest:
                client.add_to_referrers_tag(repo, subject, list(top.children))
                return
        client.put_manifest(repo, art.entry.tag, top)

    for art, outcome in zip(ready, ordered_map(settled(tag), ready), strict=True):
        if outcome is None:
            done(art)
        elif isinstance(outcome, AirlockError):
            fail(art, outcome)
        else:
            raise outcome
