"""Engines and sessions for SQLite (the embedded default) and PostgreSQL, from one URL."""

from __future__ import annotations

import math
import time
from typing import Any

import psycopg
from sqlalchemy import event
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
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
# PostgreSQL connections each process keeps open: a fixed number, opened as needed and never
# closed for being one too many, so that a busy process does not start new sessions over and
# over. A request waits for a free one (within its deadline) when all are in use.
DEFAULT_POOL_SIZE = 15
# A pooled connection older than this is closed and replaced when it is next taken.
POOL_RECYCLE_S = 1800
# A connection that sat unused this long is checked with a ping before it is handed out, so
# that a database restarted in a quiet moment costs no request; a busy one is not pinged.
IDLE_PING_S = 10.0
# A statement run this many times on one connection is prepared there, and runs without
# being parsed and planned again.
PREPARE_AFTER = 2
_CHECKED_IN_AT = "bankql_checked_in_at"


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def make_engine(
    url: str,
    *,
    statement_timeout_s: float | None = None,
    pool_size: int = DEFAULT_POOL_SIZE,
    prepared_statements: bool = True,
    **options: Any,
) -> AsyncEngine:
    """An async engine; on SQLite every transaction but a read-only one takes the write lock
    at its start.

    With a statement timeout, no statement runs longer than that: PostgreSQL cancels it
    (and ends a session idle in a transaction for a few times that long); SQLite interrupts
    it, and waits no longer than that for its write lock. Migrations run without one.

    On PostgreSQL the pool holds at most `pool_size` connections and no overflow, and
    repeated statements are prepared unless `prepared_statements` is off (for a pooler in
    transaction mode, where a prepared statement may not be on the next connection); off,
    the timeouts are set in each transaction rather than once per connection.
    """
    if not is_sqlite(url):
        timeouts = _postgres_timeouts(statement_timeout_s)
        connect_args: dict[str, Any] = {
            "prepare_threshold": PREPARE_AFTER if prepared_statements else None
        }
        if prepared_statements:
            connect_args |= _startup_options(url, timeouts)
        engine = create_async_engine(
            url,
            pool_size=pool_size,
            max_overflow=0,
            pool_recycle=POOL_RECYCLE_S,
            connect_args=connect_args,
            **options,
        )
        if not prepared_statements and timeouts:
            _set_per_transaction(engine, timeouts)
        _ping_when_idle(engine, IDLE_PING_S)
        _lost_servers_are_disconnects(engine)
        return engine
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


def _ping_when_idle(engine: AsyncEngine, idle_s: float) -> None:
    """Check a connection before it is handed out only when it sat unused for `idle_s`: a
    server restarted meanwhile has closed it, and the pool then opens a fresh one instead of
    failing the request. A busy pool pays no round trip for this.

    A connection that breaks while in use fails its request, and SQLAlchemy then replaces
    every connection opened before, so the requests after it find a working one."""

    @event.listens_for(engine.sync_engine, "checkin")
    def on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info[_CHECKED_IN_AT] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        checked_in_at = record.info.get(_CHECKED_IN_AT)
        if checked_in_at is None or time.monotonic() - checked_in_at < idle_s:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:  # the driver's own error for a closed connection
            # The pool closes this one and hands out a new connection instead.
            raise DisconnectionError(f"a pooled connection was closed: {error}") from error


def _milliseconds(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _postgres_timeouts(statement_timeout_s: float | None) -> dict[str, int]:
    """The session settings, in milliseconds, that bound each statement and each idle
    transaction."""
    if statement_timeout_s is None:
        return {}
    statement_ms = _milliseconds(statement_timeout_s)
    return {
        "statement_timeout": statement_ms,
        "idle_in_transaction_session_timeout": statement_ms * IDLE_IN_TRANSACTION_FACTOR,
    }


def _startup_options(url: str, timeouts: dict[str, int]) -> dict[str, Any]:
    """Session settings sent with the connection itself, so they cost no round trip; any
    options the URL carries are kept."""
    if not timeouts:
        return {}
    given = make_url(url).query.get("options", "")
    given = given if isinstance(given, str) else " ".join(given)
    ours = " ".join(f"-c {name}={value}" for name, value in timeouts.items())
    return {"options": f"{given} {ours}".strip()}


def _set_per_transaction(engine: AsyncEngine, timeouts: dict[str, int]) -> None:
    """The session settings as the first statement of every transaction, for the length of
    that transaction only.

    A pooler in transaction mode (PgBouncer) refuses the `options` startup parameter, and
    hands each transaction whichever server connection is free, so a setting made once per
    client connection would land on one server connection and miss the others. This costs
    one round trip per transaction."""
    settings = ", ".join(
        f"set_config('{name}', '{value}', true)" for name, value in timeouts.items()
    )
    statement = f"SELECT {settings}"

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(connection: Any) -> None:
        connection.exec_driver_sql(statement)


# SQLSTATEs after which a connection is of no further use: it reached a server that takes
# no writes (a standby, or a primary demoted to one: read_only_sql_transaction), lost its
# server (the connection_exception class), or the server is shutting down or starting up.
_READ_ONLY = "25006"
_SERVER_GONE = {"57P01", "57P02", "57P03"}


def is_lost_server(error: BaseException, *, connecting: bool = False) -> bool:
    """Whether a driver error means the server behind a connection is gone or can no longer
    take writes, so that the connection (and the pool's others) must be replaced."""
    state = getattr(error, "sqlstate", None) or ""
    if state == _READ_ONLY or state in _SERVER_GONE or state.startswith("08"):
        return True
    # Opening a connection failed: no server of the URL answered as it must (for one with
    # target_session_attrs=read-write, none accepts writes).
    return connecting and isinstance(error, psycopg.OperationalError)


def _lost_servers_are_disconnects(engine: AsyncEngine) -> None:
    """After a failover the pool's connections lead to a server that is gone, or that came
    back as a standby and refuses writes. SQLAlchemy treats the first as a disconnect; the
    second is made one here too, so the pool drops its connections and opens new ones, which
    the URL's target_session_attrs=read-write sends to the writable server. The error is
    marked as such (connection_invalidated), for the unit of work to report."""

    @event.listens_for(engine.sync_engine, "handle_error")
    def on_error(context: Any) -> None:
        if context.is_disconnect:
            return
        error = context.original_exception
        if is_lost_server(error, connecting=context.connection is None):
            context.is_disconnect = True


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


def connection_parameters(url: str) -> dict[str, Any]:
    """libpq's connection parameters for a PostgreSQL URL as SQLAlchemy reads it, several
    hosts (`?host=h1:5432&host=h2:5432`) included, for connecting with psycopg itself."""
    dialect = PGDialect_psycopg()  # type: ignore[no-untyped-call]
    _arguments, parameters = dialect.create_connect_args(make_url(url))  # type: ignore[no-untyped-call]
    return dict(parameters)


async def begun(session: AsyncSession, options: dict[str, Any]) -> AsyncSession:
    """The session, its transaction begun with these execution options (they take effect
    only where it begins); closed again if it cannot begin (a database out of reach)."""
    try:
        await session.connection(execution_options=options)
    except BaseException:
        await session.close()
        raise
    return session


def make_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
