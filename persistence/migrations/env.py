"""Alembic environment: migrations run on a connection handed over by persistence.migrate."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import persistence.tables  # noqa: F401  (registers the tables on the metadata)

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `bankql migrate` or persistence.migrate")

context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    compare_type=True,
    # SQLite cannot alter most of a table in place; batch mode copies it instead.
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
