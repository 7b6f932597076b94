"""`airlock db upgrade` is the one migration path of the scale-out mode's job queue (procrastinate):
on PostgreSQL it installs the queue's schema once; on SQLite, the embedded mode, it installs none."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import psycopg

from airlock.db.migrate import head_revision
from airlock.pipelines.queue import conninfo
from airlock.testing.console import Console
from airlock.testing.postgres import PostgresServer


def test_db_upgrade_installs_the_job_queue_on_postgresql_once_and_never_on_sqlite(
    tmp_path: Path, postgres: PostgresServer
) -> None:
    url = postgres.new_database(f"cli_{uuid.uuid4().hex[:12]}")
    cli = Console(home=tmp_path, env={"AIRLOCK_DATABASE_URL": url})
    assert cli.ok("db", "upgrade").json() == {"from": None, "revision": head_revision()}
    with psycopg.connect(conninfo(url)) as conn:
        conn.execute("INSERT INTO procrastinate_jobs (queue_name, task_name) VALUES ('q', 'kept')")
        conn.commit()
    assert cli.ok("db", "upgrade").json() == {"from": head_revision(), "revision": head_revision()}
    assert cli.ok("db", "current").json()["current"] is True
    with psycopg.connect(conninfo(url)) as conn:
        assert conn.execute("SELECT task_name FROM procrastinate_jobs").fetchall() == [("kept",)]

    embedded = Console(home=tmp_path / "embedded")
    (tmp_path / "embedded").mkdir()
    assert embedded.ok("db", "upgrade").json()["revision"] == head_revision()
    with sqlite3.connect(tmp_path / "embedded" / ".airlock" / "airlock.db") as conn:
        tables = [name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    assert "resources" in tables and not [t for t in tables if t.startswith("procrastinate")]
