"""Before a command touches the database: one clear line for every mistake in its URL.

A wrong BANKQL_DATABASE_URL otherwise surfaces as a driver's traceback that never names the
variable. The URL's form is checked first, then one connection is tried and its failure put
in words, so `serve`, `migrate` and `create-admin` all refuse alike.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from gql.server.settings import ConfigurationError
from persistence.database import make_engine

VARIABLE = "BANKQL_DATABASE_URL"
SQLITE_EXAMPLE = "sqlite+aiosqlite:///./bankql.db"
POSTGRESQL_EXAMPLE = "postgresql+psycopg://user:password@host:5432/name"
CONNECT_TIMEOUT_S = 5


def _refuse(problem: str) -> ConfigurationError:
    return ConfigurationError(f"{VARIABLE}: {problem}")


def parsed_url(raw: str) -> URL:
    """The URL, or a refusal that says which forms bankql takes."""
    try:
        url = make_url(raw)
    except (ArgumentError, ValueError):  # ValueError: a port that is no number (h1:5432,h2)
        raise _refuse(
            f"{raw!r} is not a database URL; use {SQLITE_EXAMPLE} or {POSTGRESQL_EXAMPLE}"
        ) from None
    backend, driver = url.get_backend_name(), url.get_driver_name()
    if backend == "sqlite" and driver != "aiosqlite":
        fixed = url.set(drivername="sqlite+aiosqlite").render_as_string(hide_password=True)
        raise _refuse(f"SQLite needs the asyncio driver: write {fixed}")
    if backend == "postgresql" and driver not in ("psycopg", "psycopg_async"):
        fixed = url.set(drivername="postgresql+psycopg").render_as_string(hide_password=True)
        raise _refuse(f"PostgreSQL needs the psycopg 3 driver: write {fixed}")
    if backend not in ("sqlite", "postgresql"):
        raise _refuse(
            f"bankql runs on SQLite ({SQLITE_EXAMPLE}) or PostgreSQL ({POSTGRESQL_EXAMPLE}), "
            f"not on {backend}"
        )
    return url


def _sqlite_folder_problem(url: URL) -> str | None:
    if not url.database or url.database == ":memory:":
        return "an in-memory SQLite database would vanish with the process; name a file"
    folder = Path(url.database).expanduser().absolute().parent
    if not folder.exists():
        return f"the folder {folder} does not exist: create it, or name a file in another one"
    if not folder.is_dir():
        return f"{folder} is not a folder: name a file in a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"bankql may not write in {folder}: name a file in a folder it may write to"
    return None


def _connection_problem(url: URL, error: Exception) -> str:
    """The driver's reason in a user's words: where, what went wrong, and what to do."""
    reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
    where = f"{url.host or 'localhost'}:{url.port or 5432}"
    lowered = reason.lower()
    if "does not exist" in lowered and "database" in lowered:
        return (
            f"the database {url.database!r} does not exist on {where}: create it, or name another"
        )
    if any(
        refused in lowered
        for refused in ("password authentication failed", "no password supplied", "role")
    ):
        return f"{where} refused the user {url.username!r} or its password: check both"
    if "connection refused" in lowered or "could not connect" in lowered:
        return f"nothing answers at {where} ({reason}): start PostgreSQL, or fix the host and port"
    if "timeout" in lowered or "timed out" in lowered:
        return f"{where} did not answer within {CONNECT_TIMEOUT_S} s: check the host and port"
    return f"cannot connect: {reason}"


async def check_database_url(raw: str) -> None:
    """Raise ConfigurationError, naming the variable, unless one connection can be made."""
    url = parsed_url(raw)
    if url.get_backend_name() == "sqlite":
        # Opening the file would create it, before the command's own checks have run.
        if problem := _sqlite_folder_problem(url):
            raise _refuse(problem)
        return
    if "connect_timeout" not in url.query:
        url = url.update_query_dict({"connect_timeout": str(CONNECT_TIMEOUT_S)})
    engine = make_engine(url.render_as_string(hide_password=False))
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as error:  # any failure to connect is the URL's problem to name
        raise _refuse(_connection_problem(url, error)) from None
    finally:
        await engine.dispose()
