"""One migration path (Alembic): an empty database and one written by an earlier release both reach
the schema the code declares, and keep their data; a database from a newer release is refused."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, inspect, text

from airlock.db import job_queue, migrate
from airlock.db.schema import metadata
from airlock.errors import AirlockError
from airlock.testing.console import Console
from airlock.testing.polling import wait_until
from airlock.testing.postgres import PostgresServer

DATA = Path(__file__).with_name("data")
RELEASE = "release-574e0da"  # the last release before Alembic


def _schema_differences(url: str) -> list[object]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            # procrastinate's tables (revision 0003, PostgreSQL) are the job queue's, not the metadata's.
            context = MigrationContext.configure(conn, opts={"include_name": job_queue.include_name})
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


@pytest.fixture
def engines() -> Iterator[Callable[[str], Engine]]:
    """``create_engine``, with every engine disposed after the test (no connection left to the GC)."""
    made: list[Engine] = []

    def make(url: str) -> Engine:
        made.append(create_engine(url))
        return made[-1]

    yield make
    for engine in made:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a new, empty database: one migration path serves both."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'new.db'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.new_database(f"t_{uuid.uuid4().hex[:12]}")


def test_an_empty_database_migrates_to_the_schema_the_code_declares(
    empty_database: str, engines: Callable[[str], Engine]
) -> None:
    url = empty_database
    engine = engines(url)
    assert migrate.current_revision(engine) is None
    assert migrate.upgrade(engine) == migrate.head_revision()
    assert migrate.current_revision(engine) == migrate.head_revision()
    assert _schema_differences(url) == []
    assert migrate.upgrade(engine) == migrate.head_revision()  # again: nothing to do


def test_a_database_of_the_last_release_upgrades_in_place_and_keeps_its_data(tmp_path: Path) -> None:
    home = tmp_path / ".airlock"
    home.mkdir()
    database = home / "airlock.db"
    with sqlite3.connect(database) as conn:
        conn.executescript((DATA / f"{RELEASE}.sql").read_text())
    shutil.copy(DATA / f"{RELEASE}.vault.key", home / "vault.key")
    cli = Console(home=tmp_path)

    before = cli.ok("db", "current").json()
    assert before == {"revision": None, "head": migrate.head_revision(), "current": False}
    run = cli.ok("acr", "pipeline-run", "show", "-g", "oldrg", "-r", "oldreg1", "-n", "oldrun1").json()
    assert run["properties"]["provisioningState"] == "Failed"  # read through the migrated store
    secret = cli.ok("keyvault", "secret", "show", "--vault-name", "oldkv", "-n", "sas").json()
    assert secret["value"] == "sv=2024-01-01&sig=old"  # the embedded vault's data and key still agree
    assert [t["name"] for t in cli.ok("token", "list").json()] == ["ci", "owner"]  # the home's token joins it
    assert cli.ok("db", "current").json()["current"] is True
    assert _schema_differences(f"sqlite:///{database}") == []
    pipelines = cli.ok("acr", "export-pipeline", "list", "-g", "oldrg", "-r", "oldreg1").json()
    assert [p["name"] for p in pipelines] == ["oldexport"]


def test_a_database_of_a_release_before_run_owners_gains_the_columns(
    tmp_path: Path, engines: Callable[[str], Engine]
) -> None:
    """The oldest layout: no resources.owner, no trigger_imports.status (once added by hand-written ALTERs)."""
    engine = engines(f"sqlite:///{tmp_path / 'oldest.db'}")
    with sqlite3.connect(tmp_path / "oldest.db") as conn:
        conn.executescript((DATA / f"{RELEASE}.sql").read_text())
        conn.executescript(
            "CREATE TABLE t AS SELECT pipeline_id, blob, version, run_id, created_at FROM trigger_imports;"
            "DROP TABLE trigger_imports; ALTER TABLE t RENAME TO trigger_imports;"
            "ALTER TABLE resources DROP COLUMN owner;"
        )
    migrate.upgrade(engine)
    columns = {
        table: {c["name"] for c in inspect(engine).get_columns(table)} for table in ("resources", "trigger_imports")
    }
    assert "owner" in columns["resources"] and "status" in columns["trigger_imports"]
    with engine.connect() as conn:
        bodies = [json.loads(r.body) for r in conn.execute(text("SELECT body FROM resources"))]
    assert {b["name"] for b in bodies} >= {"oldreg1", "oldexport", "oldrun1"}


def test_a_database_from_a_newer_release_is_refused(empty_database: str, engines: Callable[[str], Engine]) -> None:
    engine = engines(empty_database)
    migrate.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(AirlockError, match="newer release"):
        migrate.upgrade(engine)


def test_head_names_the_newest_migration() -> None:
    """migrate.HEAD lets a current database be recognised without Alembic: a new revision must be named there."""
    assert migrate.head_revision() == migrate.HEAD


def test_a_current_database_is_recognised_without_importing_alembic(
    empty_database: str, engines: Callable[[str], Engine]
) -> None:
    migrate.upgrade(engines(empty_database))
    # A new process, as each CLI command is: ensure_schema finds the schema current with one SELECT.
    probe = (
        "import sys; from sqlalchemy import create_engine; from airlock.db import migrate; "
        f"engine = create_engine({empty_database!r}); migrate.ensure_schema(engine); engine.dispose(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'alembic'))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_database_one_revision_behind_is_still_migrated_by_ensure_schema(tmp_path: Path) -> None:
    """The fast path is taken only at HEAD: a database left at an earlier revision is migrated as before."""
    engine = create_engine(f"sqlite:///{tmp_path / 'behind.db'}")
    try:
        command.upgrade(migrate._config(engine), "0004")
        assert migrate.current_revision(engine) == "0004"
        migrate.ensure_schema(engine)
        assert migrate.current_revision(engine) == migrate.HEAD
        assert "audit_entries" in inspect(engine).get_table_names()  # what 0005 adds
    finally:
        engine.dispose()


def _waits_for_the_lock(engine: Engine, pid: int) -> bool:
    """Whether process ``pid`` is blocked on the migration lock of ``engine``'s database."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            waiting = conn.execute(
                text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND pid <> 0")
            ).scalar()
        return bool(waiting)
    # Linux lists a blocked flock request in /proc/locks as "N: -> FLOCK ADVISORY WRITE <pid> ...".
    return any(
        line.split()[1:3] == ["->", "FLOCK"] and line.split()[5] == str(pid)
        for line in Path("/proc/locks").read_text().splitlines()
    )


