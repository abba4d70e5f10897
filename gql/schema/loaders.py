"""Per-request DataLoaders: a nested query costs a fixed number of SQL statements."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from strawberry.dataloader import DataLoader

from domain.holds import Hold, HoldId
from domain.ledger import Entry, Transaction, TransactionId
from domain.model import Account, AccountId, AccountStatus, Actor, User, UserId
from domain.ports import Page, PageRequest

if TYPE_CHECKING:
    from domain.services import AccountService, HoldService, UserService


class Loaders:
    """Made afresh for every request, so that nothing is cached across users or requests."""

    def __init__(
        self,
        accounts: AccountService,
        users: UserService,
        actor: Callable[[], Awaitable[Actor]],
        holds: HoldService,
    ) -> None:
        self._accounts, self._users, self._actor = accounts, users, actor
        self._holds = holds
        self.reserved: DataLoader[AccountId, int] = DataLoader(self._load_reserved)
        self.holds: DataLoader[HoldId, Hold | None] = DataLoader(self._load_holds)
        self.reversals: DataLoader[TransactionId, Transaction | None] = DataLoader(
            self._load_reversals
        )
        self.users: DataLoader[UserId, User | None] = DataLoader(self._load_users)
        self.transactions: DataLoader[TransactionId, Transaction | None] = DataLoader(
            self._load_transactions
        )
        self._statements: dict[PageRequest, DataLoader[AccountId, Page[Entry]]] = {}
        self._owned: dict[
            tuple[PageRequest, AccountStatus | None], DataLoader[UserId, Page[Account]]
        ] = {}

    def statements(self, page: PageRequest) -> DataLoader[AccountId, Page[Entry]]:
        """One loader per page size and cursor: every account asking for the same page
        shares one query."""
        if page not in self._statements:

            async def load(account_ids: Sequence[AccountId]) -> list[Page[Entry]]:
                found = await self._accounts.statements(
                    actor=await self._actor(), account_ids=account_ids, page=page
                )
                return [found[key] for key in account_ids]

            self._statements[page] = DataLoader(load)
        return self._statements[page]

    def owned_accounts(
        self, page: PageRequest, status: AccountStatus | None
    ) -> DataLoader[UserId, Page[Account]]:
        """One loader per page and status: every user asking for the same page of their
        accounts shares two queries."""
        if (page, status) not in self._owned:

            async def load(owner_ids: Sequence[UserId]) -> list[Page[Account]]:
                found = await self._accounts.accounts_of_owners(
                    actor=await self._actor(), owner_ids=owner_ids, status=status, page=page
                )
                return [found[key] for key in owner_ids]

            self._owned[page, status] = DataLoader(load)
        return self._owned[page, status]

    async def _load_users(self, user_ids: Sequence[UserId]) -> list[User | None]:
        found = await self._users.users(actor=await self._actor(), user_ids=user_ids)
        return [found.get(key) for key in user_ids]

    async def _load_transactions(
        self, transaction_ids: Sequence[TransactionId]
    ) -> list[Transaction | None]:
        found = await self._accounts.transactions(
            actor=await self._actor(), transaction_ids=transaction_ids
        )
        return [found.get(key) for key in transaction_ids]

    async def _load_reserved(self, account_ids: Sequence[AccountId]) -> list[int]:
        found = await self._holds.reserved(actor=await self._actor(), account_ids=account_ids)
        return [found.get(key, 0) for key in account_ids]

    async def _load_holds(self, hold_ids: Sequence[HoldId]) -> list[Hold | None]:
        found = await self._holds.holds_by_ids(actor=await self._actor(), hold_ids=hold_ids)
        return [found.get(key) for key in hold_ids]

    async def _load_reversals(
        self, transaction_ids: Sequence[TransactionId]
    ) -> list[Transaction | None]:
        found = await self._accounts.reversals(
            actor=await self._actor(), transaction_ids=transaction_ids
        )
        return [found.get(key) for key in transaction_ids]
