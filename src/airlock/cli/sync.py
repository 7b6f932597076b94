"""Recurring sync on the command line: ``import --rename`` and ``--receipt-out``, ``export
--delta-from``, and ``airlock inventory`` (the engine is :mod:`airlock.transfer.rename`,
:mod:`~airlock.transfer.receipt`, :mod:`~airlock.transfer.inventory` and :mod:`~airlock.transfer.delta`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from airlock.cli import display
from airlock.cli.common import REGISTRY_SCHEME_RULE, hint
from airlock.cli.endpoints import registry_client
from airlock.errors import ReceiptError, UsageError
from airlock.oci.reference import validate_repository
from airlock.registry.client import RegistryClient
from airlock.transfer.delta import DeltaBase
from airlock.transfer.import_result import ImportResult
from airlock.transfer.inventory import inventory
from airlock.transfer.receipt import Receipt, write_receipt
from airlock.transfer.rename import RenameMap

RenameOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--rename",
        help="SRC_PREFIX=DST_PREFIX: import artifacts of repositories starting with SRC_PREFIX into DST_PREFIX… "
        "(e.g. team/=mirror/team/); repeatable, the longest matching prefix wins. Index children, referrers and "
        "sha256-<hex> fallback tags follow their artifact.",
    ),
]
ReceiptOutOpt = Annotated[
    str | None,
    typer.Option(
        "--receipt-out",
        help="Write a receipt (JSON: what the target holds in the repositories imported into, by manifest and "
        "blob digest) to this file after the import; carry it back for export --delta-from.",
    ),
]
DeltaFromOpt = Annotated[
    str | None,
    typer.Option(
        "--delta-from",
        help="A receipt of the target registry (import --receipt-out or airlock inventory): leave out every blob "
        "it lists, and every artifact whose tag already points at it there (a delta archive).",
    ),
]


def rename_map(specs: list[str] | None) -> RenameMap | None:
    """``--rename`` values as a map (None when not given). Raises UsageError for a malformed one."""
    return RenameMap.parse(specs) if specs else None


def delta_base(path: str | None) -> DeltaBase | None:
    """``--delta-from``'s receipt, read and checked.

    Raises:
        UsageError: the file is not a readable, valid receipt (the message names it and why), as
            for the other files a flag names (``--selection``, ``--retry-failed``): exit 2.
    """
    if not path:
        return None
    try:
        return DeltaBase.load(path)
    except ReceiptError as exc:
        raise UsageError(f"--delta-from: {exc}") from None


def said_delta(out: dict[str, Any]) -> dict[str, Any]:
    """Say on stderr how big a delta export is against a full one; returns ``out``."""
    delta = out.get("delta")
    if isinstance(delta, dict):
        hint(
            f"delta: {display.size(delta['size'])} instead of {display.size(delta['fullSize'])} for a full archive "
            f"({delta['blobsLeftOut']} blob(s), {display.size(delta['bytesLeftOut'])}, and "
            f"{len(delta['artifactsLeftOut'])} unchanged artifact(s) left out)"
        )
    return out


def check_receipt_out(path: str | None) -> None:
    """Refuse, before any work, a ``--receipt-out`` that cannot be written: its directory is missing
    or not writable, or the path is a directory. Raises UsageError."""
    if path is None:
        return
    target = Path(path).expanduser()
    directory = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise UsageError(f"--receipt-out {path}: is a directory; give a file name")
    if not directory.is_dir():
        raise UsageError(f"--receipt-out {path}: directory {directory} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise UsageError(f"--receipt-out {path}: directory {directory} is not writable")


def receipt_after_import(
    client: RegistryClient,
    result: ImportResult,
    out: dict[str, Any],
    path: str | None,
    rename: RenameMap | None,
    concurrency: int,
) -> dict[str, Any]:
    """``--receipt-out``: inventory the repositories the import went into (or found unchanged) and write
    the receipt; the result ``out`` then names it. Raises ReceiptError (file) or RegistryError (inventory)."""
    if path is None:
        return out
    # Unchanged artifacts of a delta count too: a receipt after a delta with nothing new is not empty.
    repos = sorted({_repository(ref) for ref in result.imported + result.unchanged})
    renamed = rename.to_json() if rename else None
    receipt = inventory(client, repositories=repos, rename=renamed, concurrency=concurrency)
    out["receipt"] = _summary(receipt, path, write_receipt(receipt, path))
    return out


def _repository(reference: str) -> str:
    return reference.split("@", 1)[0] if "@" in reference else reference.rsplit(":", 1)[0]


def _summary(receipt: Receipt, path: str, size: int) -> dict[str, Any]:
    return {
        "path": path,
        "size": size,
        "repositories": len(receipt.repositories),
        "manifests": sum(len(r.manifests) for r in receipt.repositories.values()),
        "blobs": len(receipt.blobs),
    }


def inventory_cmd(
    registry: Annotated[
        str, typer.Option("--registry", help=f"Registry URL to take the inventory of. {REGISTRY_SCHEME_RULE}")
    ],
    repository: Annotated[
        list[str] | None,
        typer.Option(
            "--repository",
            help="Space-separated repositories to record (default: every repository of the registry's /v2/_catalog).",
        ),
    ] = None,
    receipt_out: Annotated[
        str | None,
        typer.Option("--receipt-out", help="Write the receipt to this file and print a summary (default: print it)."),
    ] = None,
    username: Annotated[
        str | None, typer.Option("--username", "-u", help="Registry username; the password is read from stdin.")
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the registry password from stdin (with --username).")
    ] = False,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, max=64, help="Manifests read at once.")] = 4,
    rename: Annotated[
        list[str] | None,
        typer.Option(
            "--rename",
            help="SRC_PREFIX=DST_PREFIX: the --rename the imports into this registry applied; recorded in the "
            "receipt, so that export --delta-from looks the source's names up under these. Repeatable.",
        ),
    ] = None,
) -> dict[str, Any]:
    """Write a receipt: what a registry holds, per repository, by manifest and blob digest.

    Carry it to the connected side and give it to export --delta-from, which then leaves out what the
    target already has. Names are the registry's: when the imports renamed (import --rename), give
    the same --rename here. A named repository that does not exist is recorded as holding nothing,
    and said on stderr.

    Examples:

        airlock inventory --registry https://registry.internal \\
            --receipt-out receipt.json

        airlock inventory --registry localhost:5001 --repository team/app team/base \\
            --query "keys(repositories)" -o tsv

        airlock inventory --registry localhost:5001 --repository mirror/team/app \\
            --rename team/=mirror/team/ --receipt-out receipt.json
    """
    for name in repository or []:
        validate_repository(name)
    renamed = rename_map(rename)
    check_receipt_out(receipt_out)
    client = registry_client(registry, username, password_stdin, concurrency)
    client.ping()
    receipt = inventory(
        client,
        repositories=repository or None,
        rename=renamed.to_json() if renamed else None,
        concurrency=concurrency,
    )
    for name in dict.fromkeys(repository or []):
        if not receipt.repositories[name].tags:
            hint(f"repository {name} has no tags in {receipt.registry}: recorded as holding nothing")
    if receipt_out is None:
        doc: dict[str, Any] = receipt.model_dump(by_alias=True, mode="json", exclude_none=True)
        return doc
    return {"registry": receipt.registry, **_summary(receipt, receipt_out, write_receipt(receipt, receipt_out))}
