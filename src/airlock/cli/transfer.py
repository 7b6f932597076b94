"""The transfer commands: ``export``, ``import``, ``copy`` and ``inspect`` (registered on the app by
:mod:`airlock.cli.main`, which supplies ``-o``/``--query`` and rendering through the kernel)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from airlock.cli import common, provenance, signatures, signing, sync
from airlock.cli import selection as sel
from airlock.cli.common import REGISTRY_SCHEME_RULE
from airlock.cli.endpoints import (
    ConcurrencyOpt,
    PasswordStdinOpt,
    SasFileOpt,
    SecretUriOpt,
    UserOpt,
    blob_at,
    failures_error,
    flag_hints,
    progress_display,
    registry_client,
    sas_token,
)
from airlock.cli.kernel import Reply
from airlock.cli.resume import CopyResumeOpt, ResumeOpt, RetryFailedOpt, import_selection, retried_artifacts
from airlock.cli.volumes import VolumeSizeOpt, volume_size
from airlock.errors import AirlockError, ReceiptError, TransferFailed
from airlock.oci.digest import Digest
from airlock.oci.reference import RegistryURL, validate_repository
from airlock.transfer.export import ExportResult, export_artifacts
from airlock.transfer.inspection import copy_blob, inspect_archive
from airlock.transfer.layout_import import import_blob
from airlock.transfer.options import (
    EXPORT_OPTIONS,
    IMPORT_OPTIONS,
    PipelineOption,
    parse_options,
)


def export_cmd(
    source_registry: Annotated[
        str,
        typer.Option(
            "--source-registry",
            help=f"Registry URL, e.g. https://myregistry.example.com or http://127.0.0.1:5000. {REGISTRY_SCHEME_RULE}",
        ),
    ],
    target: Annotated[str, typer.Option("--target", help="Blob URI to write: file:///… or https://…/container/blob.")],
    artifacts: Annotated[
        list[str] | None,
        typer.Option(
            "--artifacts",
            "-a",
            help="Space-separated artifacts: repo (= repo:latest), repo:tag or repo@sha256:…, optionally "
            "prefixed with the source registry's host[:port] (HOST/repo:tag).",
        ),
    ] = None,
    repository: sel.RepositoryOpt = None,
    tags: sel.TagsOpt = None,
    semver_range: sel.SemverOpt = None,
    keep: sel.KeepOpt = None,
    platform: sel.PlatformOpt = None,
    platform_index: sel.PlatformIndexOpt = None,
    selection: sel.SelectionOpt = None,
    dry_run: sel.DryRunOpt = False,
    sas_token_file: SasFileOpt = None,
    secret_uri: SecretUriOpt = None,
    options: Annotated[
        list[str] | None,
        typer.Option(
            "--options",
            "-z",
            help="Space-separated: OverwriteBlobs (replace an existing target), ContinueOnErrors (leave failing "
            "artifacts out, exit 1 after writing the rest), IncludeReferrers (same as --include-referrers).",
        ),
    ] = None,
    include_referrers: Annotated[
        bool,
        typer.Option(
            "--include-referrers", help="Also export signatures, SBOMs and other referrers (= -z IncludeReferrers)."
        ),
    ] = False,
    username: UserOpt = None,
    password_stdin: PasswordStdinOpt = False,
    concurrency: ConcurrencyOpt = 4,
    delta_from: sync.DeltaFromOpt = None,
    resume: ResumeOpt = False,
    retry_failed: RetryFailedOpt = None,
    volume_size_text: VolumeSizeOpt = None,
    sign_key: signing.SignKeyOpt = None,
    sign_key_passphrase_file: signing.SignKeyPassphraseFileOpt = None,
) -> Reply:
    """Export artifacts from a registry into one transfer blob.

    Examples:

        airlock export --source-registry https://registry.example.com \\
            --artifacts team/app:1.4 team/base:2 --include-referrers \\
            --target https://srcacct.blob.core.windows.net/transfer/batch1.tar \\
            --sas-token-file export.sas

        airlock export --source-registry localhost:5000 -a samples/app:1.0 \\
            --target ./batch1.tar --query catalogDigest -o tsv

        airlock export --source-registry localhost:5000 --repository 'team/*' \\
            --semver '>=1.4 <2' --keep 3 --platform linux/amd64 \\
            --target ./nightly.tar --dry-run --query artifacts -o tsv

        airlock export --source-registry localhost:5000 -a samples/app:1.0 \\
            --target ./batch1.tar --resume

        airlock export --source-registry localhost:5000 \\
            --retry-failed batch1.json --target ./batch1-retry.tar

        airlock export --source-registry localhost:5000 -a samples/app:1.0 \\
            --target /media/usb/batch1.tar --volume-size 4095MiB \\
            --query "volumes[].uri" -o tsv

        airlock export --source-registry localhost:5000 -a samples/app:1.0 \\
            --target ./batch1.tar --sign-key sign.pem --query signature
    """
    named = retried_artifacts(artifacts, retry_failed, rules=bool(repository or selection))
    chosen = sel.export_selection(
        artifacts=named, repositories=repository or [], tags=tags, semver_range=semver_range, keep=keep,
        platforms=platform or [], platform_index=platform_index, selection_file=selection,
    )  # fmt: skip
    registry_url = RegistryURL.parse(source_registry)
    opts = parse_options(options or [], EXPORT_OPTIONS, kind="export")
    if include_referrers:
        opts |= {PipelineOption.INCLUDE_REFERRERS}
    volumes = volume_size(volume_size_text)
    delta = sync.delta_base(delta_from)  # a bad receipt is a usage error before any network work
    signer = signing.signing_key(sign_key, sign_key_passphrase_file)
    blob = blob_at(target, sas_token(sas_token_file, secret_uri, what="target"), "--sas-token-file or --secret-uri")
    client = registry_client(source_registry, username, password_stdin, concurrency)
    with progress_display() as progress, flag_hints({blob.display: "--sas-token-file or --secret-uri"}):
        refs = sel.resolve(client, chosen, registry_url, concurrency)
        try:
            result = export_artifacts(
                client=client,
                artifacts=refs.references,
                target=blob,
                options=opts,
                progress=progress,
                concurrency=concurrency,
                delta=delta,
                platforms=refs.platforms,
                platform_index=refs.platform_index,
                dry_run=dry_run,
                resume=resume,
                volume_size=volumes,
                signer=signer,
                provenance=provenance.export_context(chosen),
            )
        except TransferFailed as exc:
            if PipelineOption.CONTINUE_ON_ERRORS not in opts or not exc.failures:
                raise
            # Every artifact failed and nothing was written: the failures still go to stdout, as
            # after a partial failure, so that --retry-failed can take them.
            empty = ExportResult(blob.display, None, 0, [], exc.failures, dry_run=dry_run)  # the shape of any result
            return Reply(empty.to_json(), exc)
    unrecorded = provenance.after_export(result)
    out = sync.said_delta(result.to_json())
    return Reply(out, failures_error(result.failures, "failed and were left out of the archive") or unrecorded)


def import_cmd(
    source: Annotated[str, typer.Option("--source", help="Blob URI of the transfer blob to import.")],
    target_registry: Annotated[
        str, typer.Option("--target-registry", help=f"Registry URL to import into. {REGISTRY_SCHEME_RULE}")
    ],
    sas_token_file: SasFileOpt = None,
    secret_uri: SecretUriOpt = None,
    options: Annotated[
        list[str] | None,
        typer.Option("--options", "-z", help="OverwriteTags, DeleteSourceBlobOnSuccess, ContinueOnErrors."),
    ] = None,
    catalog_digest: Annotated[
        str | None,
        typer.Option(
            "--catalog-digest",
            help="The export's catalogDigest (sha256:…, the digest of the archive's catalog, which names every "
            "blob by digest): checked before anything is uploaded.",
        ),
    ] = None,
    repository: Annotated[
        str | None,
        typer.Option(
            "--repository",
            help="Only for an OCI layout tar written by another tool (skopeo oci-archive:, oras): the repository "
            "its artifacts go to, needed when its index.json names bare tags.",
        ),
    ] = None,
    username: UserOpt = None,
    password_stdin: PasswordStdinOpt = False,
    concurrency: ConcurrencyOpt = 4,
    rename: sync.RenameOpt = None,
    receipt_out: sync.ReceiptOutOpt = None,
    retry_failed: RetryFailedOpt = None,
    trusted_key: signing.TrustedKeyOpt = None,
    require_signed_by: signatures.RequireSignedByOpt = None,
    trusted_root: signatures.TrustedRootOpt = None,
    certificate_identity: signatures.CertificateIdentityOpt = None,
    certificate_oidc_issuer: signatures.CertificateIssuerOpt = None,
    annotate_provenance: provenance.AnnotateProvenanceOpt = False,
) -> Reply:
    """Import every artifact of a transfer blob into a registry (tags are written last).

    An OCI layout tar written by another tool (skopeo oci-archive:, oras) is imported too, every blob
    verified by its digest, but without an airlock catalog to pin the whole (no catalogDigest).

    Examples (DIGEST: the catalogDigest the export printed, carried across apart from the blob):

        airlock import --source /media/usb/batch1.tar \\
            --target-registry https://registry.internal --catalog-digest "$DIGEST"

        airlock import --source https://dstacct.blob.core.windows.net/transfer/b.tar \\
            --sas-token-file import.sas --target-registry localhost:5001 \\
            --options OverwriteTags DeleteSourceBlobOnSuccess

        airlock import --source /media/usb/batch1.tar \\
            --target-registry localhost:5001 --retry-failed import1.json

        airlock import --source /media/usb/batch1.tar \\
            --target-registry localhost:5001 \\
            --trusted-key sign.pub.pem --trusted-key next.pub.pem

        airlock import --source /media/usb/batch1.tar \\
            --target-registry localhost:5001 --require-signed-by cosign.pub
    """
    expected = Digest.parse(catalog_digest) if catalog_digest else None
    only, expected = import_selection(retry_failed, expected)
    if repository is not None:
        validate_repository(repository)
    opts = parse_options(options or [], IMPORT_OPTIONS, kind="import")
    renames = sync.rename_map(rename)
    sync.check_receipt_out(receipt_out)  # before any tag is written, not after them all
    trusted = signing.trusted_keys(trusted_key)
    policy = signatures.signature_policy(require_signed_by, trusted_root, certificate_identity, certificate_oidc_issuer)
    blob = blob_at(source, sas_token(sas_token_file, secret_uri, what="source"), "--sas-token-file or --secret-uri")
    client = registry_client(target_registry, username, password_stdin, concurrency)
    with progress_display() as progress, flag_hints({blob.display: "--sas-token-file or --secret-uri"}):
        result = import_blob(
            source=blob,
            client=client,
            options=opts,
            catalog_digest=expected,
            repository=repository,
            progress=progress,
            concurrency=concurrency,
            rename=renames,
            only=only,
            trusted=trusted,
            signatures=policy,
        )
    # Provenance referrers first: they move the sha256-<hex> fallback tags, and the receipt records
    # the target as the import leaves it (else the next delta leaves out a tag that has moved).
    out, unrecorded = provenance.after_import(client, result, result.to_json(), annotate_provenance)
    error = failures_error(result.failures, "failed to import") or unrecorded
    try:
        out = sync.receipt_after_import(client, result, out, receipt_out, renames, concurrency)
    except AirlockError as exc:  # the file, or the inventory: the import is done; say so, with its result
        also = f"; and {error}" if error else ""
        return Reply(out, ReceiptError(f"{exc}; no receipt was written, the import itself completed (above){also}"))
    return Reply(out, error)


def copy_cmd(
    source: Annotated[str, typer.Argument(help="Blob URI to read.")],
    target: Annotated[str, typer.Argument(help="Blob URI to write.")],
    source_sas_token_file: Annotated[
        str | None, typer.Option("--source-sas-token-file", help="SAS token file for the source.")
    ] = None,
    target_sas_token_file: Annotated[
        str | None, typer.Option("--target-sas-token-file", help="SAS token file for the target.")
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace the target blob if it exists.")] = False,
    resume: CopyResumeOpt = False,
) -> Reply:
    """Copy a transfer blob from any storage to any storage, streaming (no local copy).

    An airlock archive is checked against its catalog as it streams; a cut or tampered one leaves no target.
    Any other blob is copied as it is, unverified ("verified": false).

    Examples:

        airlock copy https://srcacct.blob.core.windows.net/transfer/batch1.tar \\
            /media/usb/batch1.tar --source-sas-token-file read.sas

        airlock copy /media/usb/batch1.tar \\
            https://dstacct.blob.core.windows.net/transfer/batch1.tar \\
            --target-sas-token-file write.sas --overwrite

        airlock copy /media/usb/batch1.tar ./batch1.tar --resume
    """
    src = blob_at(source, sas_token(source_sas_token_file, None, what="source"), "--source-sas-token-file")
    dst = blob_at(target, sas_token(target_sas_token_file, None, what="target"), "--target-sas-token-file")
    flags = {src.display: "--source-sas-token-file", dst.display: "--target-sas-token-file"}
    with progress_display() as progress, flag_hints(flags, overwrite="--overwrite"):
        result = copy_blob(src, dst, overwrite=overwrite, progress=progress, resume=resume)
    unrecorded = provenance.after_copy(src.display, dst.display, result)
    if result.get("note"):
        common.hint(f"warning: {result['note']}")  # on stderr too: -o none and tables do not show it
    return Reply(result, unrecorded)


def inspect_cmd(
    blob: Annotated[str, typer.Argument(help="Blob URI of a transfer blob.")],
    sas_token_file: SasFileOpt = None,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify",
            help="Read the whole blob and check every member against the catalog (which the catalogDigest covers).",
        ),
    ] = False,
    trusted_key: signing.TrustedKeyOpt = None,
) -> dict[str, Any]:
    """Show what a transfer blob holds, and its catalogDigest, without importing it.

    Reads only its head and last bytes, and fails if its size is not what its catalog implies;
    --verify reads it all and checks every member against the catalog.

    Examples:

        airlock inspect /media/usb/batch1.tar --query "artifacts[].reference" -o tsv

        airlock inspect https://dstacct.blob.core.windows.net/transfer/batch1.tar \\
            --sas-token-file read.sas --verify

        airlock inspect /media/usb/batch1.tar --verify --trusted-key sign.pub.pem
    """
    src = blob_at(blob, sas_token(sas_token_file, None, what="blob"), "--sas-token-file")
    with progress_display() as progress, flag_hints({src.display: "--sas-token-file"}):
        return inspect_archive(src, verify=verify, progress=progress, trusted=signing.trusted_keys(trusted_key))
