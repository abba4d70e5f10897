"""Fixtures shared by every layer: a backend per run of a test, a fresh database, the app."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from gql.server.app import create_app
from gql.server.settings import Settings
from tests.databases import (
    BACKENDS,
    LedgerDatabase,
    PostgresDatabase,
    postgres_admin_url,
    sqlite_url,
)

# Tests that start several servers and drive load through them: in a run over two test
# processes (`dev.py test`), they all run in one, one after another, while the other process
# runs everything else; so two of them never crowd the machine, or the database's
# connections, at once.
HEAVY = ("tests/load/", "tests/api/test_benchmarks.py", "tests/stack/")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.nodeid.startswith(HEAVY):
            item.add_marker(pytest.mark.xdist_group("heavy"))


@pytest.fixture(scope="session", params=BACKENDS)
async def ledger_database(request, tmp_path_factory) -> AsyncIterator[LedgerDatabase]:
    database = LedgerDatabase(request.param, tmp_path_factory.mktemp(request.param))
    await database.start()
    yield database
    database.stop()


@pytest.fixture
async def database_url(ledger_database: LedgerDatabase) -> str:
    """An empty, migrated database on the backend of this run of the test."""
    return await ledger_database.fresh_url()


TEST_SECRET_KEY = "test-signing-key-of-at-least-32-characters"


def settings_for(database_url: str, **overrides: object) -> Settings:
    """Development settings with a fixed key, and password hashing made cheap for speed."""
    values = {
        "env": "development",
        "database_url": database_url,
        "secret_key": TEST_SECRET_KEY,
        "password_time_cost": 1,
        "password_memory_kib": 64,
        "password_parallelism": 1,
    }
    # A developer's own .env must not change what the tests run against.
    return Settings(_env_file=None, **(values | overrides))  # type: ignore[arg-type]


@pytest.fixture
async def app(database_url: str):
    application = create_app(settings_for(database_url))
    yield application
    await application.state.engine.dispose()


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://bankql.test") as http:
        yield http


@pytest.fixture(params=BACKENDS)
async def empty_url(request, tmp_path) -> AsyncIterator[str]:
    """A database with nothing in it, not even the migrations."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path / "empty.db")
        return
    database = PostgresDatabase(postgres_admin_url())
    yield database.create()
    database.drop()
