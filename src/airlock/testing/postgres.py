"""A private PostgreSQL cluster for tests: Debian's ``postgresql`` binaries, a temporary folder of its
own, a free loopback port, trust authentication; stopped and removed on exit.

As root the cluster runs as the ``postgres`` user (PostgreSQL refuses to run as root); its folder is
made directly under the system's temp dir, since pytest's (mode 700, root's) is closed to that user.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

from airlock.testing.processes import free_port

PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)  # newest version first


def _pg_bin(name: str) -> str:
    for directory in PG_BIN_DIRS:
        if (directory / name).is_file():
            return str(directory / name)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(
            f"PostgreSQL's {name} is not installed: run `make test` or `bash scripts/bootstrap.sh` "
            "(Debian package postgresql); tests fail rather than skip when a component is missing"
        )
    return found


class PostgresServer:
    """One cluster with a database named ``airlock``; :attr:`url` is its SQLAlchemy URL (psycopg 3)."""

    def __init__(self, workdir: Path, port: int) -> None:
        self.data = workdir / "data"
        self.port = port
        self.log_path = workdir / "postgres.log"
        self._as_postgres = os.geteuid() == 0

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/airlock"

    def _run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        command = ["runuser", "-u", "postgres", "--", *argv] if self._as_postgres else list(argv)
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:2])} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
        return done

    @classmethod
    def start(cls) -> PostgresServer:
        """Create and start the cluster (a second or two), then the ``airlock`` database.

        Raises:
            RuntimeError: PostgreSQL is not installed or does not start (with its log's tail).
        """
        workdir = Path(tempfile.mkdtemp(prefix="airlock-postgres-"))
        server = cls(workdir, free_port())
        server.data.mkdir()
        if server._as_postgres:
            shutil.chown(workdir, "postgres")
            shutil.chown(server.data, "postgres")
        server._run(_pg_bin("initdb"), "-D", str(server.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        options = f"-p {server.port} -k {server.data} -c listen_addresses=127.0.0.1 -c fsync=off"
        try:
            server._run(
                _pg_bin("pg_ctl"), "-D", str(server.data), "-w", "-l", str(server.log_path), "-o", options, "start"
            )
        except RuntimeError as exc:
            tail = server.log_path.read_text(errors="replace")[-2000:] if server.log_path.exists() else ""
            raise RuntimeError(f"{exc}\n{tail}") from None
        server._run(_pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(server.port), "-U", "postgres", "airlock")
        return server

    def new_database(self, name: str) -> str:
        """Create database ``name`` (lowercase letters, digits, '_') and return its URL."""
        self._run(_pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return self.url.rsplit("/", 1)[0] + f"/{name}"

    def restart(self) -> None:
        """Restart the server (fast shutdown: every connection is dropped), keeping its data."""
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log_path), "-m", "fast", "-w", "restart")

    def stop(self) -> None:
        try:
            self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.data.parent, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class ExternalPostgres:
    """A PostgreSQL server the tests are given (``AIRLOCK_TEST_DATABASE_URL``) instead of a private
    cluster: :meth:`new_database` creates databases on it (the URL's role needs CREATEDB), and
    :meth:`stop` drops those it created. It cannot be restarted; tests that restart PostgreSQL start
    a private cluster of their own."""

    def __init__(self, url: str) -> None:
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        self._base = parsed
        self.url = parsed.render_as_string(hide_password=False)
        self._made: list[str] = []

    def _admin(self) -> str:
        from airlock.pipelines.queue import conninfo

        return conninfo(self._base.set(database="postgres").render_as_string(hide_password=False))

    def new_database(self, name: str) -> str:
        """Create database ``name`` (lowercase letters, digits, '_') and return its URL."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self._admin(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self._made.append(name)
        return self._base.set(database=name).render_as_string(hide_password=False)

    def stop(self) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self._admin(), autocommit=True) as conn:
            for name in self._made:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
