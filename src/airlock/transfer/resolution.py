"""Resolving what an export takes: each artifact (and its referrers) to its whole content graph,
many at once, with a platform filter on indexes; and, where the export must know up front, a HEAD
of every blob. Writing the archive is :mod:`airlock.transfer.export`'s."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from airlock.archive.format import (
    CatalogArtifact,
)
from airlock.errors import AirlockError, IntegrityError, NotFound, UsageError
from airlock.oci.digest import Digest
from airlock.oci.manifest import Descriptor, Manifest
from airlock.oci.reference import ArtifactReference
from airlock.oci.signatures import cosign_signature_tag
from airlock.registry.client import RegistryClient
from airlock.transfer.concurrent_map import GETS_IN_FLIGHT, REQUESTS_IN_FLIGHT, ordered_map, settled
from airlock.transfer.graph import Closure, closure
from airlock.transfer.options import Progress
from airlock.transfer.platform_filter import filter_index, record_filter
from airlock.transfer.selection import Platform, PlatformIndexMode

# Referrers of referrers (a signature on an SBOM) are followed this deep.
_REFERRER_DEPTH = 3


@dataclass(frozen=True)
class PlatformRules:
    by_ref: Mapping[ArtifactReference, Sequence[Platform]]
    mode: PlatformIndexMode


@dataclass
class Resolved:
    entry: CatalogArtifact
    closure: Closure
    repository: str


def resolve_all(
    client: RegistryClient,
    artifacts: Sequence[ArtifactReference],
    include_referrers: bool,
    keep_going: bool,
    failures: dict[str, str],
    progress: Progress,
    wanted: PlatformRules,
) -> list[Resolved]:
    """Resolve every artifact (and its referrers), several at once; the result is in the input's
    order, and without ContinueOnErrors the first failing artifact (in that order) raises."""

    def one(ref: ArtifactReference) -> tuple[Resolved, list[Resolved]]:
        found = resolve(client, ref, wanted)
        # A referrer that cannot be exported fails its subject's artifact too: exporting an
        # image without the signature the user asked for would be a silent loss.
        extra = referrers(client, found, progress) if include_referrers else []
        return found, extra

    out: list[Resolved] = []
    seen_refs: set[str] = set()
    for ref, got in zip(artifacts, ordered_map(settled(one), artifacts, workers=GETS_IN_FLIGHT), strict=True):
        if isinstance(got, BaseException):
            if not isinstance(got, AirlockError) or not keep_going:
                raise got
            failures[str(ref)] = str(got)
            continue
        found, extra = got
        for item in [found, *extra]:
            if item.entry.reference not in seen_refs:
                seen_refs.add(item.entry.reference)
                out.append(item)
    return out


def resolve(client: RegistryClient, ref: ArtifactReference, wanted: PlatformRules | None = None) -> Resolved:
    repo = ref.repository
    top = client.get_manifest(repo, ref.reference)
    if ref.digest is not None and ref.tag is not None:
        tagged = client.head_manifest(repo, ref.tag)
        if tagged is None or tagged.digest != ref.digest:
            raise IntegrityError(f"artifact {ref}: tag {ref.tag} does not point to {ref.digest}")

    def load(desc: Descriptor) -> Manifest:
        return client.get_manifest(repo, str(desc.digest))

    chosen = wanted.by_ref.get(ref) if wanted else None
    # None for an image manifest: the filter is about an index's platforms; an image travels as it is.
    filtered = filter_index(top, chosen, wanted.mode, where=f"artifact {ref}") if wanted and chosen else None
    top = filtered.top if filtered else top
    graph = closure(top, load, where=f"artifact {ref}", omitted=filtered.omitted if filtered else frozenset())
    reference = f"{repo}:{ref.tag}" if ref.tag else f"{repo}@{top.digest}"
    entry = CatalogArtifact(
        reference=reference,
        repository=repo,
        tag=ref.tag,
        digest=str(top.digest),
        mediaType=top.media_type,
        size=top.size,
        artifactType=top.artifact_type,
    )
    if filtered and chosen:
        record_filter(entry, filtered, chosen)
    return Resolved(entry, graph, repo)


def referrers(client: RegistryClient, subject: Resolved, progress: Progress) -> list[Resolved]:
    """Referrers of the artifact (and of its children), transitively, plus the tag-schema index.

    Raises:
        UsageError: the artifact is an index rewritten by a platform filter, and the source's index
            has referrers: they refer to it, not to the rewritten one, and would be lost unsaid.
    """
    repo = subject.repository
    if subject.entry.source_digest is not None:
        source = Digest.parse(subject.entry.source_digest)
        # OCI referrers (API or sha256-<hex> tag), and cosign's key-based signature tag of the index.
        if client.list_referrers(repo, source) or client.head_manifest(repo, cosign_signature_tag(source)):
            raise UsageError(
                f"{subject.entry.reference}: the source's index {source} has referrers (signatures, SBOMs), which "
                f"refer to it and not to the rewritten index {subject.entry.digest}: export with --platform-index "
                "keep to take them, or without --include-referrers to leave them out"
            )
    out: list[Resolved] = []
    queue = [(m.digest, 0) for m in subject.closure.manifests]
    visited: set[Digest] = set()
    while queue:
        digest, depth = queue.pop(0)
        if digest in visited or depth >= _REFERRER_DEPTH:
            continue
        visited.add(digest)
        for desc in client.list_referrers(repo, digest):
            r = resolve(client, ArtifactReference(repo, None, desc.digest))
            r.entry.subject = str(digest)
            out.append(r)
            queue.append((desc.digest, depth + 1))
        # Registries without the referrers API keep the list under a tag (OCI 1.1 tag schema);
        # carrying that tag over makes the referrers discoverable on such a target too.
        fallback = f"{digest.algorithm}-{digest.hex}"
        # cosign's key-based signatures of the artifact itself sit under a tag of their own.
        sig_tag = [cosign_signature_tag(digest)] if digest == subject.closure.top.digest else []
        for tag in [fallback, *sig_tag]:
            if client.head_manifest(repo, tag) is not None:
                try:
                    out.append(resolve(client, ArtifactReference(repo, tag, None)))
                except NotFound:
                    pass  # deleted between HEAD and GET
    if out:
        progress.note(f"{subject.entry.reference}: {len(out)} referrer artifact(s) included")
    return out


def check_blobs(
    client: RegistryClient,
    resolved: list[Resolved],
    keep_going: bool,
    failures: dict[str, str],
    concurrency: int,
) -> None:
    """HEAD every blob in parallel; drop (or fail on) artifacts whose blobs are missing or the wrong size."""
    wanted = {(r.repository, d): desc.size for r in resolved for d, desc in r.closure.blobs.items()}

    def head(key: tuple[str, Digest]) -> int | None:
        return client.blob_size(*key)

    sizes = dict(
        zip(wanted, ordered_map(settled(head), wanted, workers=max(concurrency, REQUESTS_IN_FLIGHT)), strict=True)
    )
    for r in list(resolved):
        for d, desc in r.closure.blobs.items():
            size = sizes[(r.repository, d)]
            problem = None
            if isinstance(size, BaseException):
                if not isinstance(size, AirlockError):
                    raise size
                if not keep_going:
                    raise size
                problem = str(size)
            elif size is None:
                problem = f"blob {d} is missing from repository {r.repository}"
            elif size != desc.size:
                problem = f"blob {d} is {size} bytes in the registry, its manifest says {desc.size}"
            if problem:
                if not keep_going:
                    raise IntegrityError(f"artifact {r.entry.reference}: {problem}")
                failures[r.entry.reference] = problem
                resolved.remove(r)
                break
