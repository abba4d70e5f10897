"""Alembic owns the schema: it migrates an empty database to head and matches the tables."""

from sqlalchemy import inspect

from persistence.database import make_engine
from persistence.migrate import (
    current_revision,
    downgrade,
    head_revision,
    pending_schema_changes,
    upgrade,
)


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
