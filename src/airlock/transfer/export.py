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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

from airlock import __version__
from airlock.archive.format import (
    BLOB_PREFIX,
    CATALOG_MEDIA_TYPE,
    CATALOG_NAME,
    CATALOG_VERSION,
    DELTA_FEATURE,
    DIR_NAMES,
    FEATURE_PLATFORMS,
    INDEX_NAME,
    LAYOUT_BYTES,
    LAYOUT_NAME,
    REF_NAME,
    SIGNATURE_NAME,
    Catalog,
    CatalogArtifact,
    CatalogBlob,
    CatalogSource,
    archive_size,
)
from airlock.archive.keys import SigningKey
from airlock.archive.signature import catalog_signature, signature_json
from airlock.archive.writer import ArchiveWriter
from airlock.errors import BlobExists, IntegrityError, NotFound, TransferFailed, UsageError
from airlock.oci.digest import Digest
from airlock.oci.manifest import OCI_INDEX, Descriptor, Manifest
from airlock.oci.reference import ArtifactReference
from airlock.registry.client import RegistryClient
from airlock.storage.base import TRANSFER_CATEGORY, Blob
from airlock.transfer.concurrent_map import GETS_IN_FLIGHT
from airlock.transfer.delta import DeltaBase, report
from airlock.transfer.options import NoProgress, PipelineOption, Progress
from airlock.transfer.pipelining import close_stream, counted, ordered_fetch
from airlock.transfer.provenance import ExportContext, export_record, origin_of
from airlock.transfer.resolution import PlatformRules, Resolved, check_blobs, resolve_all
from airlock.transfer.resume import ResumingArchive, resume_point, settle
from airlock.transfer.selection import Platform, PlatformIndexMode
from airlock.transfer.volume_export import needs_volumes, plan_volumes, remove_stale_volumes, write_volumes

log = logging.getLogger(__name__)


