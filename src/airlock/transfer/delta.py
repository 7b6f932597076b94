"""Delta bundles: an export that leaves out what a receipt says the target registry holds.

Export (``--delta-from RECEIPT``):

- a **blob** (config or layer) is left out when the receipt lists its digest in *any* repository
  of the target: the import can HEAD it in the artifact's repository or mount it from that one;
- an **artifact** (its manifest or index) is left out only when its tag already points at the same
  digest in the receipt. Repository names are the target's: when the receipt was written by an
  import with ``--rename``, its ``rename`` map is applied to the export's names before the lookup.
  Artifacts named by digest (referrers) always travel: their manifests are small.

The catalog then says ``requires: ["delta"]`` and, in ``delta``, which receipt it was made
against, every blob left out (with a repository that holds it), the artifacts left out, and the
size a full archive would have had.

Import, before anything is uploaded, and so before any tag:

- :func:`check_unchanged`: every artifact the delta left out must still be tagged in the target
  with the digest the catalog records (HEAD), or the import would report as unchanged a tag that
  was deleted or moved since the receipt;
- :func:`check_present`: every left-out blob an artifact needs must be in the artifact's target
  repository (HEAD), or be mounted there from the repository the catalog names.

If either finds something missing the import stops, naming it, and nothing is tagged: the target
changed since the receipt (garbage collection, a deleted repository or tag), so a fresh receipt is
needed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from airlock.archive.format import CatalogArtifact, CatalogDelta, DeltaArtifact, DeltaBlob, DeltaReceipt
from airlock.errors import ArchiveError, DeltaIncomplete, UsageError
from airlock.oci.digest import Digest
from airlock.oci.manifest import Descriptor
from airlock.oci.reference import ArtifactReference, validate_repository
from airlock.registry.client import RegistryClient
from airlock.transfer.concurrent_map import REQUESTS_IN_FLIGHT, ordered_map
from airlock.transfer.receipt import Receipt, read_receipt
from airlock.transfer.rename import RenameMap

# How many missing digests an error names before it just counts them.
_NAMED = 3


@dataclass
class DeltaBase:
    """A receipt an export leaves out against (see the module docstring)."""

    receipt: Receipt
    digest: Digest
    source: str

    @classmethod
    def load(cls, path: str | Path) -> DeltaBase:
        """Raises: ReceiptError (see :func:`airlock.transfer.receipt.read_receipt`); UsageError: the
        receipt's recorded rename is malformed (see :meth:`RenameMap.of`)."""
        receipt, digest = read_receipt(path)
        return cls(receipt, digest, str(path))

    def __post_init__(self) -> None:
        self._held = self.receipt.blob_holders()
        self._rename = RenameMap.of(self.receipt.rename, where=f"receipt {self.source} rename")

    def unchanged(self, repository: str, tag: str | None, digest: Digest) -> bool:
        """Whether ``repository:tag`` (the source's names) already points at ``digest`` in the target."""
        if tag is None:
            return False
        return self.receipt.tag_digest(self._rename.apply(repository), tag) == str(digest)

    def holder(self, desc: Descriptor) -> str | None:
        """A target repository holding the blob (digest and size as the receipt lists), or None."""
        held = self._held.get(desc.digest)
        return held[1] if held is not None and held[0] == desc.size else None

    def catalog_delta(
        self, left_out: Mapping[Digest, tuple[Descriptor, str]], unchanged: list[tuple[str, Digest]], full_size: int
    ) -> CatalogDelta:
        return CatalogDelta(
            receipt=DeltaReceipt(
                registry=self.receipt.registry, createdAt=self.receipt.created_at, digest=str(self.digest)
            ),
            blobs=[
                DeltaBlob(digest=str(d), size=desc.size, mediaType=desc.media_type, repository=repo)
                for d, (desc, repo) in sorted(left_out.items(), key=lambda kv: str(kv[0]))
            ],
            artifacts=[DeltaArtifact(reference=ref, digest=str(d)) for ref, d in unchanged],
            fullSize=full_size,
        )


def report(delta: CatalogDelta, size: int) -> dict[str, object]:
    """What an export or inspect says of a delta: what was left out, its size against a full one."""
    return {
        "receipt": delta.receipt.model_dump(by_alias=True, mode="json"),
        "blobsLeftOut": len(delta.blobs),
        "bytesLeftOut": sum(b.size for b in delta.blobs),
        "artifactsLeftOut": [a.reference for a in delta.artifacts],
        "size": size,
        "fullSize": delta.full_size,
    }


def unchanged_references(
    delta: CatalogDelta | None, rename: RenameMap, shipped: Sequence[CatalogArtifact] = ()
) -> list[str]:
    """The artifacts a delta left out, as references in the target's names (none without a delta).

    ``shipped`` are the entries the archive carries, in its own names. A left-out artifact on the
    tag of a shipped one with another digest would be reported unchanged while the shipped one
    replaced it (or met a tag conflict), so that is refused.

    Raises:
        ArchiveError: a reference's repository is not a valid name, or the catalog itself puts a
            left-out and a shipped artifact on one tag (the archive is data).
        UsageError: the rename puts a left-out and a shipped artifact on one tag (both named), or
            makes an invalid name of a shipped one (see :meth:`RenameMap.entry`).
    """
    if delta is None:
        return []
    try:
        references = [rename.reference(a.reference) for a in delta.artifacts]
    except UsageError as exc:
        raise ArchiveError(f"archive catalog names an invalid artifact: {exc}") from None
    on_tag = {f"{r.repository}:{r.tag}": e for e in shipped if (r := rename.entry(e)).tag is not None}
    for ref, left_out in zip(references, delta.artifacts, strict=True):
        entry = on_tag.get(ref)
        if entry is None or entry.digest == left_out.digest:
            continue
        if left_out.reference == f"{entry.repository}:{entry.tag}":  # so in the archive's own names
            raise ArchiveError(
                f"archive catalog lists {left_out.reference} both as left out ({left_out.digest}) and shipped"
            )
        raise UsageError(
            f"renaming would put {left_out.reference} ({left_out.digest}) and {entry.reference} "
            f"({entry.digest}) on one tag, {ref}, the first left out by the delta as unchanged there; "
            "nothing was imported: give them prefixes that keep them apart"
        )
    return references


