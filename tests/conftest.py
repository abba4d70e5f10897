"""Fixtures shared by every layer: a backend per run of a test, a fresh database, the app."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from gql.app import create_app
from gql.settings import Settings
from tests.databases import (
    BACKENDS,
    LedgerDatabase,
    PostgresDatabase,
    postgres_admin_url,
    sqlite_url,
)


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


@pytest.fixture
async def app(database_url: str):
    application = create_app(Settings(database_url=database_url, graphiql=True))
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
