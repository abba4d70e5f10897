"""Alembic environment: migrations run on a connection handed over by persistence.migrate,
or, for Alembic's own commands (alembic.ini), on the database BANKQL_DATABASE_URL names."""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy import Connection
from sqlmodel import SQLModel

import persistence.tables  # noqa: F401  (registers the tables on the metadata)
from persistence.database import make_engine

# The same default as bankql's settings; persistence does not read the GraphQL layer's.
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./bankql.db"


def run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        compare_type=True,
        # SQLite cannot alter most of a table in place; batch mode copies it instead.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_from_the_command_line() -> None:
    """Alembic's own commands (alembic.ini): the database bankql itself would use."""
    engine = make_engine(os.environ.get("BANKQL_DATABASE_URL", DEFAULT_DATABASE_URL))
    try:
        async with engine.begin() as connection:
            await connection.run_sync(run_on)
    finally:
        await engine.dispose()


handed_over = context.config.attributes.get("connection")
if handed_over is not None:
    run_on(handed_over)
elif context.is_offline_mode():
    raise RuntimeError("bankql's migrations run online: leave out --sql")
else:
    asyncio.run(run_from_the_command_line())
