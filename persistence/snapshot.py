"""One snapshot for all the reads of one request, so that what it shows agrees with itself."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Self

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from domain.errors import StoreUnavailable, TransientConflict
from domain.ports import UnitOfWork
from persistence.database import READ_ONLY, begun
from persistence.unit_of_work import (
    SqlRepositories,
    SqlUnitOfWork,
    end_session,
    raise_translated,
    translated_failures,
)

# Opens a session whose transaction begins with the options given, on a database of its choice.
OpenRead = Callable[[dict[str, Any]], Awaitable[AsyncSession]]


def snapshot_options(dialect: str) -> dict[str, Any]:
    """How a read transaction sees one snapshot across its statements: PostgreSQL needs
    REPEATABLE READ; a SQLite read transaction keeps its WAL snapshot anyway."""
    if dialect == "postgresql":
        return {READ_ONLY: True, "isolation_level": "REPEATABLE READ"}
    return {READ_ONLY: True}


class ReadSnapshot:
    """The units of work of one request. Its read-only ones share one read transaction, so
    an account's balance and its statement, read by two resolvers, come from one moment.

    They take turns on it, since a session runs one statement at a time. A write through the
    same request ends the snapshot first, so what the request reads afterwards includes its
    own write. end() ends it at the end of the request.
    """

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        open_read: OpenRead | None = None,
    ) -> None:
        self._session_factory = session_factory
        # Where the read transaction may go instead of `session_factory`'s database (a
        # standby that has caught up, see persistence/replicas.py); none after a write, whose
        # result the primary has at once.
        self._open_read = open_read
        self._turn = asyncio.Lock()
        self._holder: asyncio.Task[Any] | None = None
        self._session: AsyncSession | None = None
        self._ended = False
        # A read that failed or was cancelled may have left the transaction unusable.
        self._spoilt = False

    def unit_of_work(self, *, read_only: bool = False) -> UnitOfWork:
        if read_only:
            return _SnapshotRead(self)
        return _WriteAfterSnapshot(self, self._session_factory)

    async def end(self) -> None:
        """Close the snapshot for good. A read still running belongs to a request that
        stopped early (its deadline passed, or its client left): it is cancelled, and reads
        still waiting for their turn do not start."""
        self._ended = True
        holder = self._holder
        if holder is not None and holder is not asyncio.current_task():
            self._spoilt = True
            holder.cancel()
        await self.close()

    async def close(self) -> None:
        """End the read transaction. One that only read ends with COMMIT, which undoes
        nothing but keeps what the connection prepared (the driver forgets its prepared
        statements on ROLLBACK); one whose read failed is rolled back."""
        async with self._turn:
            session, self._session = self._session, None
            spoilt, self._spoilt = self._spoilt, False
            if session is not None:
                await _end_reading(session, spoilt)

    async def take_turn(self) -> AsyncSession:
        """The snapshot's session, for this task alone until it calls end_turn()."""
        if self._holder is not None and self._holder is asyncio.current_task():
            raise RuntimeError("a read inside another read of the same request would wait forever")
        await self._turn.acquire()
        self._holder = asyncio.current_task()
        try:
            if self._ended:
                raise RuntimeError("the request has ended")
            if self._session is None:
                self._session = await self._open()
        except BaseException:
            self.end_turn()
            raise
        return self._session

    async def _open(self) -> AsyncSession:
        if self._open_read is not None:
            return await self._open_read(snapshot_options("postgresql"))
        session = self._session_factory()
        dialect = session.bind.dialect.name if session.bind is not None else ""
        return await begun(session, snapshot_options(dialect))

    def wrote(self) -> None:
        """A write of the request committed, or is about to: its later reads go to the
        primary, which has the write at once."""
        self._open_read = None

    def end_turn(self) -> None:
        self._holder = None
        self._turn.release()

    def spoil(self) -> None:
        """The transaction may be unusable: roll it back rather than commit it."""
        self._spoilt = True


async def _end_reading(session: AsyncSession, spoilt: bool) -> None:
    await end_session(session, commit=not spoilt)


class _SnapshotRead(SqlRepositories):
    def __init__(self, snapshot: ReadSnapshot) -> None:
        self._snapshot = snapshot

    async def __aenter__(self) -> Self:
        with translated_failures():  # beginning may fail too: a database out of reach
            session = await self._snapshot.take_turn()
        self.use(session)
        return self

    async def __aexit__(self, _type: object, error: object, _traceback: object) -> None:
        if error is not None:
            self._snapshot.spoil()
        self._snapshot.end_turn()
        if error is not None:
            # A failed statement may have spoilt the transaction: the next read starts anew.
            await self._snapshot.close()
        try:
            raise_translated(error)
        except TransientConflict as conflict:
            # Read-only, it conflicted with no writer: a standby cancelled it, as its replay
            # had to remove rows the read might see ("conflict with recovery"). Nothing runs
            # a read again, so the client is told to send it again, not an internal error;
            # as after a write, the request's later reads go to the primary.
            self._snapshot.wrote()
            raise StoreUnavailable() from conflict.__cause__

    async def commit(self) -> None:
        raise RuntimeError("commit() in a read-only unit of work")


class _WriteAfterSnapshot(SqlUnitOfWork):
    """A write of the request: the snapshot ends before it begins, which also gives its
    connection back before the write takes one."""

    def __init__(
        self,
        snapshot: ReadSnapshot,
        session_factory: async_sessionmaker[AsyncSession],
    ) -> None:
        super().__init__(session_factory)
        self._snapshot = snapshot

    async def __aenter__(self) -> Self:
        with translated_failures():  # ending the reads may fail too: a database out of reach
            await self._snapshot.close()
        self._snapshot.wrote()
        return await super().__aenter__()
