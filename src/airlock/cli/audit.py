"""``airlock audit list|export|verify``: read the audit trail and check its hash chain.

Like the other control-plane groups, these go through the API (``AIRLOCK_ENDPOINT``, or the
in-process one over ``AIRLOCK_HOME``'s database), so a server's trail and a local one read the
same way; the route admits Readers and up. ``verify --file`` checks an exported JSONL file
offline, with no API and no database: the reviewer's copy.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import typer

from airlock.cli.common import Row, text
from airlock.cli.kernel import Arm, Reply, command
from airlock.errors import AuditChainBroken, UsageError
from airlock.pipelines.audit_chain import AuditEntry, ChainReport, ChainVerifier, jsonl_line

audit_app = typer.Typer(
    rich_markup_mode=None,
    help="The tamper-evident audit trail: list it, export it for a reviewer, verify its hash chain.",
    no_args_is_help=True,
)
SinceOpt = Annotated[
    str | None,
    typer.Option("--since", help="Entries at or after this ISO 8601 time (UTC unless it says), e.g. 2026-12-01."),
]
UntilOpt = Annotated[str | None, typer.Option("--until", help="Entries before this ISO 8601 time.")]
ActionOpt = Annotated[
    str | None,
    typer.Option("--action", help="Only this action (export.run, tokens.create), or a prefix and * (secret*)."),
]
PAGE = 500


def _columns(item: Any) -> Row:
    arts = item.get("artifacts") or []
    return {
        "SEQ": text(item.get("seq")),
        "TIME": text(item.get("time")),
        "PRINCIPAL": text(item.get("principal")),
        "ACTION": text(item.get("action")),
        "RESOURCES": text(", ".join(item.get("resources") or [])),
        "ARTIFACTS": text(", ".join(f"{a.get('reference')}" for a in arts)),
        "RESULT": text(item.get("result")),
    }


def _entries(arm: Arm, since: str | None, until: str | None, action: str | None) -> Iterator[dict[str, Any]]:
    """Every matching entry, a page at a time (memory: one page)."""
    after = 0
    while True:
        query = {"since": since, "until": until, "action": action, "$skiptoken": str(after), "$top": str(PAGE)}
        page = arm.client.get("/airlock/audit?" + urlencode({k: v for k, v in query.items() if v})) or {}
        value = page.get("value") or []
        yield from value
        if not page.get("nextLink") or not value:
            return
        after = int(value[-1]["seq"])


@command(audit_app, "list", columns=_columns)
def list_(arm: Arm, since: SinceOpt = None, until: UntilOpt = None, action: ActionOpt = None) -> Any:
    """List entries in chain order (for many, `audit export` streams them instead).

    Example:

        airlock audit list --since 2026-12-01 --action export.run -o table
    """
    return list(_entries(arm, since, until, action))


@command(audit_app, "export", output=False)
def export(arm: Arm, since: SinceOpt = None, until: UntilOpt = None, action: ActionOpt = None) -> None:
    """Write entries as JSON Lines on stdout, one entry a line, for a reviewer; `audit verify
    --file` checks such a file offline. An export by time (--since, --until) verifies as a piece
    of the chain, whose `start.prevHash` is the head of the entries before it; one by --action
    has gaps and does not verify.

    Example:

        airlock audit export --since 2026-12-01 > audit.jsonl
    """
    out = sys.stdout
    for entry in _entries(arm, since, until, action):
        out.write(jsonl_line(entry))
    out.flush()


def _verify_file(path: Path, expect_head: str | None) -> ChainReport:
    """Check an exported JSONL file line by line. Raises UsageError: the file cannot be read."""
    verifier = ChainVerifier(expect_head, anchored=False)
    try:
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                where = f"{path}, line {number}"
                try:
                    doc = json.loads(line)
                except ValueError:
                    raise AuditChainBroken(f"{where}: not JSON") from None
                try:
                    fed = verifier.feed(AuditEntry.from_json(doc, where=where))
                except (TypeError, ValueError) as exc:  # a float, a lone surrogate: no entry airlock writes
                    raise AuditChainBroken(f"{where}: not an audit entry ({exc})") from None
                if not fed:
                    break
    except UnicodeDecodeError:
        raise AuditChainBroken(f"{path}: not UTF-8 text, so not an export of the audit trail") from None
    except OSError as exc:
        raise UsageError(f"cannot read the audit file {path}: {exc.strerror or exc}") from None
    return verifier.finish()


@command(audit_app, "verify")
def verify(
    arm: Arm,
    file: Annotated[
        Path | None, typer.Option("--file", help="An `audit export` JSONL file to check offline (no API, no database).")
    ] = None,
    expect_head: Annotated[
        str | None,
        typer.Option(
            "--expect-head", help="A head hash recorded earlier: some entry must have it (catches a cut tail)."
        ),
    ] = None,
) -> Any:
    """Check the hash chain, the whole trail's or an exported file's; the first broken entry is named
    (edited, inserted or deleted) and the exit code is 1. Record the printed `head` somewhere else
    and pass it next time as --expect-head: the chain alone cannot show that its newest entries were cut.
    A file may start anywhere (`audit export --since`): `start.prevHash` must then be the head of the
    export before it.

    Example:

        airlock audit verify --query head -o tsv

        airlock audit verify --file audit.jsonl --expect-head sha256:…
    """
    if expect_head is not None and not re.fullmatch(r"sha256:[0-9a-f]{64}", expect_head):
        raise UsageError(f"--expect-head {expect_head[:80]!r}: not a head hash (sha256: and 64 hex digits)")
    if file is not None:
        report = _verify_file(file, expect_head)
    else:
        suffix = "?" + urlencode({"expectHead": expect_head}) if expect_head else ""
        doc = arm.client.get("/airlock/audit/verify" + suffix) or {}
        report = ChainReport(
            entries=int(doc.get("entries", 0)),
            head=str(doc.get("head", "")),
            broken=(doc.get("firstBroken") or {}).get("reason") if not doc.get("verified") else None,
            broken_seq=(doc.get("firstBroken") or {}).get("seq"),
        )
        if not doc.get("verified") and report.broken is None:
            report.broken = "the audit trail does not verify"
    where = f" ({file})" if file is not None else ""
    failure = AuditChainBroken(f"audit trail{where} broken: {report.broken}") if report.broken else None
    return Reply(report.to_json(), failure)
