"""Inventory: walk a registry (or some of its repositories) into a :class:`~airlock.transfer.receipt.Receipt`.

Repositories come from ``/v2/_catalog`` (paged) unless named; each repository's tags are listed
(paged), each tag's manifest is read, and an index's children after it, recording every manifest
and blob digest. Tags are read ``concurrency`` at a time, with at most twice that many waiting,
so memory is the receipt's own (digests and sizes) plus that many manifests.

Untagged manifests are not listed by the distribution API, so the inventory sees what tags reach:
referrers are seen through their ``sha256-<hex>`` tag-schema index (the fallback airlock writes on
registries without the referrers API), not through the referrers API. A child an index names but the
registry lacks, or a tag deleted while we walk, is left out rather than failing the inventory.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor

from airlock.errors import IntegrityError, NotFound, RegistryError, UsageError
from airlock.oci.manifest import Manifest
from airlock.registry.client import RegistryClient
from airlock.transfer.graph import MAX_DEPTH
from airlock.transfer.receipt import Holdings, Receipt


def inventory(
    client: RegistryClient,
    *,
    repositories: Iterable[str] | None = None,
    rename: Mapping[str, str] | None = None,
    concurrency: int = 4,
) -> Receipt:
    """The receipt of ``client``'s registry: every repository of its catalog, or ``repositories``.

    A named repository that does not exist is recorded as holding nothing. ``rename`` is recorded as
    the prefix map an import applied (the names are the target's either way).

    Raises:
        UsageError: no ``repositories`` given and the registry has no ``/v2/_catalog``.
        RegistryError: the catalog or a tag list cannot be read, or a manifest read fails other than
            by being absent.
        IntegrityError: a manifest does not hash to its digest.
    """
    holdings = Holdings()
    lock = threading.Lock()

    def names() -> Iterator[str]:
        if repositories is not None:
            yield from dict.fromkeys(repositories)
            return
        try:
            yield from client.list_repositories()
        except RegistryError as exc:
            if exc.status not in (404, 405):
                raise
            raise UsageError(
                f"registry {client.base} has no repository catalog (/v2/_catalog answered {exc.status}): "
                "name the repositories to record (--repository)"
            ) from None

    def tags() -> Iterator[tuple[str, str]]:
        for repo in names():
            with lock:
                holdings.repository(repo)
            for tag in client.list_tags(repo):
                yield repo, tag

    def walk(repo: str, tag: str) -> None:
        try:
            top = client.get_manifest(repo, tag)
        except NotFound:
            return  # deleted since the tag list
        with lock:
            holdings.repository(repo)[0][tag] = top.digest.hex
        _record(client, holdings, lock, repo, top, 0)

    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="inventory") as pool:
        waiting: list[Future[None]] = []
        for repo, tag in tags():
            waiting.append(pool.submit(walk, repo, tag))
            if len(waiting) >= 2 * concurrency:
                waiting.pop(0).result()
        for f in waiting:
            f.result()
    return holdings.receipt(client.base, rename=rename)


def _record(
    client: RegistryClient, holdings: Holdings, lock: threading.Lock, repo: str, m: Manifest, depth: int
) -> None:
    if depth > MAX_DEPTH:
        raise IntegrityError(f"manifest {repo}@{m.digest}: indexes nest more than {MAX_DEPTH} deep")
    with lock:
        _tags, manifests, blobs = holdings.repository(repo)
        if m.digest.hex in manifests:
            return  # its whole graph is recorded already (content is immutable by digest)
        for b in m.blobs:
            blobs.add(b.digest.hex)
            holdings.blob_sizes[b.digest.hex] = b.size
    for child in m.children:
        try:
            cm = client.get_manifest(repo, str(child.digest))
        except NotFound:
            continue  # an index may name children the registry never got (a partial mirror)
        _record(client, holdings, lock, repo, cm, depth + 1)
    with lock:
        manifests.add(m.digest.hex)
