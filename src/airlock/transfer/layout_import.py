"""Import of an OCI layout tar written by another tool (skopeo ``oci-archive:``, oras, docker >= 25).

:func:`import_blob` is what ``airlock import`` runs: an airlock transfer blob goes to
:func:`airlock.transfer.importer.import_archive`; an OCI layout tar without an airlock catalog is
imported here with the importer's guarantees except the catalog's. Its tar headers are indexed
first (:func:`airlock.archive.layout.scan_layout`, since such tars have no fixed order); then
index.json's manifests are read by range and verified by digest, each config and layer streams
by a ranged read of its own into the registry, verified by digest and size (skipped when
present, mounted into further repositories), manifests are pushed children first and tags last,
only for verified content. What is missing is the catalog: nothing names the archive as a whole
(there is no catalogDigest to pin it), and members index.json does not reach are not read.

Where artifacts land: each index.json entry's ``org.opencontainers.image.ref.name`` is the
reference: ``samples/app:1.0`` (what ``skopeo copy … oci-archive:x.tar:samples/app:1.0`` writes)
lands in repository ``samples/app`` with tag ``1.0``. A bare tag (``1.0``: oras, or
``oci-archive:x.tar:1.0``) or an entry without a ref.name needs ``repository``, which then takes
every artifact (an entry without a ref.name is imported by digest, untagged).
"""

from __future__ import annotations

import json
import logging

from airlock.archive.format import MAX_ARTIFACTS, REF_NAME, CatalogArtifact
from airlock.archive.keys import TrustedKeys
from airlock.archive.layout import LayoutTar, scan_layout
from airlock.archive.reader import is_airlock_head
from airlock.archive.signature import check_trusted
from airlock.archive.sniff import OCI_LAYOUT, not_a_transfer_blob, sniff
from airlock.archive.volumes import lone_volume_hint
from airlock.errors import AirlockError, ArchiveError, BlobNotFound, IntegrityError, UsageError
from airlock.oci.digest import Digest
from airlock.oci.manifest import MAX_MANIFEST_SIZE, Descriptor, Manifest
from airlock.oci.reference import validate_repository, validate_tag
from airlock.registry.client import RegistryClient
from airlock.storage.base import Blob
from airlock.transfer.graph import closure

# The importer's machinery (planning, verified uploads, manifests and tags last) is shared.
from airlock.transfer.import_result import ImportResult
from airlock.transfer.importer import Importer, delete_source_on_success, import_archive
from airlock.transfer.options import NoProgress, PipelineOption, Progress
from airlock.transfer.pipelining import FanOut, close_stream
from airlock.transfer.publish import ArtifactEntry
from airlock.transfer.rename import RenameMap
from airlock.transfer.signature_policy import SignaturePolicy

log = logging.getLogger(__name__)

FOREIGN_NOTE = (
    "imported from an OCI layout written by another tool, which has no airlock catalog: every blob "
    "index.json reaches was verified by its digest and size, but no catalogDigest pins the archive as a whole"
)


