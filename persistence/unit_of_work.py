"""One database session and transaction per use case."""

from __future__ import annotations

from typing import Self

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from domain.errors import DuplicateRequest, TransientConflict
from domain.ports import AccountRepository, TransactionRepository, UserRepository
from persistence.passwords import PasswordHashing
from persistence.repositories import (
    SqlAccountRepository,
    SqlTransactionRepository,
    SqlUserRepository,
    is_transient,
    is_unique_violation,
)


class SqlUnitOfWork:
    """Commits only when told to; leaving the block otherwise rolls back."""

    users: UserRepository
    accounts: AccountRepository
    transactions: TransactionRepository

    def __init__(
        self, session_factory: async_sessionmaker[AsyncSession], passwords: PasswordHashing
    ) -> None:
        self._session_factory = session_factory
        self._passwords = passwords
        self._session: AsyncSession | None = None

    async def __aenter__(self) -> Self:
        session = self._session_factory()
        self._session = session
        self.users = SqlUserRepository(session, self._passwords)
        self.accounts = SqlAccountRepository(session)
        self.transactions = SqlTransactionRepository(session)
        return self

    async def __aexit__(self, _type: object, error: object, _traceback: object) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.rollback()
            await session.close()
        if isinstance(error, DBAPIError) and is_transient(error):
            raise TransientConflict() from error

    async def commit(self) -> None:
        if self._session is None:
            raise RuntimeError("commit() outside the unit of work's block")
        try:
            await self._session.commit()
        except IntegrityError as error:
            if is_unique_violation(error):
                raise DuplicateRequest() from error
            raise
        except DBAPIError as error:
            if is_transient(error):
                raise TransientConflict() from error
            raise