def test_two_processes_migrate_one_database_one_at_a_time(
    empty_database: str, engines: Callable[[str], Engine], tmp_path: Path
) -> None:
    """Regression: the lock was per process, so two replicas starting together raced the DDL."""
    engine = engines(empty_database)
    env = {**os.environ, "AIRLOCK_DATABASE_URL": empty_database, "AIRLOCK_HOME": str(tmp_path / "home")}
    airlock = str(Path(sys.executable).with_name("airlock"))
    with migrate.migration_lock(engine):  # another process is migrating
        other = subprocess.Popen([airlock, "db", "upgrade"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        wait_until(lambda: _waits_for_the_lock(engine, other.pid), timeout=60, what="the upgrade to wait for the lock")
        assert migrate.current_revision(engine) is None  # nothing was migrated under the lock
        assert other.poll() is None
    _, err = other.communicate(timeout=120)
    assert other.returncode == 0, err.decode()
    assert migrate.current_revision(engine) == migrate.head_revision()


def _alembic(engine: Engine) -> Config:
    """Alembic's configuration for ``engine``, as airlock.db.migrate builds it (to stop at a revision)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(migrate.__file__).with_name("migrations")))
    cfg.attributes["engine"] = engine
    return cfg


def _jobs(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT task_name FROM procrastinate_jobs ORDER BY id")).scalars())


def test_the_job_queue_schema_comes_with_the_migrations_on_postgresql_only(
    empty_database: str, engines: Callable[[str], Engine]
) -> None:
    engine = engines(empty_database)
    migrate.upgrade(engine)
    with engine.connect() as conn:
        assert job_queue.installed(conn) is (engine.dialect.name == "postgresql")
        tables = inspect(conn).get_table_names()
    assert any(t.startswith("procrastinate_") for t in tables) is (engine.dialect.name == "postgresql")
    command.downgrade(_alembic(engine), "0002")  # and back: 0003 removes all it made
    with engine.connect() as conn:
        assert not job_queue.installed(conn)
        assert not [t for t in inspect(conn).get_table_names() if t.startswith("procrastinate_")]
    migrate.upgrade(engine)
    assert _schema_differences(empty_database) == []


def test_a_postgresql_database_whose_queue_was_set_up_by_hand_upgrades_in_place_and_keeps_its_jobs(
    postgres: PostgresServer, engines: Callable[[str], Engine]
) -> None:
    from procrastinate import App, SyncPsycopgConnector

    url = postgres.new_database(f"t_{uuid.uuid4().hex[:12]}")
    engine = engines(url)
    command.upgrade(_alembic(engine), "0002")
    # procrastinate's own way (`procrastinate schema --apply`), before airlock's migrations did it.
    with App(connector=SyncPsycopgConnector(conninfo=url.replace("+psycopg", ""))).open() as app:
        app.schema_manager.apply_schema()
        app.configure_task("earlier.task").defer()
    assert migrate.upgrade(engine) == migrate.head_revision()
    assert _jobs(engine) == ["earlier.task"]  # 0003 found the queue and left it as it was
    assert migrate.upgrade(engine) == migrate.head_revision()  # and again: nothing to do
    assert _jobs(engine) == ["earlier.task"]