def import_blob(
    *,
    source: Blob,
    client: RegistryClient,
    options: frozenset[PipelineOption] = frozenset(),
    catalog_digest: Digest | None = None,
    repository: str | None = None,
    progress: Progress | None = None,
    concurrency: int = 4,
    window_bytes: int = 8 * 1024 * 1024,
    rename: RenameMap | None = None,
    only: frozenset[str] | None = None,
    trusted: TrustedKeys | None = None,
    signatures: SignaturePolicy | None = None,
) -> ImportResult:
    """Import an airlock transfer blob (see :func:`import_archive`) or an OCI layout tar written by
    another tool (see the module docstring); any other blob is refused, saying what it looks like.

    Raises:
        UsageError: ``repository`` for an airlock archive (its catalog names the repositories), or
            ``catalog_digest`` or ``signatures`` for an OCI layout (it has no catalog); an index.json
            entry that names no repository when ``repository`` is not given. Nothing is uploaded in either case.
        NotATransferBlob: neither kind. Otherwise what :func:`import_archive` raises.
    """
    if repository is not None:
        validate_repository(repository)
    info = source.stat()
    if info is None:
        raise BlobNotFound(f"source blob {source.display} does not exist")
    if is_airlock_head(_read(source, 0, min(512, info.size))):
        if repository is not None:
            raise UsageError(
                f"--repository is only for OCI layouts written by other tools: {source.display} is an airlock "
                "transfer blob, whose catalog names each artifact's repository"
            )
        return import_archive(
            source=source,
            client=client,
            options=options,
            catalog_digest=catalog_digest,
            progress=progress,
            concurrency=concurrency,
            window_bytes=window_bytes,
            rename=rename,
            only=only,
            trusted=trusted,
            signatures=signatures,
        )
    if only is not None:
        raise UsageError(f"--retry-failed takes airlock archives only: {source.display} is not one")
    sniffed = sniff(lambda offset, n: _read(source, offset, min(n, info.size - offset)) if offset < info.size else b"")
    if sniffed.kind != OCI_LAYOUT or lone_volume_hint(source.display):  # a later volume may begin with a tar header
        raise not_a_transfer_blob(source.display, sniffed)
    if trusted is not None:  # another tool's layout has no airlock catalog, so no signature
        check_trusted(source.display, None, b"", None, trusted)
    if catalog_digest is not None:
        raise UsageError(
            f"--catalog-digest cannot be checked: {source.display} is an OCI layout written by another tool, "
            "which has no airlock catalog (import it without --catalog-digest; every blob is still verified)"
        )
    if signatures is not None:
        raise UsageError(
            f"signatures are required only of airlock archives: {source.display} is an OCI layout written by "
            "another tool (export it with airlock --include-referrers)"
        )
    client.ping()
    importer = _LayoutImporter(
        source=source,
        client=client,
        options=options,
        progress=progress or NoProgress(),
        concurrency=concurrency,
        window_bytes=window_bytes,
        large_blob=0,
        rename=rename,
    )
    result = importer.run_layout(repository, info.size, info.etag)
    log.warning("%s: %s", source.display, FOREIGN_NOTE)
    delete_source_on_success(importer, result)
    return result


def _read(source: Blob, offset: int, n: int) -> bytes:
    chunks = source.read(offset, n)
    try:
        return b"".join(chunks)[:n]
    finally:
        close_stream(chunks)


class _LayoutImporter(Importer):
    def run_layout(self, repository: str | None, size: int, etag: str | None) -> ImportResult:
        where = f"OCI layout {self.source.display}"
        self.source_etag = etag
        tar = scan_layout(self.source.read, size=size, name=self.source.display)
        manifests: dict[Digest, Manifest] = {}

        def load(desc: Descriptor) -> Manifest:
            if desc.digest not in manifests:
                manifests[desc.digest] = self._manifest(tar, desc, where)
            return manifests[desc.digest]

        found: list[tuple[CatalogArtifact, Digest]] = []
        for entry, desc in _entries(tar.index, repository, where):
            top = load(desc)
            closure(top, load, where=f"artifact {entry['reference']}")  # reads every child manifest
            entry.update(mediaType=top.media_type, subject=str(top.subject.digest) if top.subject else None)
            found.append((CatalogArtifact.from_json(entry), desc.digest))
        renamed = self.rename.entries(e for e, _ in found)
        artifacts = [ArtifactEntry(e, d) for e, (_, d) in zip(renamed, found, strict=True)]
        blob_sizes = {d: m.size for d, m in tar.blobs.items() if d not in manifests}
        needs = self._plan(artifacts, manifests, blob_sizes)
        self.progress.begin(sum(blob_sizes[d] for d in needs), f"import ← {self.source.display}")
        self.blobs_total = sum(len(repos) for repos in needs.values())
        self.progress.blobs(0, self.blobs_total)
        fan = FanOut(workers=self.concurrency, window=self.window)
        self._cancellable = fan.cancellable
        try:
            for d, repos in needs.items():
                member = tar.blobs[d]
                self.submit_ranged(fan, Descriptor("application/octet-stream", d, member.size), repos, member)
                failed = fan.first_error()
                if failed is not None and not self.keep_going:
                    raise failed[1]
        except BaseException:
            fan.cancel()
            raise
        for d, exc in fan.join():
            for art in artifacts:
                if art.closure is not None and d in art.closure.blobs:
                    self.fail(art, exc if isinstance(exc, AirlockError) else ArchiveError(f"blob {d}: {exc!r}"))
        imported = self._push_manifests(artifacts)
        return ImportResult(
            source=self.source.display,
            catalog_digest=None,
            size=size,
            imported=imported,
            failures={a.entry.reference: a.error for a in artifacts if a.error is not None},
            blobs_uploaded=self.result_counts["uploaded"],
            blobs_skipped=self.result_counts["skipped"],
            blobs_mounted=self.result_counts["mounted"],
            source_format="oci-layout",
            note=FOREIGN_NOTE,
        )

    def _manifest(self, tar: LayoutTar, desc: Descriptor, where: str) -> Manifest:
        """The manifest ``desc`` names, read by range and verified by digest and size."""
        member = tar.blobs.get(desc.digest)
        if member is None:
            raise ArchiveError(f"{where}: manifest {desc.digest} is referenced but not in the tar")
        if member.size != desc.size:
            raise ArchiveError(
                f"{where}: manifest {desc.digest} is {member.size} bytes, its descriptor says {desc.size}"
            )
        if member.size > MAX_MANIFEST_SIZE:
            raise ArchiveError(f"{where}: manifest {desc.digest} is over the {MAX_MANIFEST_SIZE}-byte limit")
        raw = _read(self.source, member.offset, member.size)
        m = Manifest.parse(raw, media_type=desc.media_type, where=f"{where}: manifest {desc.digest}")
        if m.digest != desc.digest or len(raw) != desc.size:
            raise IntegrityError(f"{where}: manifest {desc.digest}: content hashes to {m.digest} (the tar is corrupt)")
        return m


