"""bankql behind PgBouncer in transaction mode, with prepared statements off.

Every test of tests/api/test_movements.py runs again here, with the app's connections going
through a PgBouncer started for this module; migrations and the tests' own setup and
checks go straight to PostgreSQL. The tests below it show that the request deadline still
cancels SQL through the pooler, and why prepared statements must be off behind it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from gql.server.app import create_app
from persistence.database import make_engine
from tests.api.graphql import OPEN, GraphQLClient
from tests.api.test_deadlines import (
    ACCOUNTS,
    GENEROUS_S,
    OPEN_HALFWAY,
    TINY_TIMEOUT_S,
    eventually,
    movements_blocked,
    other_sessions,
)
from tests.api.test_movements import *  # noqa: F403  (the movements tests, run again here)
from tests.conftest import settings_for
from tests.databases import LedgerDatabase, postgres_admin_url
from tests.pgbouncer import PgBouncer

LONG_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def pgbouncer() -> Iterator[PgBouncer]:
    bouncer = PgBouncer(postgres_admin_url()).start()
    yield bouncer
    bouncer.stop()


@pytest.fixture(scope="module")
async def pooled_ledger(tmp_path_factory) -> AsyncIterator[LedgerDatabase]:
    """A migrated database of this module's own; migrations run straight on PostgreSQL."""
    database = LedgerDatabase("postgresql", tmp_path_factory.mktemp("pgbouncer"))
    await database.start()
    yield database
    database.stop()


@pytest.fixture
async def direct_url(pooled_ledger: LedgerDatabase) -> str:
    """The test's empty database, straight on PostgreSQL."""
    return await pooled_ledger.fresh_url()


@pytest.fixture
def database_url(direct_url: str, pgbouncer: PgBouncer) -> str:
    """The same database through PgBouncer: what the app of every test here connects to."""
    return pgbouncer.url_for(direct_url)


@pytest.fixture
async def app(database_url: str):
    application = create_app(settings_for(database_url, prepared_statements=False))
    yield application
    await application.state.engine.dispose()


async def test_the_app_goes_through_the_pooler(app, gql, pgbouncer, direct_url):
    assert app.state.engine.url.port == pgbouncer.port
    await gql.open_account("Main", initial_deposit="1")
    database = app.state.engine.url.database
    assert f"login attempt: db={database} " in pgbouncer.output()


async def test_timeouts_hold_in_every_transaction_through_the_pooler(database_url):
    engine = make_engine(
        database_url, statement_timeout_s=TINY_TIMEOUT_S, prepared_statements=False
    )
    try:
        for _ in range(3):  # whichever server connection each transaction gets
            async with engine.connect() as connection:
                statement = (await connection.execute(text("SHOW statement_timeout"))).scalar()
                idle = await connection.execute(text("SHOW idle_in_transaction_session_timeout"))
                assert (statement, idle.scalar()) == ("500ms", "1500ms")
        async with engine.connect() as connection:
            with pytest.raises(DBAPIError, match="statement timeout"):
                await connection.execute(text("SELECT pg_sleep(60)"))
    finally:
        await engine.dispose()


async def test_the_timeouts_are_not_left_on_the_pooled_server_connections(database_url):
    """They last one transaction: a session outside bankql's that gets the same server
    connection next does not inherit them."""
    engine = make_engine(
        database_url, statement_timeout_s=TINY_TIMEOUT_S, prepared_statements=False
    )
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
            await connection.commit()
    finally:
        await engine.dispose()
    with psycopg.connect(
        f"host=127.0.0.1 port={engine.url.port} user={engine.url.username} "
        f"dbname={engine.url.database}",
        autocommit=True,
    ) as other:
        assert other.execute("SHOW statement_timeout").fetchone() == ("0",)


async def test_a_cancelled_statement_is_cancelled_on_the_server_through_the_pooler(
    database_url, direct_url
):
    """The request deadline works by cancelling the request's task; the driver then sends
    a cancel request, which PgBouncer passes on to the server."""
    engine = make_engine(
        database_url, statement_timeout_s=LONG_TIMEOUT_S, prepared_statements=False
    )

    async def sleep_long() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT pg_sleep(60)"))

    def sleeping() -> bool:
        return any(
            "pg_sleep" in (query or "")
            for _, state, query in other_sessions(direct_url)
            if state == "active"
        )

    try:
        task = asyncio.create_task(sleep_long())
        assert await eventually(sleeping), other_sessions(direct_url)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await eventually(lambda: not sleeping(), within_s=5), other_sessions(direct_url)
    finally:
        await engine.dispose()


async def test_a_request_past_its_deadline_is_stopped_through_the_pooler(
    gql, database_url, direct_url
):
    await gql.open_account("Main", initial_deposit="10")
    tight_app = create_app(
        settings_for(database_url, request_timeout_s=TINY_TIMEOUT_S, prepared_statements=False)
    )
    transport = httpx.ASGITransport(app=tight_app)
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://bankql.test", timeout=GENEROUS_S
        ) as http:
            tight = GraphQLClient(http, gql.token)
            with movements_blocked(direct_url) as holder_pid:
                body = await tight.request(OPEN, **OPEN_HALFWAY)
                # While the lock is still held: nothing waits for it any more.
                assert await eventually(
                    lambda: all(
                        state != "active" for _, state, _ in other_sessions(direct_url, holder_pid)
                    )
                ), other_sessions(direct_url, holder_pid)
        assert tight_app.state.engine.pool.checkedout() == 0
    finally:
        await tight_app.state.engine.dispose()
    assert [error["extensions"]["code"] for error in body["errors"]] == ["TIMEOUT"]
    names = [edge["node"]["name"] for edge in (await gql.data(ACCOUNTS))["accounts"]["edges"]]
    assert names == ["Main"]


@pytest.fixture
def narrow_pgbouncer() -> Iterator[PgBouncer]:
    """A pooler with a single server connection, that every client shares in turn."""
    bouncer = PgBouncer(postgres_admin_url(), pool_size=1).start()
    yield bouncer
    bouncer.stop()


async def _two_clients_repeat_one_statement(url: str, *, prepared: bool) -> None:
    """Two pooled connections open at once, each running the same statement a few times,
    each time in a transaction of its own."""
    engine = make_engine(url, pool_size=2, prepared_statements=prepared)
    try:
        async with engine.connect() as first, engine.connect() as second:
            for connection in (first, second):
                for number in range(4):
                    await connection.execute(text("SELECT :number + 1"), {"number": number})
                    await connection.commit()
    finally:
        await engine.dispose()


async def test_prepared_statements_break_behind_a_transaction_pooler(narrow_pgbouncer, direct_url):
    """Why BANKQL_PREPARED_STATEMENTS=false behind such a pooler: the second client's
    statement is prepared under the name the first one already used on the one server
    connection they share. With the setting off, the same sequence runs cleanly."""
    url = narrow_pgbouncer.url_for(direct_url)
    await _two_clients_repeat_one_statement(url, prepared=False)
    with pytest.raises(DBAPIError) as failure:
        await _two_clients_repeat_one_statement(url, prepared=True)
    assert isinstance(failure.value.orig, psycopg.errors.DuplicatePreparedStatement)
