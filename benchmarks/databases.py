"""The temporary database a benchmark runs on."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from tests.databases import PostgresDatabase, sqlite_url


def on_temporary_database(sqlite: bool, measure: Callable[[str], Awaitable[None]]) -> None:
    """Run measure(url) on a new SQLite file, or on a new PostgreSQL database made from
    BANKQL_TEST_POSTGRES_URL; either is gone afterwards."""
    if sqlite:
        with tempfile.TemporaryDirectory() as folder:
            asyncio.run(measure(sqlite_url(Path(folder) / "benchmark.db")))
        return
    database = PostgresDatabase(os.environ["BANKQL_TEST_POSTGRES_URL"])
    try:
        asyncio.run(measure(database.create()))
    finally:
        database.drop()