def check_unchanged(
    client: RegistryClient,
    delta: CatalogDelta,
    references: Sequence[str],
    *,
    where: str,
    concurrency: int = 4,
) -> None:
    """Make sure each artifact the delta left out is still in the target as the catalog records it.

    ``references`` are :func:`unchanged_references`' (the target's names), in the order of
    ``delta.artifacts``. Each is HEADed; its tag must exist and point at the recorded digest.
    Uploads nothing and tags nothing.

    Raises:
        ArchiveError: a reference is not one (the archive is data: it goes into a URL only if valid).
        DeltaIncomplete: some are missing or point elsewhere: names the first few (and what each
            tag points at now) and the count, and says to export again with a fresh receipt.
        RegistryError: a HEAD failed other than by the manifest being absent.
    """
    wanted: list[tuple[str, ArtifactReference, Digest]] = []
    for ref, artifact in zip(references, delta.artifacts, strict=True):
        try:
            if ":" not in ref.rsplit("/", 1)[-1]:  # a tag (or digest) is what makes it unchanged: never :latest
                raise UsageError(f"{ref[:200]!r} names no tag")
            wanted.append((ref, ArtifactReference.parse(ref), Digest.parse(artifact.digest)))
        except UsageError as exc:
            raise ArchiveError(f"archive catalog names an invalid unchanged artifact: {exc}") from None

    def now(item: tuple[str, ArtifactReference, Digest]) -> Digest | None:
        parsed = item[1]
        info = client.head_manifest(parsed.repository, str(parsed.digest) if parsed.digest else str(parsed.tag))
        return None if info is None else info.digest

    found = ordered_map(now, wanted, workers=REQUESTS_IN_FLIGHT if concurrency > 1 else 1)
    wrong = [
        f"{ref} (not there)" if got is None else f"{ref} (now {got})"
        for (ref, _, recorded), got in zip(wanted, found, strict=True)
        if got != recorded
    ]
    if wrong:
        named = ", ".join(wrong[:_NAMED]) + (f" and {len(wrong) - _NAMED} more" if len(wrong) > _NAMED else "")
        raise DeltaIncomplete(
            f"delta archive {where}: {len(wrong)} artifact(s) it left out as unchanged are no longer so in the "
            f"target registry ({named}); nothing was tagged: export again with a fresh receipt "
            "(airlock inventory, or import --receipt-out)"
        )


def check_present(
    client: RegistryClient,
    delta: CatalogDelta,
    needs: Mapping[Digest, list[str]],
    *,
    unchanged: Sequence[str],
    where: str,
    count: Callable[[str], None],
    concurrency: int = 4,
) -> None:
    """Make sure the target holds what the delta left out: first the artifacts (``unchanged``, see
    :func:`check_unchanged`), then every left-out blob in ``needs`` (digest → target repositories)
    in each of its repositories.

    A blob is HEADed there, else mounted from the repository the catalog names (``count`` is told
    "skipped" or "mounted"). Uploads nothing and tags nothing.

    Raises:
        ArchiveError: the catalog names a blob's repository that is not a valid name.
        DeltaIncomplete: some are missing (or, for an artifact, moved): names the first few and the
            count, and says to export again with a fresh receipt.
        RegistryError: a HEAD or mount failed other than by the blob or manifest being absent.
    """
    check_unchanged(client, delta, unchanged, where=where, concurrency=concurrency)
    absent = {Digest.parse(b.digest): b for b in delta.blobs}
    for b in absent.values():  # the archive is data: a name it gives goes into a mount URL only if valid
        if b.repository is not None:
            try:
                validate_repository(b.repository)
            except UsageError as exc:
                raise ArchiveError(f"archive delta names blob {b.digest} in an invalid repository: {exc}") from None
    pairs = [(d, repo) for d, repos in needs.items() if d in absent for repo in repos]

    def present(pair: tuple[Digest, str]) -> bool:
        d, repo = pair
        blob = absent[d]
        if client.blob_size(repo, d) == blob.size:
            count("skipped")
            return True
        if blob.repository and blob.repository != repo and client.mount_blob(repo, d, blob.repository):
            count("mounted")
            return True
        return False

    # Bounded look-ahead (a delta of thousands of small artifacts is thousands of HEADs); HEADs carry
    # no bulk data, so as many run at once as other small requests do, except at concurrency 1.
    found = list(ordered_map(present, pairs, workers=REQUESTS_IN_FLIGHT if concurrency > 1 else 1))
    missing = sorted({str(d) for (d, _), ok in zip(pairs, found, strict=True) if not ok})
    if missing:
        named = ", ".join(missing[:_NAMED]) + (f" and {len(missing) - _NAMED} more" if len(missing) > _NAMED else "")
        raise DeltaIncomplete(
            f"delta archive {where}: {len(missing)} blob(s) it left out are not in the target registry ({named}); "
            "nothing was tagged: export again with a fresh receipt (airlock inventory, or import --receipt-out), "
            "or without --delta-from if the target's repositories lost blobs their manifests name"
        )
