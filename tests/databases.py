"""Temporary databases for tests: a SQLite file or a PostgreSQL database made and dropped here."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from persistence.database import make_engine
from persistence.migrate import upgrade

POSTGRES_URL_VARIABLE = "BANKQL_TEST_POSTGRES_URL"
REQUIRE_POSTGRES_VARIABLE = "BANKQL_REQUIRE_POSTGRES"
BACKENDS = ["sqlite", "postgresql"]
LEDGER_TABLES = ["entries", "transactions", "accounts", "users", "sign_in_failures"]


def postgres_admin_url() -> str:
    """The server to make test databases on, or a skip (a failure where CI requires it)."""
    url = os.environ.get(POSTGRES_URL_VARIABLE)
    if url:
        return url
    reason = f"{POSTGRES_URL_VARIABLE} is not set, so the PostgreSQL tests cannot run"
    if os.environ.get(REQUIRE_POSTGRES_VARIABLE) == "1":
        pytest.fail(f"{reason}, and {REQUIRE_POSTGRES_VARIABLE}=1 requires them")
    pytest.skip(f"{reason} (set it to e.g. postgresql+psycopg://postgres@127.0.0.1:5432/postgres)")


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class PostgresDatabase:
    """A database of its own on the test server, dropped with everything in it."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.name = f"bankql_test_{uuid.uuid4().hex[:12]}"
        self.url = make_url(admin_url).set(database=self.name).render_as_string(hide_password=False)

    def create(self) -> str:
        with psycopg.connect(_libpq(self.admin_url), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{self.name}"')
        return self.url

    def drop(self) -> None:
        with psycopg.connect(_libpq(self.admin_url), autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


async def migrated(url: str) -> None:
    engine = make_engine(url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


class LedgerDatabase:
    """A migrated database per backend that each test gets back empty.

    PostgreSQL empties it with TRUNCATE, which the append-only triggers (row-level, on UPDATE
    and DELETE) do not see; SQLite gets a fresh copy of a migrated file instead.
    """

    def __init__(self, backend: str, workdir: Path) -> None:
        self.backend = backend
        self.workdir = workdir
        self._postgres: PostgresDatabase | None = None
        self._template = workdir / "template.db"
        self._copies = 0

    async def start(self) -> None:
        if self.backend == "postgresql":
            self._postgres = PostgresDatabase(postgres_admin_url())
            await migrated(self._postgres.create())
        else:
            await migrated(sqlite_url(self._template))

    async def fresh_url(self) -> str:
        if self._postgres is None:
            self._copies += 1
            copy = self.workdir / f"test-{self._copies}.db"
            shutil.copyfile(self._template, copy)
            return sqlite_url(copy)
        with psycopg.connect(_libpq(self._postgres.url), autocommit=True) as connection:
            connection.execute(f"TRUNCATE {', '.join(LEDGER_TABLES)} RESTART IDENTITY CASCADE")
        return self._postgres.url

    def stop(self) -> None:
        if self._postgres is not None:
            self._postgres.drop()
