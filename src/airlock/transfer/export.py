"""Export: artifacts from a registry → one transfer archive in a storage blob.

Steps: resolve every artifact (and its referrers) to its full content graph, many at once; with
ContinueOnErrors, check that every blob exists at its declared size (so a missing blob fails its
artifact, which is left out, before anything is written; without it, the verified download fails
the export instead, before the commit); write catalog, layout, index and manifests; then stream
configs and layers, fetched several at a time (many, when small), into the staged blob; commit.
Nothing is visible at the target until the commit.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from airlock import __version__
from airlock.archive.format import (
    BLOB_PREFIX,
    CATALOG_MEDIA_TYPE,
    CATALOG_NAME,
    CATALOG_VERSION,
    DIR_NAMES,
    INDEX_NAME,
    LAYOUT_BYTES,
    LAYOUT_NAME,
    REF_NAME,
    Catalog,
    CatalogArtifact,
    CatalogBlob,
    CatalogSource,
)
from airlock.archive.writer import ArchiveWriter
from airlock.errors import AirlockError, BlobExists, IntegrityError, NotFound, TransferFailed
from airlock.oci.digest import Digest
from airlock.oci.manifest import OCI_INDEX, Descriptor, Manifest
from airlock.oci.reference import ArtifactReference
from airlock.registry.client import RegistryClient
from airlock.storage.base import TRANSFER_CATEGORY, Blob
from airlock.transfer.concurrent_map import REQUESTS_IN_FLIGHT, ordered_map, settled
from airlock.transfer.graph import Closure, closure
from airlock.transfer.options import NoProgress, PipelineOption, Progress
from airlock.transfer.pipelining import close_stream, counted, ordered_fetch

log = logging.getLogger(__name__)

# Referrers of referrers (a signature on an SBOM) are followed this deep.
_REFERRER_DEPTH = 3


@dataclass
class ExportResult:
    target: str
    catalog_digest: Digest
    size: int
    artifacts: list[CatalogArtifact]
    failures: dict[str, str] = field(default_factory=dict)
    # Per artifact reference: bytes of all its manifests and blobs (``size`` of an entry is its top manifest's).
    content_sizes: dict[str, int] = field(default_factory=dict)
    blobs: int = 0  # blobs (configs and layers) written into the archive, for the metrics

    def to_json(self) -> dict[str, object]:
        return {
            "target": {"uri": self.target},
            "catalogDigest": str(self.catalog_digest),
            "size": self.size,
            "artifacts": [a.reference for a in self.artifacts],
            "artifactDetails": [
                {
                    **a.model_dump(by_alias=True, exclude_none=True),
                    **({"contentSize": self.content_sizes[a.reference]} if a.reference in self.content_sizes else {}),
                }
                for a in self.artifacts
            ],
            "failedArtifacts": self.failures,
        }


@dataclass
class _Resolved:
    entry: CatalogArtifact
    closure: Closure
    repository: str


# Both the CLI (`--options OverwriteBlobs`) and pipelines (`options`) spell it this way.
_OVERWRITE_HINT = " (use the OverwriteBlobs option to replace it)"


def export_artifacts(
    *,
    client: RegistryClient,
    artifacts: Sequence[ArtifactReference],
    target: Blob,
    options: frozenset[PipelineOption] = frozenset(),
    progress: Progress | None = None,
    concurrency: int = 4,
    window_bytes: int = 8 * 1024 * 1024,
) -> ExportResult:
    """Export ``artifacts`` from ``client``'s registry into ``target``.

    Without ContinueOnErrors the first failing artifact raises; with it, failed artifacts are left
    out of the archive and reported in ``failures`` (if all fail, nothing is written). With
    IncludeReferrers each artifact's referrers (signatures, SBOMs, ...) travel with it.

    Raises:
        BlobExists: the target exists and OverwriteBlobs is not set (checked before any transfer).
        TransferFailed: every artifact failed (with ContinueOnErrors) — nothing was written.
        RegistryError, IntegrityError, StorageError: the first failure, without ContinueOnErrors.
    """
    progress = progress or NoProgress()
    keep_going = PipelineOption.CONTINUE_ON_ERRORS in options
    overwrite = PipelineOption.OVERWRITE_BLOBS in options
    include_referrers = PipelineOption.INCLUDE_REFERRERS in options
    if not overwrite and target.stat() is not None:
        raise BlobExists(f"blob {target.display} already exists{_OVERWRITE_HINT}", blob=target.display)

    client.ping()
    failures: dict[str, str] = {}
    resolved = _resolve_all(client, artifacts, include_referrers, keep_going, failures, progress)
    if keep_going:
        # Only ContinueOnErrors needs to know up front: a failed artifact is left out of the catalog,
        # which is written first. Otherwise the GET that streams each blob verifies its size and
        # digest anyway, and a missing blob fails the export before the staged blob is committed.
        _check_blobs(client, resolved, keep_going, failures, concurrency)
    if not resolved:
        raise TransferFailed(
            f"export to {target.display} failed: no artifact could be exported ({_summary(failures)})",
            failures=failures,
        )

    manifests: dict[Digest, Manifest] = {}
    blobs: dict[Digest, tuple[Descriptor, str]] = {}
    for r in resolved:
        for m in r.closure.manifests:
            manifests.setdefault(m.digest, m)
        for d, desc in r.closure.blobs.items():
            blobs.setdefault(d, (desc, r.repository))
    # Configs before layers, so an importer sees small metadata first; then layers largest first,
    # so an importer starts the longest uploads (one stream each) first and the rest run alongside.
    configs = {r_m.blobs[0].digest for r_m in manifests.values() if r_m.blobs}
    ordered_blobs = sorted(blobs.items(), key=lambda kv: (kv[0] not in configs, -kv[1][0].size))

    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {**r.closure.top.descriptor().to_json(), "annotations": {REF_NAME: r.entry.reference}} for r in resolved
        ],
    }
    index_bytes = json.dumps(index, separators=(",", ":")).encode()
    catalog = Catalog(
        schemaVersion=CATALOG_VERSION,
        mediaType=CATALOG_MEDIA_TYPE,
        createdAt=datetime.now(UTC),
        creator=f"airlock {__version__}",
        source=CatalogSource(registry=client.base),
        artifacts=[r.entry for r in resolved],
        index=CatalogBlob(digest=str(Digest.of(index_bytes)), size=len(index_bytes)),
        manifests=[CatalogBlob(digest=str(d), size=m.size, mediaType=m.media_type) for d, m in manifests.items()],
        blobs=[CatalogBlob(digest=str(d), size=desc.size, mediaType=desc.media_type) for d, (desc, _) in ordered_blobs],
    )
    catalog_bytes = catalog.to_bytes()
    # The catalogDigest: a Merkle root over every member (see archive.format), known before any blob moves.
    digest = Digest.of(catalog_bytes)
    # Thousands of artifacts make tens of thousands of catalog models: only their bytes are needed now.
    del catalog, index

    total = sum(d.size for d, _ in blobs.values()) + sum(m.size for m in manifests.values())
    progress.begin(total, f"export → {target.display}")
    writer = target.writer(overwrite=overwrite, metadata=dict(TRANSFER_CATEGORY))
    archive = ArchiveWriter(writer.write)
    try:
        archive.add_bytes(CATALOG_NAME, catalog_bytes)
        archive.add_bytes(LAYOUT_NAME, LAYOUT_BYTES)
        archive.add_bytes(INDEX_NAME, index_bytes)
        for name in DIR_NAMES:
            archive.add_dir(name)
        for d, m in manifests.items():
            archive.add_bytes(BLOB_PREFIX + d.hex, m.raw)
            progress.advance(m.size)

        def source(repo: str, desc: Descriptor) -> Callable[[], Iterable[bytes]]:
            return lambda: client.iter_blob(repo, desc)

        # Each artifact is reported once its last blob (in archive order) is written.
        done_after = _last_blob_positions(resolved, ordered_blobs)
        _report_done(progress, done_after.pop(-1, []))
        streams = ordered_fetch(
            [source(repo, desc) for _, (desc, repo) in ordered_blobs],
            workers=concurrency,
            window=window_bytes,
            sizes=[desc.size for _, (desc, _repo) in ordered_blobs],
            max_jobs=REQUESTS_IN_FLIGHT if concurrency > 1 else 1,  # concurrency 1: one GET at a time
        )
        try:
            for i, ((d, (desc, repo)), chunks) in enumerate(zip(ordered_blobs, streams, strict=True)):
                try:
                    archive.add_stream(BLOB_PREFIX + d.hex, desc.size, counted(chunks, progress))
                except NotFound:
                    owner = next(r.entry.reference for r in resolved if d in r.closure.blobs)
                    raise IntegrityError(f"artifact {owner}: blob {d} is missing from repository {repo}") from None
                if i in done_after:
                    _report_done(progress, done_after[i])
        finally:
            close_stream(streams)
        archive.close()
        try:
            writer.commit()
        except BlobExists as exc:  # another writer got there first: the same way out as up front
            raise BlobExists(f"{exc}{_OVERWRITE_HINT}", blob=exc.blob) from None
    except BaseException:
        writer.abort()
        raise
    log.info("exported %d artifacts to %s (%d bytes, %s)", len(resolved), target.display, archive.size, digest)
    sizes = {r.entry.reference: r.closure.size for r in resolved}
    return ExportResult(
        target.display, digest, archive.size, [r.entry for r in resolved], failures, sizes, blobs=len(ordered_blobs)
    )


def _last_blob_positions(
    resolved: list[_Resolved], ordered_blobs: list[tuple[Digest, tuple[Descriptor, str]]]
) -> dict[int, list[_Resolved]]:
    """Artifacts by the position in ``ordered_blobs`` of their last blob (-1: no blob at all)."""
    position = {d: i for i, (d, _) in enumerate(ordered_blobs)}
    out: dict[int, list[_Resolved]] = {}
    for r in resolved:
        out.setdefault(max((position[d] for d in r.closure.blobs), default=-1), []).append(r)
    return out


def _report_done(progress: Progress, artifacts: list[_Resolved]) -> None:
    for r in artifacts:
        progress.artifact_done(r.entry.reference, r.entry.digest, r.closure.size)


def _summary(failures: dict[str, str]) -> str:
    return "; ".join(f"{ref}: {msg}" for ref, msg in list(failures.items())[:5])


def _resolve_all(
    client: RegistryClient,
    artifacts: Sequence[ArtifactReference],
    include_referrers: bool,
    keep_going: bool,
    failures: dict[str, str],
    progress: Progress,
) -> list[_Resolved]:
    """Resolve every artifact (and its referrers), several at once; the result is in the input's
    order, and without ContinueOnErrors the first failing artifact (in that order) raises."""

    def one(ref: ArtifactReference) -> tuple[_Resolved, list[_Resolved]]:
        found = _resolve(client, ref)
        # A referrer that cannot be exported fails its subject's artifact too: exporting an
        # image without the signature the user asked for would be a silent loss.
        extra = _referrers(client, found, progress) if include_referrers else []
        return found, extra

    out: list[_Resolved] = []
    seen_refs: set[str] = set()
    for ref, got in zip(artifacts, ordered_map(settled(one), artifacts), strict=True):
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


def _resolve(client: RegistryClient, ref: ArtifactReference) -> _Resolved:
    repo = ref.repository
    top = client.get_manifest(repo, ref.reference)
    if ref.digest is not None and ref.tag is not None:
        tagged = client.head_manifest(repo, ref.tag)
        if tagged is None or tagged.digest != ref.digest:
            raise IntegrityError(f"artifact {ref}: tag {ref.tag} does not point to {ref.digest}")

    def load(desc: Descriptor) -> Manifest:
        return client.get_manifest(repo, str(desc.digest))

    graph = closure(top, load, where=f"artifact {ref}")
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
    return _Resolved(entry, graph, repo)


def _referrers(client: RegistryClient, subject: _Resolved, progress: Progress) -> list[_Resolved]:
    """Referrers of the artifact (and of its children), transitively, plus the tag-schema index."""
    repo = subject.repository
    out: list[_Resolved] = []
    queue = [(m.digest, 0) for m in subject.closure.manifests]
    visited: set[Digest] = set()
    while queue:
        digest, depth = queue.pop(0)
        if digest in visited or depth >= _REFERRER_DEPTH:
            continue
        visited.add(digest)
        for desc in client.list_referrers(repo, digest):
            r = _resolve(client, ArtifactReference(repo, None, desc.digest))
            r.entry.subject = str(digest)
            out.append(r)
            queue.append((desc.digest, depth + 1))
        # Registries without the referrers API keep the list under a tag (OCI 1.1 tag schema);
        # carrying that tag over makes the referrers discoverable on such a target too.
        fallback = f"{digest.algorithm}-{digest.hex}"
        if client.head_manifest(repo, fallback) is not None:
            try:
                out.append(_resolve(client, ArtifactReference(repo, fallback, None)))
            except NotFound:
                pass  # deleted between HEAD and GET
    if out:
        progress.note(f"{subject.entry.reference}: {len(out)} referrer artifact(s) included")
    return out


def _check_blobs(
    client: RegistryClient,
    resolved: list[_Resolved],
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
