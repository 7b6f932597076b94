"""The audit trail's engine: what the chain verifier names, and appends from many writers at once
on PostgreSQL and SQLite never forking the chain (each writer its own engine, as processes are)."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from airlock.db.migrate import upgrade
from airlock.pipelines.audit_chain import GENESIS, AuditEntry, ChainVerifier, canonical_json
from airlock.pipelines.services.audit import AuditService
from airlock.pipelines.store import make_engine
from airlock.testing.postgres import ExternalPostgres, PostgresServer


def _chain(n: int) -> list[AuditEntry]:
    out: list[AuditEntry] = []
    for seq in range(1, n + 1):
        prev = out[-1].hash if out else GENESIS
        out.append(
            AuditEntry(seq, f"2026-12-01T00:00:0{seq}.000000+00:00", "user:t", "export", prev_hash=prev).sealed()
        )
    return out


def _verify(entries: list[AuditEntry], expect_head: str | None = None, *, anchored: bool = True) -> str | None:
    verifier = ChainVerifier(expect_head, anchored=anchored)
    for e in entries:
        if not verifier.feed(e):
            break
    return verifier.finish().broken


def test_canonical_json_sorts_keys_and_refuses_floats() -> None:
    assert canonical_json({"b": 1, "a": ["é"]}) == '{"a":["é"],"b":1}'.encode()
    with pytest.raises(TypeError):
        canonical_json({"a": 1.0})


def test_chain_verifier_names_edited_deleted_inserted_and_cut_tail() -> None:
    good = _chain(4)
    assert _verify(good) is None
    edited = [*good[:1], AuditEntry(**{**good[1].__dict__, "result": "Succeeded!"}), *good[2:]]
    assert _verify(edited) == "audit entry 2 was edited (its content does not hash to its hash)"
    deleted = [good[0], *good[2:]]
    assert _verify(deleted) == "audit entry 2 was deleted (entry 3 follows 1)"
    forged = AuditEntry(2, good[1].time, "user:x", "token.create", prev_hash=good[0].hash).sealed()
    shifted = [AuditEntry(**{**e.__dict__, "seq": e.seq + 1}) for e in good[1:]]
    assert _verify([good[0], forged, *shifted]) == ("audit entry 2 was inserted (entry 3 chains to entry 1, before it)")
    broken = _verify(good[:3], expect_head=good[3].hash)
    assert broken is not None and "its tail was removed or rewritten" in broken
    assert _verify(good, expect_head=good[1].hash) is None  # an older head is still in the chain
    # Anchored (the database), the chain must start at the genesis; a file exported --since need not.
    assert _verify(good[1:]) == "audit entry 2 does not start the chain: entries before it were deleted"
    assert _verify(good[1:], anchored=False) is None
    assert _verify([good[1], good[3]], anchored=False) == "audit entry 3 was deleted (entry 4 follows 2)"


def _appends_never_fork(url: str) -> None:
    writers, each = 4, 15
    first = make_engine(url)
    upgrade(first)  # what `airlock db upgrade` does once; the writers then find the schema current
    first.dispose()

    def write(w: int) -> None:
        engine = make_engine(url)
        try:
            service = AuditService.on(engine)
            for i in range(each):
                service.record("test.append", principal=f"writer:{w}", resources=[f"item-{i}"])
        finally:
            engine.dispose()

    with ThreadPoolExecutor(max_workers=writers) as pool:
        list(pool.map(write, range(writers)))
    engine = make_engine(url)
    try:
        service = AuditService.on(engine)
        report = service.verify()
        assert report.broken is None and report.entries == writers * each, report
        assert [e.seq for e in service.every()] == list(range(1, writers * each + 1))
    finally:
        engine.dispose()


def test_concurrent_appends_on_postgresql_make_one_chain(postgres: PostgresServer | ExternalPostgres) -> None:
    _appends_never_fork(postgres.new_database(f"audit_{uuid.uuid4().hex[:10]}"))


def test_concurrent_appends_on_sqlite_make_one_chain(tmp_path: Path) -> None:
    _appends_never_fork(f"sqlite:///{tmp_path / 'airlock.db'}")
