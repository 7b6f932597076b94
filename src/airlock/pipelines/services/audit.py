"""The audit trail's service: record an action, page through entries, verify the chain.

Callers record what happened, never a secret: resources are ids, paths and secret *URIs*;
artifacts are references and digests; a result is ``Succeeded`` or ``Failed: <error line>``.
Every string still goes through :func:`airlock.observability.redaction.redact` before it is
stored, so a SAS signature, bearer token or password in an error line cannot reach the trail.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from airlock.errors import UsageError
from airlock.observability.redaction import redact
from airlock.pipelines.audit_chain import AuditEntry, ChainReport, ChainVerifier, jsonl_line
from airlock.pipelines.audit_store import SqlAuditLog

MAX_PAGE = 1000


def audit_time(value: datetime | None = None) -> str:
    """The stored form of a time: ISO 8601 in UTC with microseconds (so strings sort as times)."""
    return (value or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="microseconds")


def parse_time(value: str | None, *, flag: str) -> str | None:
    """``--since``/``--until``: an ISO 8601 date or time (UTC unless it says otherwise), stored form.

    Raises:
        UsageError: not such a time (naming ``flag``).
    """
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"{flag} {value[:40]!r} is not an ISO 8601 time (e.g. 2026-12-01 or 2026-12-01T18:00Z)"
        ) from None
    return audit_time(parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC))


def artifact(reference: str, digest: str | None, **more: Any) -> dict[str, Any]:
    """An entry's artifact: its reference and digest (and e.g. its original reference)."""
    return {"reference": reference, "digest": digest, **{k: v for k, v in more.items() if v is not None}}


class AuditService:
    """Appends to and reads the audit trail of one database. Thread-safe."""

    def __init__(self, log: SqlAuditLog) -> None:
        self._log = log

    @classmethod
    def on(cls, engine: Engine) -> AuditService:
        """The audit trail of ``engine``'s database (migrated first). Raises AirlockError: a newer schema."""
        return cls(SqlAuditLog(engine))

    def record(
        self,
        action: str,
        *,
        principal: str,
        resources: Sequence[str] = (),
        artifacts: Sequence[dict[str, Any]] = (),
        catalog_digest: str | None = None,
        result: str = "Succeeded",
    ) -> AuditEntry:
        """Append one entry after the chain's head and return it (sealed: with its hash).

        Raises:
            DBAPIError: the database failed (the caller's action already happened; it fails with it).
        """
        draft = AuditEntry(
            seq=0,
            time=audit_time(),
            principal=redact(principal)[:256],
            action=action,
            resources=[redact(r) for r in resources],
            artifacts=[{k: redact(v) if isinstance(v, str) else v for k, v in a.items()} for a in artifacts],
            catalog_digest=catalog_digest,
            result=redact(result.splitlines()[0] if result else "Succeeded"),
        )
        return self._log.append(draft)

    def page(
        self,
        *,
        after: int = 0,
        top: int = 100,
        since: str | None = None,
        until: str | None = None,
        action: str | None = None,
    ) -> list[AuditEntry]:
        """Entries after ``seq`` ``after`` (at most ``top``, capped at 1000), filtered by time and action
        (``since``/``until`` as :func:`parse_time` reads them; ``action``: exact, or a prefix ending in ``*``).

        Raises:
            UsageError: a time that does not parse.
        """
        return self._log.page(
            after=after,
            limit=max(1, min(top, MAX_PAGE)),
            since=parse_time(since, flag="since"),
            until=parse_time(until, flag="until"),
            action=action or None,
        )

    def newest(
        self,
        *,
        before: int | None = None,
        top: int = 100,
        since: str | None = None,
        until: str | None = None,
        action: str | None = None,
    ) -> list[AuditEntry]:
        """The newest entries with ``seq`` < ``before`` (any, if None), newest first, filtered as
        :meth:`page` filters them (the dashboard's page; the next is ``before`` its last ``seq``).

        Raises:
            UsageError: a time that does not parse.
        """
        return self._log.page(
            limit=max(1, min(top, MAX_PAGE)),
            since=parse_time(since, flag="since"),
            until=parse_time(until, flag="until"),
            action=action or None,
            before=before,
            newest_first=True,
        )

    def lines(self, *, since: str | None = None, until: str | None = None, action: str | None = None) -> Iterator[str]:
        """The matching entries as ``airlock audit export`` writes them: JSON Lines, in chain order,
        read a page at a time. Times are checked before the first line.

        Raises:
            UsageError: a time that does not parse.
        """
        since, until = parse_time(since, flag="since"), parse_time(until, flag="until")

        def read() -> Iterator[str]:
            after = 0
            while entries := self._log.page(after=after, limit=MAX_PAGE, since=since, until=until, action=action):
                yield from (jsonl_line(e.to_json()) for e in entries)
                after = entries[-1].seq

        return read()

    def every(self) -> Iterator[AuditEntry]:
        """Every entry in order, read a page at a time."""
        return self._log.every()

    def verify(self, expect_head: str | None = None) -> ChainReport:
        """Check the whole chain in the database (and that ``expect_head``, if given, is one of its
        hashes); the report names the first broken entry. Raises nothing for a broken chain."""
        verifier = ChainVerifier(expect_head)
        for entry in self._log.every():
            if not verifier.feed(entry):
                break
        return verifier.finish()
