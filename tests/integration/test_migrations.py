"""Alembic owns the schema: it migrates an empty database to head and matches the tables."""

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import inspect, text

from persistence.database import make_engine
from persistence.migrate import (
    current_revision,
    downgrade,
    head_revision,
    pending_schema_changes,
    upgrade,
)
from tests.databases import sqlite_url


async def test_migrations_take_an_empty_database_to_head_matching_the_models(empty_url):
    engine = make_engine(empty_url)
    try:
        assert await current_revision(engine) is None
        await upgrade(engine)
        assert await current_revision(engine) == head_revision()
        assert await pending_schema_changes(engine) == []
        await upgrade(engine)  # running again changes nothing
        assert await current_revision(engine) == head_revision()
    finally:
        await engine.dispose()


async def test_a_database_without_migrations_differs_from_the_models(empty_url):
    engine = make_engine(empty_url)
    try:
        assert await pending_schema_changes(engine) != []
    finally:
        await engine.dispose()


async def test_migrations_go_down_to_nothing_and_up_again(empty_url):
    engine = make_engine(empty_url)
    try:
        await upgrade(engine)
        await downgrade(engine, "base")
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda c: inspect(c).get_table_names())
        assert set(tables) <= {"alembic_version"}
        await upgrade(engine)
        assert await pending_schema_changes(engine) == []
    finally:
        await engine.dispose()


async def _users_after_0002(url: str, *, owns_an_account: bool) -> list[tuple[str, object]]:
    engine = make_engine(url)
    try:
        await upgrade(engine, "0001")
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO users (email, role, created_at)"
                    " VALUES ('local@bankql.invalid', 'CUSTOMER', CURRENT_TIMESTAMP)"
                )
            )
            if owns_an_account:
                await connection.execute(
                    text(
                        "INSERT INTO accounts (owner_id, kind, name, currency, balance, status,"
                        " created_at) SELECT id, 'CUSTOMER', 'Old', 'EUR', 0, 'OPEN',"
                        " CURRENT_TIMESTAMP FROM users"
                    )
                )
        await upgrade(engine)
        async with engine.connect() as connection:
            rows = await connection.execute(text("SELECT email, password_hash FROM users"))
            return [tuple(row) for row in rows]
    finally:
        await engine.dispose()


async def test_the_built_in_local_user_goes_away_when_it_owns_nothing(empty_url):
    assert await _users_after_0002(empty_url, owns_an_account=False) == []


async def test_a_local_user_with_accounts_stays_but_can_never_sign_in(empty_url):
    users = await _users_after_0002(empty_url, owns_an_account=True)
    assert users == [("local@bankql.invalid", None)]


async def test_replicas_starting_together_migrate_one_after_another(empty_url):
    engines = [make_engine(empty_url) for _ in range(3)]
    try:
        # Without the migration lock this deadlocks or fails; bounded so it cannot hang CI.
        await asyncio.wait_for(asyncio.gather(*(upgrade(engine) for engine in engines)), 60)
        assert await current_revision(engines[0]) == head_revision()
        assert await pending_schema_changes(engines[0]) == []
    finally:
        for engine in engines:
            await engine.dispose()


async def test_sqlite_files_are_switched_to_wal_with_writers_queued(tmp_path):
    engine = make_engine(sqlite_url(tmp_path / "wal.db"))
    try:
        async with engine.connect() as connection:
            mode = (await connection.exec_driver_sql("PRAGMA journal_mode")).scalar_one()
            timeout = (await connection.exec_driver_sql("PRAGMA busy_timeout")).scalar_one()
        assert (mode, timeout) == ("wal", 10_000)
    finally:
        await engine.dispose()


def test_alembic_commands_work_from_the_repository_root(empty_url):
    """A developer's `alembic upgrade head` and `alembic current` use BANKQL_DATABASE_URL."""
    root = Path(__file__).resolve().parents[2]
    alembic = [sys.executable, "-m", "alembic"]
    env = dict(os.environ) | {"BANKQL_DATABASE_URL": empty_url}

    def run(*arguments: str) -> str:
        done = subprocess.run(
            [*alembic, *arguments], cwd=root, env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert run("current").strip() == ""
    run("upgrade", "head")
    assert run("current").strip() == f"{head_revision()} (head)"
