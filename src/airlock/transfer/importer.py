"""Import: a transfer archive in a storage blob → artifacts in a registry.

One sequential pass over the archive. Manifests (stored first) are read and verified into memory;
then each config and layer streams, verified by digest and size, into every target repository that
needs it (skipped when the registry already has it, found by the POST that would start its upload, a
mount from its own repository; cross-repository mount for the second and later repositories). A
large blob is instead read by a ranged read of its own while the pass jumps past it, so it uploads
alongside the blobs after it (one upload stream is slower than a registry takes several). A
``catalog_digest`` is checked against the catalog, which comes first, before anything is uploaded;
since the catalog names every member by digest, verifying each member against it verifies the whole
archive. Only when the whole archive has been read are manifests pushed (children first) and, last,
tags written. An artifact whose content failed to verify is never tagged.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator

from airlock.archive.format import CatalogArtifact
from airlock.archive.keys import TrustedKeys
from airlock.archive.reader import MAX_TRAILER, ArchiveReader, Member
from airlock.archive.signature import check_trusted, signature_json
from airlock.errors import (
    AirlockError,
    ArchiveError,
    BlobChanged,
    BlobNotFound,
    IntegrityError,
    RegistryError,
    TransferFailed,
    UsageError,
)
from airlock.oci.digest import Digest, Verifier
from airlock.oci.manifest import MAX_MANIFEST_SIZE, Descriptor, Manifest
from airlock.oci.reference import validate_repository, validate_tag
from airlock.registry.client import RegistryClient
from airlock.storage.base import Blob
from airlock.transfer.concurrent_map import REQUESTS_IN_FLIGHT
from airlock.transfer.delta import check_present, unchanged_references
from airlock.transfer.graph import closure
from airlock.transfer.import_result import ImportResult
from airlock.transfer.index_check import check_index
from airlock.transfer.options import NoProgress, PipelineOption, Progress
from airlock.transfer.pipelining import FanOut, close_stream, counted
from airlock.transfer.platform_filter import omitted_of
from airlock.transfer.provenance import import_provenance
from airlock.transfer.publish import ArtifactEntry, publish
from airlock.transfer.rename import RenameMap
from airlock.transfer.retry import select_only
from airlock.transfer.signature_import import require_signatures
from airlock.transfer.signature_policy import PayloadCapture, SignaturePolicy, payloads_wanted
from airlock.transfer.tag_conflicts import check_tag_conflicts
from airlock.transfer.volume_source import diagnosing, open_bundle

log = logging.getLogger(__name__)

# A blob of at least this size is uploaded from a ranged read of its own, in parallel with the
# archive's sequential pass (smaller ones are fed from that pass, which costs no extra read).
LARGE_BLOB = 64 * 1024 * 1024
# A blob of at most this size is read whole from that pass and handed to its upload in one piece.
WHOLE_MAX = 1024 * 1024


class Importer:
    """One import of one archive: its manifests read and verified, its blobs uploaded, tags last.

    Used by :func:`import_archive`, and extended by ``transfer.layout_import`` for OCI layouts
    written by other tools. Not thread-safe: one instance per import.
    """

    def __init__(
        self,
        *,
        source: Blob,
        client: RegistryClient,
        options: frozenset[PipelineOption],
        progress: Progress,
        concurrency: int,
        window_bytes: int,
        large_blob: int,
        rename: RenameMap | None = None,
        only: frozenset[str] | None = None,
        trusted: TrustedKeys | None = None,
        signatures: SignaturePolicy | None = None,
    ) -> None:
        self.source = source
        self.trusted = trusted  # the keys a bundle must be signed by (archive.signature), checked first
        self.signatures = signatures  # required of each artifact before any tag (transfer.signature_policy)
        self.capture = PayloadCapture(set())
        self.rename = rename or RenameMap()
        self.only = only  # --retry-failed: import these artifact references of the archive, and no other
        self.client = client
        self.keep_going = PipelineOption.CONTINUE_ON_ERRORS in options
        self.overwrite_tags = PipelineOption.OVERWRITE_TAGS in options
        self.delete_source = PipelineOption.DELETE_SOURCE_BLOB_ON_SUCCESS in options
        self.progress = progress
        self.concurrency = concurrency
        self.window = window_bytes
        self.large = large_blob
        self.result_counts = {"uploaded": 0, "skipped": 0, "mounted": 0}
        self.blobs_total = 0  # placements (blob, repository) the import makes or finds: the progress's count
        self._count_lock = threading.Lock()
        self.source_etag: str | None = None
        self._cancellable: Callable[[Iterator[bytes]], Iterator[bytes]] = lambda chunks: chunks

    def count(self, what: str) -> None:
        with self._count_lock:
            self.result_counts[what] += 1
            self.progress.blobs(sum(self.result_counts.values()), self.blobs_total)

    def fail(self, art: ArtifactEntry, exc: AirlockError | str) -> None:
        """Record an artifact's failure; without ContinueOnErrors, raise at once."""
        message = str(exc)
        if not self.keep_going:
            if isinstance(exc, AirlockError):
                raise exc
            raise TransferFailed(message, failures={art.entry.reference: message})
        if art.error is None:
            art.error = message
            log.info("artifact %s failed: %s", art.entry.reference, message)  # the result says it: no warning

    def run(self, catalog_digest: Digest | None) -> ImportResult:
        info = self.source.stat()
        if info is None:
            raise BlobNotFound(f"source blob {self.source.display} does not exist")
        self.source_etag = info.etag
        self.progress.begin(info.size, f"import ← {self.source.display}")
        stream = self.source.read()
        try:
            # Progress counts what the reader consumes (a skipped blob is counted by its own read).
            reader = ArchiveReader(
                stream,
                reopen=self.source.read,
                read_range=self.source.read,
                on_bytes=self.progress.advance,
                name=self.source.display,
            )
            try:
                return self._run(reader, catalog_digest, info.size)
            finally:
                reader.close()
        finally:
            close_stream(stream)  # stops a storage read (and its prefetch threads) left midway by an error

    def _run(self, reader: ArchiveReader, catalog_digest: Digest | None, blob_size: int) -> ImportResult:
        catalog = reader.catalog
        if catalog_digest is not None and reader.catalog_digest != catalog_digest:
            raise IntegrityError(
                f"catalog digest mismatch: expected {catalog_digest}, the archive's catalog hashes to "
                f"{reader.catalog_digest}; nothing was imported"
            )
        if self.trusted is not None:  # the catalog and its signature are read: refuse before any upload
            check_trusted(self.source.display, catalog, reader.catalog_bytes, reader.signature, self.trusted)
        if not reader.expected_size <= blob_size <= reader.expected_size + MAX_TRAILER:
            # Known from the catalog alone: refuse a cut (or extended) copy before uploading anything.
            raise ArchiveError(
                f"transfer blob {self.source.display} is {blob_size} bytes, its catalog implies "
                f"{reader.expected_size} ({'truncated' if blob_size < reader.expected_size else 'data appended'}); "
                "nothing was imported"
            )
        artifacts = [self._validated(a) for a in catalog.artifacts]
        check_index(reader.index, artifacts)
        reader.release_head()  # checked: not held through the pass
        unchanged = unchanged_references(catalog.delta, self.rename, [a.entry for a in artifacts])
        for art, entry in zip(artifacts, self.rename.entries(a.entry for a in artifacts), strict=True):
            art.entry = entry  # index.json names the source's repositories; the target's may differ
        # The result's failures name the target's references (renamed), as --retry-failed reads them.
        artifacts = select_only(artifacts, self.only, self.source.display)  # the others' blobs are still verified
        manifest_sizes = {Digest.parse(m.digest): m.size for m in catalog.manifests}
        blob_sizes = {Digest.parse(b.digest): b.size for b in catalog.blobs}
        # A delta's left-out blobs: expected in the target, not in the archive (transfer.delta).
        absent = {Digest.parse(b.digest): b.size for b in catalog.delta.blobs} if catalog.delta else {}
        if set(manifest_sizes) & set(blob_sizes):
            raise ArchiveError("archive catalog lists a digest both as a manifest and as a blob")
        catalog.manifests, catalog.blobs = [], []  # in the dicts now: an entry each is 64 bytes more to the end

        manifests: dict[Digest, Manifest] = {}
        members = reader.blobs()
        pending: Member | None = None
        for member in members:
            d = member.blob_digest
            assert d is not None
            if d not in manifest_sizes:
                pending = member
                break
            if member.size != manifest_sizes[d]:
                raise ArchiveError(
                    f"archive member for manifest {d} is {member.size} bytes, catalog says {manifest_sizes[d]}"
                )
            raw = reader.read_member(member, MAX_MANIFEST_SIZE)
            m = Manifest.parse(raw, media_type=None, where=f"archive manifest {d}")
            if m.digest != d:
                raise IntegrityError(f"archive manifest {d}: content hashes to {m.digest} (the archive is corrupt)")
            manifests[m.digest] = m  # by its own digest (equal to d): one Digest kept per manifest, not two
        missing = set(manifest_sizes) - set(manifests)
        if missing:
            raise ArchiveError(f"archive lacks manifest {sorted(missing)[0]} listed in its catalog (truncated?)")

        needs = self._plan(artifacts, manifests, {**absent, **blob_sizes})
        self.blobs_total = sum(len(repos) for repos in needs.values())
        self.progress.blobs(0, self.blobs_total)
        if self.signatures is not None:  # keep the signature payloads as the pass streams them
            self.capture.wanted = payloads_wanted(artifacts)
        if catalog.delta is not None:  # before any upload, so before any tag
            check_present(
                self.client,
                catalog.delta,
                needs,
                unchanged=unchanged,
                where=self.source.display,
                count=self.count,
                concurrency=self.concurrency,
            )
            needs = {d: repos for d, repos in needs.items() if d not in absent}
        # Small blobs upload many at once in the memory of `concurrency` large ones; concurrency 1
        # stays one upload at a time (what a caller asks of a fragile registry).
        small_jobs = REQUESTS_IN_FLIGHT if self.concurrency > 1 else 1
        fan = FanOut(workers=self.concurrency, window=self.window, max_jobs=small_jobs)
        self._cancellable = fan.cancellable  # re-sends from storage stop when the import does
        try:
            member_iter: Iterator[Member] = members
            current = pending
            while current is not None:
                self._blob_member(reader, current, blob_sizes, needs, fan)
                failed = fan.first_error()
                if failed is not None and not self.keep_going:
                    # Fail fast: no point reading (or downloading) the rest of a multi-GB archive.
                    raise failed[1]
                current = next(member_iter, None)
            size = reader.finish()
        except BaseException:
            fan.cancel()
            raise
        for key, exc in fan.join():
            d = key
            for art in artifacts:
                if art.closure is not None and d in art.closure.blobs:
                    self.fail(art, exc if isinstance(exc, AirlockError) else ArchiveError(f"blob {d}: {exc!r}"))
        if blob_sizes:  # what the pass did not take out (see _blob_member)
            raise ArchiveError(f"archive lacks blob {min(blob_sizes)} listed in its catalog (truncated?)")

        if self.signatures is not None:  # everything is verified, nothing tagged yet
            require_signatures(self.signatures, self.client, catalog, artifacts, self.rename, self.capture, self.fail,
                               keep_going=self.keep_going)  # fmt: skip
        imported = self._push_manifests(artifacts)
        failures = {a.entry.reference: a.error for a in artifacts if a.error is not None}
        return ImportResult(
            source=self.source.display,
            catalog_digest=reader.catalog_digest,
            size=size,
            imported=imported,
            failures=failures,
            blobs_uploaded=self.result_counts["uploaded"],
            blobs_skipped=self.result_counts["skipped"],
            blobs_mounted=self.result_counts["mounted"],
            unchanged=unchanged,
            signature=signature_json(catalog, trusted=self.trusted is not None),  # trusted: checked before uploads
            provenance=import_provenance(
                catalog, [(a.entry, a.entry.reference) for a in artifacts if a.entry.reference in imported]
            ),
        )

    def _validated(self, entry: CatalogArtifact) -> ArtifactEntry:
        # The archive crossed a trust boundary: its names go into registry URLs, so check them.
        try:
            validate_repository(entry.repository)
            if entry.tag is not None:
                validate_tag(entry.tag)
            digest = Digest.parse(entry.digest)
        except UsageError as exc:
            raise ArchiveError(f"archive catalog names an invalid artifact: {exc}") from None
        return ArtifactEntry(entry, digest, source_repository=entry.repository)

    def _plan(
        self, artifacts: list[ArtifactEntry], manifests: dict[Digest, Manifest], blob_sizes: dict[Digest, int]
    ) -> dict[Digest, list[str]]:
        """Closures, tag checks, and which repositories need each blob (in artifact order).

        Blobs needed by the same repositories share one list: never change one.
        """

        def load(desc: Descriptor) -> Manifest:
            m = manifests.get(desc.digest)
            if m is None:
                raise ArchiveError(f"manifest {desc.digest} is referenced but not in the archive")
            return m

        for art in artifacts:
            top = manifests.get(art.digest)
            if top is None:
                raise ArchiveError(f"archive catalog names artifact {art.entry.reference} whose manifest it lacks")

            art.closure = closure(top, load, where=f"artifact {art.entry.reference}", omitted=omitted_of(art.entry))
            for d, desc in art.closure.blobs.items():
                if d not in blob_sizes:
                    raise ArchiveError(f"artifact {art.entry.reference} needs blob {d}, which the archive lacks")
                if blob_sizes[d] != desc.size:
                    raise ArchiveError(f"blob {d}: catalog says {blob_sizes[d]} bytes, a manifest says {desc.size}")
        if not self.overwrite_tags:  # before any upload
            check_tag_conflicts(self.client, artifacts, fail=self.fail)
        needs: dict[Digest, list[str]] = {}
        for art in artifacts:
            if art.error is not None or art.closure is None:
                continue
            for d in art.closure.blobs:
                repos = needs.setdefault(d, [])
                if art.entry.repository not in repos:
                    repos.append(art.entry.repository)
        shared: dict[tuple[str, ...], list[str]] = {}  # most blobs are one repository's: a list each is 100 bytes
        for d, repos in needs.items():
            needs[d] = shared.setdefault(tuple(repos), repos)
        return needs

    def _blob_member(
        self,
        reader: ArchiveReader,
        member: Member,
        blob_sizes: dict[Digest, int],
        needs: dict[Digest, list[str]],
        fan: FanOut,
    ) -> None:
        """Check ``member`` against the catalog and take it out of ``blob_sizes`` (which then holds
        what the archive has not yet delivered: no set of the blobs received is kept beside it; the
        reader refuses a member twice), then verify and upload it to the repositories that need it."""
        d = member.blob_digest
        assert d is not None
        size = blob_sizes.pop(d, None)
        if size is None:
            raise ArchiveError(f"archive has blob {d}, which its catalog does not list")
        if member.size != size:
            raise ArchiveError(f"archive member for blob {d} is {member.size} bytes, catalog says {size}")
        desc = Descriptor("application/octet-stream", d, member.size)
        repos = needs.get(d, [])
        if not repos:
            # Needed only by failed artifacts: still verified, since it is part of the archive.
            Verifier(d, member.size, what=f"archive blob {d}").check(self.capture.tee(d, reader.stream_member(member)))
            return

        if member.size >= self.large and d not in self.capture.wanted and reader.skip_member(member):
            # A large blob gets a ranged read of its own, so it uploads alongside the blobs after
            # it instead of holding the one sequential pass for its whole length.
            self.submit_ranged(fan, desc, repos, member)
            return

        if member.size <= WHOLE_MAX:
            # Read whole, the blob goes to a worker in one piece: for thousands of small blobs the
            # stream's hand-over between threads costs more than the bytes do.
            data = (b"".join(self.capture.tee(d, reader.stream_member(member))),)
            fan.submit(d, lambda: self._upload(desc, repos, data, member), size=member.size)
            return

        def job(chunks: Iterator[bytes]) -> None:
            self._upload(desc, repos, chunks, member)

        feed = fan.start(d, job, size=member.size)
        for piece in self.capture.tee(d, reader.stream_member(member)):
            feed(piece)
        feed(None)

    def submit_ranged(self, fan: FanOut, desc: Descriptor, repos: list[str], member: Member) -> None:
        """Upload ``member`` (verified as it streams) from a ranged read of its own, on ``fan``."""

        def ranged() -> None:
            chunks = self.source.read(member.offset, member.size)
            try:
                self._upload(desc, repos, fan.cancellable(counted(chunks, self.progress)), member, ranged=True)
            finally:
                close_stream(chunks)

        fan.submit(desc.digest, ranged)

    def _upload(
        self, desc: Descriptor, repos: list[str], chunks: Iterable[bytes], member: Member, *, ranged: bool = False
    ) -> None:
        """Push one blob to its first repository (or verify-and-skip), then mount it into the rest.

        ``chunks`` comes from the archive's sequential pass, or (``ranged``) from a read of its own.
        One request asks whether the first repository has the blob and opens its upload if not
        (a mount from itself); a blob new there is mounted into the rest without asking each
        first, while one found there (an import run again) is looked for in each of them.
        """
        first = repos[0]
        location = self.client.mount_or_start(first, desc.digest, first)
        if location is None:
            Verifier(desc.digest, desc.size, what=f"archive blob {desc.digest}").check(chunks)
            self.count("skipped")
        else:
            try:
                self.client.push_blob(first, desc, chunks, location=location)
            except RegistryError as exc:
                if not exc.transient:
                    raise
                # The upload broke (connection, 5xx) after its retries: the stream is spent, but the
                # archive can be read again from storage — send this blob once more, whole.
                if ranged:
                    close_stream(chunks)  # a read of its own: stop it rather than fetch the rest
                else:
                    for _ in chunks:
                        pass  # let the archive reader move past the member
                log.info("blob %s: upload broke (%s); sending it again from storage", desc.digest, exc)
                self.client.retry.sleep(2)
                self._push_from_storage(first, desc, member)
            self.count("uploaded")
        for repo in repos[1:]:
            if location is None and self.client.blob_size(repo, desc.digest) == desc.size:
                self.count("skipped")
                continue
            elsewhere = self.client.mount_or_start(repo, desc.digest, first)
            if elsewhere is None:
                self.count("mounted")
            else:
                # The registry declined the mount: read the member again from storage.
                self._push_from_storage(repo, desc, member, location=elsewhere)
                self.count("uploaded")

    def _push_from_storage(self, repo: str, desc: Descriptor, member: Member, *, location: str | None = None) -> None:
        again = self.source.read(member.offset, member.size)
        try:
            self.client.push_blob(repo, desc, self._cancellable(again), location=location)
        finally:
            close_stream(again)

    def _push_manifests(self, artifacts: list[ArtifactEntry]) -> list[str]:
        """Push manifests (children first), then tags, for the artifacts that have not failed."""
        return publish(self.client, artifacts, fail=self.fail, progress=self.progress)


