"""Engines and sessions for SQLite (the embedded default) and PostgreSQL, from one URL."""

from __future__ import annotations

import math
import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.util import await_
from sqlmodel.ext.asyncio.session import AsyncSession

SQLITE_BUSY_TIMEOUT_MS = 10_000
# A session left idle inside a transaction this many statement timeouts long is ended by
# PostgreSQL: a backstop for a connection that its process forgot, never the usual way out.
IDLE_IN_TRANSACTION_FACTOR = 3
# How many steps of SQLite's virtual machine pass between two looks at a statement's clock.
SQLITE_PROGRESS_STEPS = 10_000
_STATEMENT_STARTED = "bankql_statement_started"
# Execution option of a unit of work that only reads: on SQLite it takes no write lock.
READ_ONLY = "bankql_read_only"


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def make_engine(
    url: str, *, statement_timeout_s: float | None = None, **options: Any
) -> AsyncEngine:
    """An async engine; on SQLite every transaction but a read-only one takes the write lock
    at its start.

    With a statement timeout, no statement runs longer than that: PostgreSQL cancels it
    (and ends a session idle in a transaction for a few times that long); SQLite interrupts
    it, and waits no longer than that for its write lock. Migrations run without one.
    """
    if not is_sqlite(url):
        connect_args = _postgres_timeouts(url, statement_timeout_s)
        return create_async_engine(url, pool_pre_ping=True, connect_args=connect_args, **options)
    busy_timeout_ms = SQLITE_BUSY_TIMEOUT_MS
    if statement_timeout_s is not None:
        busy_timeout_ms = min(busy_timeout_ms, _milliseconds(statement_timeout_s))
    engine = create_async_engine(url, connect_args={"timeout": busy_timeout_ms / 1000}, **options)
    _serialize_sqlite_writers(engine, busy_timeout_ms)
    if statement_timeout_s is not None:
        _limit_sqlite_statements(engine, statement_timeout_s)
    return engine


def _limit_sqlite_statements(engine: AsyncEngine, timeout_s: float) -> None:
    """SQLite has no statement timeout of its own, and a statement runs on the driver's
    thread, where cancelling its task does not reach: a progress handler, called every so
    many steps of a running statement, interrupts one older than the timeout."""

    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection: Any, record: Any) -> None:
        started: list[float] = record.info.setdefault(_STATEMENT_STARTED, [math.inf])

        def too_long() -> int:
            return int(time.monotonic() - started[0] > timeout_s)

        driver = dbapi_connection.driver_connection
        await_(driver.set_progress_handler(too_long, SQLITE_PROGRESS_STEPS))

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def on_statement(connection: Any, *_arguments: Any) -> None:
        connection.info[_STATEMENT_STARTED][0] = time.monotonic()


def _milliseconds(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _postgres_timeouts(url: str, statement_timeout_s: float | None) -> dict[str, Any]:
    """Session settings sent with the connection itself, so they cost no round trip; any
    options the URL carries are kept."""
    if statement_timeout_s is None:
        return {}
    statement_ms = _milliseconds(statement_timeout_s)
    idle_ms = statement_ms * IDLE_IN_TRANSACTION_FACTOR
    given = make_url(url).query.get("options", "")
    given = given if isinstance(given, str) else " ".join(given)
    ours = f"-c statement_timeout={statement_ms} -c idle_in_transaction_session_timeout={idle_ms}"
    return {"options": f"{given} {ours}".strip()}


def _serialize_sqlite_writers(engine: AsyncEngine, busy_timeout_ms: int) -> None:
    # The sqlite3 module would open transactions lazily and only for writes; taking control of
    # BEGIN makes each unit of work one IMMEDIATE transaction, so that two writers queue on the
    # busy timeout instead of one failing halfway through a read-then-write. A read-only one
    # begins DEFERRED: in WAL mode it reads its snapshot beside the writer.
    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
        _use_wal(cursor)
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(connection: Any) -> None:
        read_only = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN DEFERRED" if read_only else "BEGIN IMMEDIATE")


def _use_wal(cursor: Any) -> None:
    """Switch a new database file to WAL; the mode sticks to the file, so this runs once.

    Switching needs the file to itself and SQLite answers "locked" at once rather than
    waiting, so processes opening a new file together take turns here.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode")
            if str(cursor.fetchone()[0]).lower() != "wal":
                cursor.execute("PRAGMA journal_mode = WAL")
            return
        except Exception as error:  # the driver's own OperationalError, whichever wraps it
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)  # on the driver's own thread, never on the event loop


def make_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
