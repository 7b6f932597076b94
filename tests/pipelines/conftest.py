"""Fixtures of the pipelines tests: migrated PostgreSQL databases for the job queue."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from airlock.db import migrate
from airlock.pipelines.queue import conninfo
from airlock.testing.postgres import PostgresServer

_TEMPLATE = "airlock_queue_template"


@pytest.fixture(scope="session")
def _migrated_template(postgres: PostgresServer) -> str:
    """A database at airlock's head revision (procrastinate's schema included), copied per test."""
    url = postgres.new_database(_TEMPLATE)
    engine = create_engine(url)
    try:
        migrate.upgrade(engine)
    finally:
        engine.dispose()  # a template must have no connection when it is copied
    return url


@pytest.fixture
def queue_database(_migrated_template: str) -> Callable[[], str]:
    """Makes a fresh migrated database (a copy of the template, tens of milliseconds); returns its URL."""
    template = make_url(_migrated_template)

    def make() -> str:
        name = f"q_{uuid.uuid4().hex[:12]}"
        admin = conninfo(template.set(database="postgres").render_as_string(hide_password=False))
        with psycopg.connect(admin, autocommit=True) as conn:
            create = sql.SQL("CREATE DATABASE {} TEMPLATE {}")
            conn.execute(create.format(sql.Identifier(name), sql.Identifier(_TEMPLATE)))
        return template.set(database=name).render_as_string(hide_password=False)

    return make