@dataclass
class ExportResult:
    target: str
    catalog_digest: Digest | None  # None: a dry run, which writes nothing
    size: int
    artifacts: list[CatalogArtifact]
    failures: dict[str, str] = field(default_factory=dict)
    # Per artifact reference: bytes of all its manifests and blobs (``size`` of an entry is its top manifest's).
    content_sizes: dict[str, int] = field(default_factory=dict)
    blobs: int = 0  # blobs (configs and layers) written into the archive, for the metrics
    delta: dict[str, object] | None = None  # a delta's report (transfer.delta.report)
    dry_run: bool = False
    resumed: dict[str, int] | None = None  # with resume: what was kept from the staged run (bytes, members, blobs)
    volumes: list[dict[str, object]] | None = None  # with a volume size: every volume (transfer.volume_export)
    signature: dict[str, object] | None = None  # a signed bundle's keyId and algorithm (archive.signature)

    def to_json(self) -> dict[str, object]:
        return {
            "target": {"uri": self.target},
            "catalogDigest": str(self.catalog_digest) if self.catalog_digest else None,
            **({"dryRun": True} if self.dry_run else {}),
            "size": self.size,
            "artifacts": [a.reference for a in self.artifacts],
            "artifactDetails": [
                {
                    **a.to_json(),
                    **({"contentSize": self.content_sizes[a.reference]} if a.reference in self.content_sizes else {}),
                }
                for a in self.artifacts
            ],
            "failedArtifacts": self.failures,
            **({"delta": self.delta} if self.delta is not None else {}),
            **({"resumed": self.resumed} if self.resumed is not None else {}),
            **({"volumes": self.volumes} if self.volumes is not None else {}),
            **({"signature": self.signature} if self.signature is not None else {}),
        }


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
    delta: DeltaBase | None = None,
    platforms: Mapping[ArtifactReference, Sequence[Platform]] | None = None,
    platform_index: PlatformIndexMode = "keep",
    dry_run: bool = False,
    resume: bool = False,
    volume_size: int | None = None,
    signer: SigningKey | None = None,
    provenance: ExportContext | None = None,
) -> ExportResult:
    """Export ``artifacts`` from ``client``'s registry into ``target``.

    The catalog records each artifact's original reference and the export's record: ``provenance``
    names the exporting principal and the selection rules (None: the OS user, no rules); see
    :mod:`airlock.transfer.provenance`.

    ``platforms`` names, per artifact, the platforms whose manifests travel of a multi-arch index
    (absent or empty: all); ``platform_index`` says whether such an index travels as it is or
    rewritten (:mod:`airlock.transfer.platform_filter`). ``dry_run`` resolves and checks everything
    and returns what would be exported (``catalog_digest`` None, ``size`` 0) without writing.

    The archive is staged resumably: with ``resume`` the export continues what an interrupted one
    staged for the same catalog, fetching only the blobs it lacks (see :mod:`airlock.transfer.resume`).

    Without ContinueOnErrors the first failing artifact raises; with it, failed artifacts are left
    out of the archive and reported in ``failures`` (if all fail, nothing is written). With
    IncludeReferrers each artifact's referrers (signatures, SBOMs, ...) travel with it. With
    ``delta``, what its receipt says the target holds is left out (see :mod:`airlock.transfer.delta`).
    With ``volume_size``, an archive larger than that is written as a multi-volume bundle
    (:mod:`airlock.transfer.volume_export`; not resumable) and the result lists every volume.
    With ``signer`` the bundle is signed: its catalog names the key, and the signature over the
    catalog's bytes is written right after it, in the same pass (:mod:`airlock.archive.signature`).

    Raises:
        BlobExists: the target (or a volume) exists and OverwriteBlobs is not set (checked before any transfer).
        UsageError: ``volume_size`` cannot hold the bundle's first volume, or ``resume`` with a bundle
            (before anything is written).
        TransferFailed: every artifact failed (with ContinueOnErrors) — nothing was written.
        ResumeConflict: ``resume``, and what is staged was written for another catalog.
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
    wanted = PlatformRules(platforms or {}, platform_index)
    resolved = resolve_all(client, artifacts, include_referrers, keep_going, failures, progress, wanted)
    if keep_going or dry_run:
        # Only ContinueOnErrors needs to know up front: a failed artifact is left out of the catalog,
        # which is written first. Otherwise the GET that streams each blob verifies its size and
        # digest anyway, and a missing blob fails the export before the staged blob is committed;
        # a dry run makes no GET, so it HEADs every blob to fail where the export would.
        check_blobs(client, resolved, keep_going, failures, concurrency)
    if not resolved:
        raise TransferFailed(
            f"export to {target.display} failed: no artifact could be exported ({_summary(failures)})",
            failures=failures,
        )
    every = resolved
    for r in every:
        r.entry.origin = origin_of(r.entry, client.base)
    if delta is not None:  # an artifact whose tag already points at it in the target stays out
        resolved = [r for r in every if not delta.unchanged(r.repository, r.entry.tag, r.closure.top.digest)]

    manifests: dict[Digest, Manifest] = {}
    blobs: dict[Digest, tuple[Descriptor, str]] = {}
    for r in resolved:
        for m in r.closure.manifests:
            manifests.setdefault(m.digest, m)
        for d, desc in r.closure.blobs.items():
            blobs.setdefault(d, (desc, r.repository))
    left_out: dict[Digest, tuple[Descriptor, str]] = {}
    if delta is not None:  # blobs the target holds in any repository: the import HEADs or mounts them
        left_out = {d: (desc, held) for d, (desc, _) in blobs.items() if (held := delta.holder(desc)) is not None}
        blobs = {d: v for d, v in blobs.items() if d not in left_out}
    # Configs before layers, so an importer sees small metadata first; then layers largest first,
    # so an importer starts the longest uploads (one stream each) first and the rest run alongside.
    configs = {r_m.blobs[0].digest for r_m in manifests.values() if r_m.blobs}
    ordered_blobs = sorted(blobs.items(), key=lambda kv: (kv[0] not in configs, -kv[1][0].size))

    index_bytes = _index_bytes(resolved)
    created_at = datetime.now(UTC)
    catalog = Catalog(
        schemaVersion=CATALOG_VERSION,
        mediaType=CATALOG_MEDIA_TYPE,
        createdAt=created_at,
        exportRecord=export_record(provenance, client.base, created_at),
        creator=f"airlock {__version__}",
        source=CatalogSource(registry=client.base),
        artifacts=[r.entry for r in resolved],
        index=CatalogBlob(digest=str(Digest.of(index_bytes)), size=len(index_bytes)),
        requires=[FEATURE_PLATFORMS] if any(r.entry.omitted_manifests for r in resolved) else [],
        manifests=[CatalogBlob(digest=str(d), size=m.size, mediaType=m.media_type) for d, m in manifests.items()],
        blobs=[CatalogBlob(digest=str(d), size=desc.size, mediaType=desc.media_type) for d, (desc, _) in ordered_blobs],
    )
    if signer is not None:  # before the delta's and volumes' sizes are computed: the signature member counts
        catalog.signature = catalog_signature(signer)
    if delta is not None:
        _as_delta(catalog, delta, every, resolved, left_out)
    total = sum(d.size for d, _ in blobs.values()) + sum(m.size for m in manifests.values())

    def write_head(archive: ArchiveWriter, catalog_bytes: bytes) -> None:
        archive.add_bytes(CATALOG_NAME, catalog_bytes)
        if signer is not None:
            archive.add_bytes(SIGNATURE_NAME, signer.sign(catalog_bytes))
        archive.add_bytes(LAYOUT_NAME, LAYOUT_BYTES)
        archive.add_bytes(INDEX_NAME, index_bytes)
        for name in DIR_NAMES:
            archive.add_dir(name)
        for d, m in manifests.items():
            archive.add_bytes(BLOB_PREFIX + d.hex, m.raw)
            progress.advance(m.size)

    def write_blobs(archive: ArchiveWriter, kept: int = 0) -> None:
        # Each artifact is reported once its last blob (in archive order) is written.
        done_after = _last_blob_positions(resolved, ordered_blobs)
        _report_done(progress, done_after.pop(-1, []))
        progress.blobs(0, len(ordered_blobs))
        for i, (d, (desc, _repo)) in enumerate(ordered_blobs[:kept]):  # kept: neither fetched nor written again
            archive.add_stream(BLOB_PREFIX + d.hex, desc.size, ())
            progress.advance(desc.size)
            progress.blobs(i + 1, len(ordered_blobs))
            _report_done(progress, done_after.pop(i, []))
        streams = ordered_fetch(
            _BlobFetches(client, ordered_blobs, kept),
            workers=concurrency,
            window=window_bytes,
            sizes=[desc.size for _, (desc, _repo) in ordered_blobs[kept:]],
            max_jobs=GETS_IN_FLIGHT if concurrency > 1 else 1,  # concurrency 1: one GET at a time
        )
        try:
            for i, ((d, (desc, repo)), chunks) in enumerate(
                zip(ordered_blobs[kept:], streams, strict=True), start=kept
            ):
                try:
                    archive.add_stream(BLOB_PREFIX + d.hex, desc.size, counted(chunks, progress))
                except NotFound:
                    owner = next(r.entry.reference for r in resolved if d in r.closure.blobs)
                    raise IntegrityError(f"artifact {owner}: blob {d} is missing from repository {repo}") from None
                progress.blobs(i + 1, len(ordered_blobs))
                if i in done_after:
                    _report_done(progress, done_after[i])
        finally:
            close_stream(streams)

    # The volume size when the archive needs several volumes, else None.
    catalog_bytes = catalog.to_bytes()  # serialised once: the volume check and a dry run's delta size
    split = volume_size if needs_volumes(catalog, catalog_bytes, volume_size) else None
    if split is not None and resume:
        raise UsageError(f"export to {target.display}: a multi-volume export cannot be resumed; export it again")
    if dry_run:  # refused where the export would refuse before writing (its volumes too); nothing written
        if split is not None:
            plan_volumes(target, catalog, volume_size=split, overwrite=overwrite)
        sizes = {r.entry.reference: r.closure.size for r in resolved}
        # A delta's dry run says what it would leave out, and the size it would have.
        would = report(catalog.delta, archive_size(len(catalog_bytes), catalog)) if catalog.delta else None
        return ExportResult(
            target.display, None, 0, [r.entry for r in resolved], failures, sizes, delta=would, dry_run=True
        )
    if split is not None:
        # Several volumes: see transfer.volume_export (later volumes first, the head last).
        progress.begin(total, f"export → {target.display}")
        bundle = write_volumes(
            target, catalog, volume_size=split, overwrite=overwrite, write_head=write_head,
            write_blobs=write_blobs,
        )  # fmt: skip
        log.info("exported %d artifacts to %s in %d volumes", len(resolved), target.display, len(bundle.volumes))
        return ExportResult(
            target.display,
            bundle.catalog_digest,
            bundle.size,
            [r.entry for r in resolved],
            failures,
            {r.entry.reference: r.closure.size for r in resolved},
            blobs=len(ordered_blobs),
            delta=report(catalog.delta, bundle.size) if catalog.delta is not None else None,
            volumes=bundle.volumes,
            signature=signature_json(catalog),
        )
    point = resume_point(target, catalog, resume=resume)  # resuming: the staged run's catalog (its createdAt)
    catalog_bytes = point.catalog_bytes
    # The catalogDigest: a Merkle root over every member (see archive.format), known before any blob moves.
    digest = Digest.of(catalog_bytes)

    progress.begin(total, f"export → {target.display}")
    writer = target.resumable_writer(
        overwrite=overwrite, metadata=dict(TRANSFER_CATEGORY), tag=point.tag, keep=point.keep
    )
    archive = ResumingArchive(writer, point)  # passes over the members the resume keeps
    try:
        write_head(archive, catalog_bytes)
        write_blobs(archive, point.blobs)
        archive.close()
        try:
            writer.commit()
        except BlobExists as exc:  # another writer got there first: the same way out as up front
            raise BlobExists(f"{exc}{_OVERWRITE_HINT}", blob=exc.blob) from None
    except BaseException as exc:
        settle(writer, exc)  # keeps what is staged for a resume when the source failed
        raise
    if overwrite:  # an earlier bundle of several volumes under this name: its later ones go too
        remove_stale_volumes(target, after=1)
    log.info("exported %d artifacts to %s (%d bytes, %s)", len(resolved), target.display, archive.size, digest)
    sizes = {r.entry.reference: r.closure.size for r in resolved}
    return ExportResult(
        target.display,
        digest,
        archive.size,
        [r.entry for r in resolved],
        failures,
        sizes,
        blobs=len(ordered_blobs),
        delta=report(catalog.delta, archive.size) if catalog.delta is not None else None,
        resumed=point.to_json() if resume else None,
        volumes=None if volume_size is None else [{"index": 1, "uri": target.display, "size": archive.size}],
        signature=signature_json(catalog),
    )


class _BlobFetches:
    """The GET of each of ``blobs[start:]`` for :func:`ordered_fetch`, made when it is reached: a
    closure per blob, made up front, would cost 250 bytes each for the whole export."""

    def __init__(self, client: RegistryClient, blobs: list[tuple[Digest, tuple[Descriptor, str]]], start: int) -> None:
        self._client, self._blobs, self._start = client, blobs, start

    def __len__(self) -> int:
        return len(self._blobs) - self._start

    def __getitem__(self, index: int, /) -> Callable[[], Iterable[bytes]]:
        desc, repo = self._blobs[self._start + index][1]
        return partial(self._client.iter_blob, repo, desc)


def _index_bytes(resolved: list[Resolved]) -> bytes:
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {**r.closure.top.descriptor().to_json(), "annotations": {REF_NAME: r.entry.reference}} for r in resolved
        ],
    }
    return json.dumps(index, separators=(",", ":")).encode()


def _as_delta(
    catalog: Catalog,
    delta: DeltaBase,
    every: list[Resolved],
    kept: list[Resolved],
    left_out: dict[Digest, tuple[Descriptor, str]],
) -> None:
    """Make ``catalog`` a delta's: ``requires`` "delta", and what was left out, with the full size."""
    manifests = {m.digest: m for r in every for m in r.closure.manifests}
    blobs = {d: desc for r in every for d, desc in r.closure.blobs.items()}
    index_bytes = _index_bytes(every)
    full = catalog.model_copy(
        update={
            "artifacts": [r.entry for r in every],
            "index": CatalogBlob(digest=str(Digest.of(index_bytes)), size=len(index_bytes)),
            "manifests": [
                CatalogBlob(digest=str(d), size=m.size, mediaType=m.media_type) for d, m in manifests.items()
            ],
            "blobs": [CatalogBlob(digest=str(d), size=b.size, mediaType=b.media_type) for d, b in blobs.items()],
        }
    )
    kept_refs = {r.entry.reference for r in kept}
    unchanged = [(r.entry.reference, r.closure.top.digest) for r in every if r.entry.reference not in kept_refs]
    catalog.requires = [*catalog.requires, DELTA_FEATURE]
    catalog.delta = delta.catalog_delta(left_out, unchanged, archive_size(len(full.to_bytes()), full))


def _last_blob_positions(
    resolved: list[Resolved], ordered_blobs: list[tuple[Digest, tuple[Descriptor, str]]]
) -> dict[int, list[Resolved]]:
    """Artifacts by the position in ``ordered_blobs`` of their last blob (-1: no blob at all)."""
    position = {d: i for i, (d, _) in enumerate(ordered_blobs)}
    out: dict[int, list[Resolved]] = {}
    for r in resolved:
        # A delta's left-out blobs have no position: they are not in the archive.
        out.setdefault(max((position[d] for d in r.closure.blobs if d in position), default=-1), []).append(r)
    return out


def _report_done(progress: Progress, artifacts: list[Resolved]) -> None:
    for r in artifacts:
        progress.artifact_done(r.entry.reference, r.entry.digest, r.closure.size)


def _summary(failures: dict[str, str]) -> str:
    return "; ".join(f"{ref}: {msg}" for ref, msg in list(failures.items())[:5])
