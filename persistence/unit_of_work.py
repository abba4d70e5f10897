"""One database session and transaction per use case."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Self

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from domain.errors import DuplicateRequest, StoreUnavailable, TransientConflict
from domain.ports import (
    AccountRepository,
    HoldRepository,
    SessionRepository,
    SignInFailureRepository,
    TransactionRepository,
    UnitOfWork,
    UnitOfWorkFactory,
    UserRepository,
)
from persistence.database import READ_ONLY, begun
from persistence.repositories import (
    SqlAccountRepository,
    SqlHoldRepository,
    SqlSessionRepository,
    SqlSignInFailureRepository,
    SqlTransactionRepository,
    SqlUserRepository,
)

_UNIQUE_VIOLATION = "23505"
# PostgreSQL's serialization_failure, deadlock_detected and lock_not_available.
_TRANSIENT = {"40001", "40P01", "55P03"}


def translated(error: DBAPIError) -> Exception | None:
    """The domain's name for a database failure the use case can act on, if it is one.

    A lost race on a unique value (an idempotency key, an email) is DuplicateRequest; a
    deadlock, serialization failure or busy lock is TransientConflict; a connection that
    could not be opened, or whose server went away or turned read-only (the engine marks
    these as disconnects, see persistence/database.py), is StoreUnavailable. Anything else
    stays.
    """
    if error.connection_invalidated:
        return StoreUnavailable()
    original = error.orig
    state, text = getattr(original, "sqlstate", None), str(original)
    if isinstance(error, IntegrityError) and (
        state == _UNIQUE_VIOLATION or "UNIQUE constraint failed" in text
    ):
        return DuplicateRequest()
    if state in _TRANSIENT or "database is locked" in text:
        return TransientConflict()
    return None


def raise_translated(error: object) -> None:
    """Raise the domain's name for a database failure the use case can act on, if it is one;
    every unit of work leaves its block through here."""
    if isinstance(error, DBAPIError) and (domain_error := translated(error)) is not None:
        raise domain_error from error


@contextmanager
def translated_failures() -> Iterator[None]:
    """A database failure in the block leaves it under the domain's name, if it has one:
    for the steps outside a unit of work's block, beginning and ending it."""
    try:
        yield
    except DBAPIError as error:
        raise_translated(error)
        raise


async def end_session(session: AsyncSession, *, commit: bool) -> None:
    """End the session's transaction (COMMIT or ROLLBACK) and close it.

    A connection found lost on the way (its server gone, or turned read-only) is not an
    error here: the pool has already dropped it, a write was committed or not before this,
    and what was read stands. Whatever failed inside the block is reported on its own."""
    try:
        try:
            if commit:
                await session.commit()
            else:
                await session.rollback()
        finally:
            await session.close()
    except DBAPIError as error:
        if not error.connection_invalidated:
            raise


class SqlRepositories:
    """The repositories on one session, as every unit of work hands them out."""

    users: UserRepository
    accounts: AccountRepository
    transactions: TransactionRepository
    sign_in_failures: SignInFailureRepository
    sessions: SessionRepository
    holds: HoldRepository

    def use(self, session: AsyncSession) -> None:
        self.users = SqlUserRepository(session)
        self.accounts = SqlAccountRepository(session)
        self.transactions = SqlTransactionRepository(session)
        self.sign_in_failures = SqlSignInFailureRepository(session)
        self.sessions = SqlSessionRepository(session)
        self.holds = SqlHoldRepository(session)


class SqlUnitOfWork(SqlRepositories):
    """Commits only when told to; leaving the block otherwise rolls back."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        *,
        read_only: bool = False,
    ) -> None:
        self._session_factory = session_factory
        self._read_only = read_only
        self._session: AsyncSession | None = None

    async def __aenter__(self) -> Self:
        session = self._session_factory()
        if self._read_only:
            # Begun now, as the option takes effect only where the transaction begins; a
            # database out of reach fails here, and the session is closed again.
            with translated_failures():
                session = await begun(session, {READ_ONLY: True})
        self._session = session
        self.use(session)
        return self

    async def __aexit__(self, _type: object, error: object, _traceback: object) -> None:
        session, self._session = self._session, None
        if session is not None:
            # Nothing to undo in a read-only one: COMMIT keeps the connection's prepared
            # statements, which the driver forgets on ROLLBACK.
            await end_session(session, commit=self._read_only and error is None)
        # Flush and commit both happen inside the block, so this one place names every
        # database failure the use cases handle.
        raise_translated(error)

    async def commit(self) -> None:
        if self._session is None:
            raise RuntimeError("commit() outside the unit of work's block")
        if self._read_only:
            raise RuntimeError("commit() in a read-only unit of work")
        await self._session.commit()


class SharedOut:
    """Units of work that hold at most `slots` database connections at once between them:
    a bounded share of the pool, so that however many of them start together, the rest of
    the pool stays free for everyone else. A unit of work waits for a slot before it takes a
    connection, and gives the slot back when it ends."""

    def __init__(self, make: UnitOfWorkFactory, slots: int) -> None:
        self._make = make
        self._slots = asyncio.Semaphore(slots)

    def __call__(self, *, read_only: bool = False) -> UnitOfWork:
        return _InSlot(self._make(read_only=read_only), self._slots)


class _InSlot:
    """A unit of work that runs in one of the shared slots; otherwise it is the one it wraps."""

    users: UserRepository
    accounts: AccountRepository
    transactions: TransactionRepository
    sign_in_failures: SignInFailureRepository
    sessions: SessionRepository
    holds: HoldRepository

    def __init__(self, inner: UnitOfWork, slots: asyncio.Semaphore) -> None:
        self._inner = inner
        self._slots = slots

    async def __aenter__(self) -> Self:
        await self._slots.acquire()
        try:
            inner = await self._inner.__aenter__()
        except BaseException:
            self._slots.release()
            raise
        self.users, self.accounts = inner.users, inner.accounts
        self.transactions, self.sign_in_failures = inner.transactions, inner.sign_in_failures
        self.sessions = inner.sessions
        self.holds = inner.holds
        return self

    async def __aexit__(self, exc_type: object, exc: object, traceback: object) -> None:
        try:
            await self._inner.__aexit__(exc_type, exc, traceback)
        finally:
            self._slots.release()

    async def commit(self) -> None:
        await self._inner.commit()