def _entries(index: bytes, repository: str | None, where: str) -> list[tuple[dict[str, object], Descriptor]]:
    """(catalog-style artifact entry, descriptor) for each index.json entry, in order."""
    try:
        doc = json.loads(index)
    except (ValueError, UnicodeDecodeError):
        raise ArchiveError(f"{where}: index.json is not valid JSON") from None
    items = doc.get("manifests") if isinstance(doc, dict) else None
    if not isinstance(items, list) or not items:
        raise ArchiveError(f"{where}: index.json lists no manifests")
    if len(items) > MAX_ARTIFACTS:
        raise ArchiveError(f"{where}: index.json lists more than {MAX_ARTIFACTS} manifests")
    out: list[tuple[dict[str, object], Descriptor]] = []
    seen: dict[str, Digest] = {}
    for item in items:
        desc = Descriptor.from_json(item, where=f"{where}: index.json")
        repo, tag = _target(desc.annotations.get(REF_NAME), repository, desc.digest, where)
        reference = f"{repo}:{tag}" if tag else f"{repo}@{desc.digest}"
        if reference in seen:
            if seen[reference] != desc.digest:
                raise ArchiveError(f"{where}: index.json names {reference} twice, for different manifests")
            continue  # the same manifest under the same name twice: once is enough
        seen[reference] = desc.digest
        entry: dict[str, object] = {
            "reference": reference,
            "repository": repo,
            "tag": tag,
            "digest": str(desc.digest),
            "size": desc.size,
        }
        out.append((entry, desc))
    return out


def _target(ref_name: str | None, repository: str | None, digest: Digest, where: str) -> tuple[str, str | None]:
    """(repository, tag) an index.json entry lands in (see the module docstring)."""
    if ref_name is None:
        if repository is None:
            raise UsageError(
                f"{where}: index.json entry {digest} has no {REF_NAME} annotation, so no repository or tag; "
                "give --repository to import it there by digest"
            )
        return repository, None
    named, sep, tag = ref_name.rpartition(":")
    if not sep or "/" in tag:
        named, tag = "", ref_name
    repo = repository or named
    if not repo:
        raise UsageError(
            f"{where}: index.json names {ref_name[:140]!r}, a tag without a repository (as oras and "
            "`oci-archive:x.tar:TAG` write); give --repository to say where it goes"
        )
    try:
        return validate_repository(repo), validate_tag(tag)
    except UsageError as exc:
        raise ArchiveError(
            f"{where}: index.json names {ref_name[:140]!r}, which is not a repository and tag: {exc}"
        ) from None