def import_archive(
    *,
    source: Blob,
    client: RegistryClient,
    options: frozenset[PipelineOption] = frozenset(),
    catalog_digest: Digest | None = None,
    progress: Progress | None = None,
    concurrency: int = 4,
    window_bytes: int = 8 * 1024 * 1024,
    large_blob: int = LARGE_BLOB,
    rename: RenameMap | None = None,
    only: frozenset[str] | None = None,
    trusted: TrustedKeys | None = None,
    signatures: SignaturePolicy | None = None,
) -> ImportResult:
    """Import every artifact of the archive at ``source`` into ``client``'s registry.

    Without ContinueOnErrors the first failing artifact raises; with it, the others are imported
    and the failures reported in the result. DeleteSourceBlobOnSuccess deletes the source blob
    only when every artifact was imported. Blobs of ``large_blob`` bytes or more are read from
    ``source`` by ranged reads of their own, up to ``concurrency`` transfers at once. ``rename``
    moves artifacts to other repositories (see :mod:`airlock.transfer.rename`). With ``only``
    (references of the catalog's artifacts, after ``rename``) just those are imported; the archive
    is verified whole. With ``trusted``, only a bundle signed by one of those keys is imported.
    With ``signatures``, an artifact without a valid signature in the archive
    is refused before any tag is written (:mod:`airlock.transfer.signature_policy`).

    Raises:
        BundleNotTrusted: ``trusted`` is given and the bundle is unsigned, signed by another key, or
            altered after signing (:func:`airlock.archive.signature.check_trusted`) — nothing is uploaded.
        BlobNotFound, StorageAuthError: the source blob (or a volume of its bundle) cannot be read.
        DeltaIncomplete: a delta whose left-out blobs are not all in the target — nothing is tagged.
        UsageError: ``rename`` makes an invalid repository name — nothing is uploaded.
        ArchiveError, IntegrityError: the archive is malformed, hostile, truncated, or its content
            does not match its catalog — no tag is written — or its catalog does not match
            ``catalog_digest`` — nothing is uploaded.
        UsageError: ``only`` names an artifact the archive does not hold (nothing is uploaded).
        TagConflict, RegistryError: an artifact failed (without ContinueOnErrors).
        SignatureRefused: ``signatures`` refuses an artifact (without ContinueOnErrors) — no tag is written.
    """
    client.ping()
    # The first volume of a bundle: every volume, stat-ed now. The catalog is checked (and parsed,
    # once: twice held 14 MiB more at 10,000 artifacts) by the import's reader.
    source = open_bundle(source, check_catalog=False)
    importer = Importer(
        source=source,
        client=client,
        options=options,
        progress=progress or NoProgress(),
        concurrency=concurrency,
        window_bytes=window_bytes,
        large_blob=large_blob,
        rename=rename,
        only=only,
        trusted=trusted,
        signatures=signatures,
    )
    with diagnosing(source, outcome="; no tag was written"):  # a bundle's content failure names its volume
        result = importer.run(catalog_digest)
    delete_source_on_success(importer, result)
    log.info("imported %d artifacts from %s (%s)", len(result.imported), source.display, result.catalog_digest)
    return result


def delete_source_on_success(importer: Importer, result: ImportResult) -> None:
    """DeleteSourceBlobOnSuccess: delete the source blob when every artifact was imported.

    Conditional: a blob replaced while we imported (a new export landing) is not ours to delete;
    the import has succeeded all the same, and says ``sourceBlobDeleted: false``.
    """
    if importer.delete_source and not result.failures:
        try:
            importer.source.delete(if_match=importer.source_etag)
        except BlobChanged as exc:
            log.warning("%s: kept, as it is another blob now", exc)
            return
        result.source_deleted = True
