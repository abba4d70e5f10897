"""The PostgreSQL pool: a fixed number of connections, prepared statements when asked for,
and a server restarted while the pool sat idle costs no request."""

import asyncio

import psycopg
import pytest
from sqlalchemy import text

import persistence.database
from persistence.database import make_engine
from tests.databases import PostgresDatabase, _libpq, postgres_admin_url


@pytest.fixture
def postgres_url():
    database = PostgresDatabase(postgres_admin_url())
    yield database.create()
    database.drop()


def end_every_session(url: str) -> int:
    """What a restart of the server does to the pool: every session on the database ends."""
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(_libpq(postgres_admin_url()), autocommit=True) as admin:
        ended = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        ).fetchone()
    return int(ended[0]) if ended else 0


async def test_the_pool_is_fixed_in_size_and_never_overflows(postgres_url):
    engine = make_engine(postgres_url, pool_size=3)
    try:
        held = [await engine.connect() for _ in range(3)]
        assert engine.pool.size() == 3 and engine.pool.overflow() <= 0  # type: ignore[attr-defined]
        # A fourth waits instead of opening one more connection.
        with pytest.raises(TimeoutError):
            await _connect_within(engine, 0.3)
        for connection in held:
            await connection.close()
    finally:
        await engine.dispose()


async def _connect_within(engine, seconds: float) -> None:
    async with asyncio.timeout(seconds):
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))


async def test_an_idle_pool_survives_a_restarted_server(postgres_url, monkeypatch):
    monkeypatch.setattr(persistence.database, "IDLE_PING_S", 0.0)
    engine = make_engine(postgres_url)
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        assert end_every_session(postgres_url) == 1
        async with engine.connect() as connection:  # the pooled one is dead: a new one
            assert (await connection.execute(text("SELECT 2"))).scalar() == 2
    finally:
        await engine.dispose()


async def test_without_the_idle_ping_the_dead_connection_would_fail_a_request(
    postgres_url, monkeypatch
):
    monkeypatch.setattr(persistence.database, "IDLE_PING_S", 3600.0)
    engine = make_engine(postgres_url)
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        end_every_session(postgres_url)
        with pytest.raises(Exception, match=r"terminat|closed|connection"):
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 2"))
        # ...and only that one: the pool then replaces the connections opened before.
        async with engine.connect() as connection:
            assert (await connection.execute(text("SELECT 3"))).scalar() == 3
    finally:
        await engine.dispose()


@pytest.mark.parametrize("prepared", [True, False])
async def test_repeated_statements_are_prepared_unless_turned_off(postgres_url, prepared):
    engine = make_engine(postgres_url, pool_size=1, prepared_statements=prepared)
    try:
        async with engine.connect() as connection:
            for _ in range(3):
                await connection.execute(text("SELECT 1 + :n"), {"n": 1})
            count = (
                await connection.execute(text("SELECT count(*) FROM pg_prepared_statements"))
            ).scalar()
        assert (count > 0) is prepared
    finally:
        await engine.dispose()
