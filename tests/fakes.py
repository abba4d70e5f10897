"""In-memory implementations of the storage ports, for service tests without a database."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Self

from domain.errors import DuplicateRequest
from domain.ledger import Entry, EntryId, NewTransaction, Transaction, TransactionId
from domain.model import (
    Account,
    AccountId,
    AccountStatus,
    FundingAccount,
    Role,
    User,
    UserId,
)
from domain.money import Currency, Money
from domain.ports import AuditReport, Credentials, PageRequest, RecordedRequest
from domain.throttle import SignInFailures

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Line:
    """An entry as stored: a funding account's line has no balance after it."""

    id: EntryId
    transaction_id: TransactionId
    account_id: AccountId
    amount: Money
    balance_after: Money | None

    def entry(self) -> Entry:
        if self.balance_after is None:
            raise ValueError(f"entry {self.id} is not on a customer's statement")
        return Entry(
            self.id, self.transaction_id, self.account_id, self.amount, self.balance_after, NOW
        )


@dataclass
class FakeStore:
    """What a committed database would hold."""

    users: dict[UserId, User] = field(default_factory=dict)
    accounts: dict[AccountId, Account] = field(default_factory=dict)
    funding: dict[Currency, FundingAccount] = field(default_factory=dict)
    transactions: dict[TransactionId, Transaction] = field(default_factory=dict)
    requests: dict[tuple[UserId, str], RecordedRequest] = field(default_factory=dict)
    entries: dict[EntryId, Line] = field(default_factory=dict)
    passwords: dict[UserId, str] = field(default_factory=dict)
    sign_in_failures: dict[str, SignInFailures] = field(default_factory=dict)
    next_id: int = 1

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id - 1


class FakeUserRepository:
    def __init__(self, store: FakeStore) -> None:
        self.store = store

    async def add(self, *, email: str, role: Role, password_hash: str) -> User:
        if any(user.email == email for user in self.store.users.values()):
            raise DuplicateRequest()
        user = User(UserId(self.store.new_id()), email, role, NOW)
        self.store.users[user.id] = user
        self.store.passwords[user.id] = password_hash
        return user

    async def get(self, user_id: UserId) -> User | None:
        return self.store.users.get(user_id)

    async def get_many(self, user_ids: Sequence[UserId]) -> list[User]:
        return [self.store.users[i] for i in set(user_ids) if i in self.store.users]

    async def credentials(self, email: str) -> Credentials | None:
        user = next((u for u in self.store.users.values() if u.email == email), None)
        return Credentials(user, self.store.passwords[user.id]) if user is not None else None


class FakeSignInFailureRepository:
    def __init__(self, store: FakeStore) -> None:
        self.store = store

    async def lock(self, email: str) -> SignInFailures:
        return self.store.sign_in_failures.get(email, SignInFailures(email, 0, None))

    async def count_failure(self, email: str, at: datetime) -> None:
        count = (await self.lock(email)).count
        self.store.sign_in_failures[email] = SignInFailures(email, count + 1, at)

    async def clear(self, email: str) -> None:
        self.store.sign_in_failures.pop(email, None)

    async def prune(self, last_failed_before: datetime) -> None:
        self.store.sign_in_failures = {
            email: failures
            for email, failures in self.store.sign_in_failures.items()
            if failures.last_failed_at is not None and failures.last_failed_at >= last_failed_before
        }


class FakePasswordHasher:
    """Reversible on purpose, and instant: service tests need the flow, not the cost."""

    def __init__(self) -> None:
        self.checked: list[str] = []

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        yield

    async def hash(self, password: str) -> str:
        return f"hashed:{password}"

    async def verify(self, password_hash: str | None, password: str) -> bool:
        self.checked.append(password)
        return password_hash == f"hashed:{password}"


class FakeAccountRepository:
    def __init__(self, store: FakeStore) -> None:
        self.store = store

    async def add(self, *, owner_id: UserId, name: str, currency: Currency) -> Account:
        account = Account(
            AccountId(self.store.new_id()),
            owner_id,
            name,
            Money.zero(currency),
            AccountStatus.OPEN,
            NOW,
        )
        self.store.accounts[account.id] = account
        return copy.copy(account)

    async def get(self, account_id: AccountId) -> Account | None:
        found = self.store.accounts.get(account_id)
        return copy.copy(found) if found else None

    async def get_many(self, account_ids: Sequence[AccountId]) -> list[Account]:
        return [
            copy.copy(self.store.accounts[i]) for i in set(account_ids) if i in self.store.accounts
        ]

    async def lock(self, account_ids: Sequence[AccountId]) -> dict[AccountId, Account]:
        return {
            i: copy.copy(self.store.accounts[i]) for i in account_ids if i in self.store.accounts
        }

    async def funding(self, currency: Currency) -> FundingAccount:
        if currency not in self.store.funding:
            self.store.funding[currency] = FundingAccount(AccountId(self.store.new_id()), currency)
        return self.store.funding[currency]

    async def save(self, account: Account) -> None:
        self.store.accounts[account.id] = copy.copy(account)

    def _listed(self, owner_id: UserId | None, status: AccountStatus | None) -> list[Account]:
        return [
            copy.copy(a)
            for a in sorted(self.store.accounts.values(), key=lambda a: a.id)
            if owner_id in (None, a.owner_id) and status in (None, a.status)
        ]

    async def list(
        self, *, owner_id: UserId | None, status: AccountStatus | None, page: PageRequest
    ) -> list[Account]:
        after = page.after or 0
        return [a for a in self._listed(owner_id, status) if a.id > after][: page.first + 1]

    async def count(self, *, owner_id: UserId | None, status: AccountStatus | None) -> int:
        return len(self._listed(owner_id, status))

    async def list_by_owners(
        self, owner_ids: Sequence[UserId], *, status: AccountStatus | None, page: PageRequest
    ) -> dict[UserId, list[Account]]:
        return {
            owner: await self.list(owner_id=owner, status=status, page=page) for owner in owner_ids
        }

    async def count_by_owners(
        self, owner_ids: Sequence[UserId], *, status: AccountStatus | None
    ) -> dict[UserId, int]:
        return {owner: await self.count(owner_id=owner, status=status) for owner in owner_ids}


class FakeTransactionRepository:
    def __init__(self, store: FakeStore) -> None:
        self.store = store

    async def record(self, new: NewTransaction) -> Transaction:
        transaction = Transaction(
            TransactionId(self.store.new_id()),
            new.kind,
            new.amount,
            new.source_account_id,
            new.destination_account_id,
            new.description,
            new.actor_id,
            NOW,
        )
        if new.idempotency is not None:
            slot = (new.actor_id, new.idempotency.key)
            if slot in self.store.requests:
                raise DuplicateRequest()
            self.store.requests[slot] = RecordedRequest(transaction, new.idempotency.request_hash)
        self.store.transactions[transaction.id] = transaction
        for new_entry in new.entries:
            line = Line(
                EntryId(self.store.new_id()),
                transaction.id,
                new_entry.account_id,
                new_entry.amount,
                new_entry.balance_after,
            )
            self.store.entries[line.id] = line
        return transaction

    def _statement(self, account_id: AccountId) -> list[Entry]:
        """A customer account's lines, oldest first; none for a funding account."""
        if account_id not in self.store.accounts:
            return []
        lines = sorted(self.store.entries.values(), key=lambda line: line.id)
        return [line.entry() for line in lines if line.account_id == account_id]

    async def get(self, transaction_id: TransactionId) -> Transaction | None:
        return self.store.transactions.get(transaction_id)

    async def find_request(self, actor_id: UserId, key: str) -> RecordedRequest | None:
        return self.store.requests.get((actor_id, key))

    async def get_many(self, transaction_ids: Sequence[TransactionId]) -> list[Transaction]:
        return [
            self.store.transactions[i] for i in set(transaction_ids) if i in self.store.transactions
        ]

    async def entries(
        self, account_ids: Sequence[AccountId], page: PageRequest
    ) -> dict[AccountId, list[Entry]]:
        before = page.after if page.after is not None else float("inf")

        def of(account_id: AccountId) -> list[Entry]:
            found = [e for e in self._statement(account_id) if e.id < before]
            return found[::-1][: page.first + 1]

        return {account_id: of(account_id) for account_id in account_ids}

    async def get_entry(self, entry_id: EntryId) -> Entry | None:
        line = self.store.entries.get(entry_id)
        return line.entry() if line is not None and line.account_id in self.store.accounts else None

    async def get_entries(self, entry_ids: Sequence[EntryId]) -> list[Entry]:
        found = [await self.get_entry(entry_id) for entry_id in set(entry_ids)]
        return [entry for entry in found if entry is not None]

    async def newest_entry_ids(self, account_ids: Sequence[AccountId]) -> dict[AccountId, EntryId]:
        newest: dict[AccountId, EntryId] = {}
        for entry in self.store.entries.values():
            if entry.account_id in account_ids:
                newest[entry.account_id] = max(entry.id, newest.get(entry.account_id, entry.id))
        return newest

    async def entries_after(
        self, account_id: AccountId, after: EntryId | None, limit: int
    ) -> list[Entry]:
        return [e for e in self._statement(account_id) if e.id > (after or 0)][:limit]

    async def audit(self) -> AuditReport:
        lines = sorted(self.store.entries.values(), key=lambda line: line.id)

        def total(key: object, of: str = "account_id") -> int:
            return sum(line.amount.minor_units for line in lines if getattr(line, of) == key)

        def mismatched(account: Account) -> bool:
            own = [line for line in lines if line.account_id == account.id]
            last = own[-1].balance_after if own else account.balance
            return (
                account.balance.minor_units != total(account.id)
                or last != account.balance
                or account.balance.is_negative
            )

        def offset(currency: Currency) -> int:
            held = sum(
                a.balance.minor_units
                for a in self.store.accounts.values()
                if a.currency == currency
            )
            funding = self.store.funding.get(currency)
            return held + (total(funding.id) if funding is not None else 0)

        currencies = {a.currency for a in self.store.accounts.values()} | set(self.store.funding)
        return AuditReport(
            accounts_checked=len(self.store.accounts) + len(self.store.funding),
            transactions_checked=len(self.store.transactions),
            mismatched_account_ids=[a.id for a in self.store.accounts.values() if mismatched(a)],
            unbalanced_transaction_ids=[
                t for t in self.store.transactions if total(t, "transaction_id") != 0
            ],
            unbalanced_currencies=sorted(c.code for c in currencies if offset(c) != 0),
        )


class FakeUnitOfWork:
    """Works on a copy of the store and writes it back only on commit, as a transaction would."""

    def __init__(self, store: FakeStore, *, read_only: bool = False) -> None:
        self.committed_store = store
        self.committed = False
        self.read_only = read_only

    async def __aenter__(self) -> Self:
        self.working = replace(
            self.committed_store,
            users=dict(self.committed_store.users),
            accounts={k: copy.copy(v) for k, v in self.committed_store.accounts.items()},
            funding=dict(self.committed_store.funding),
            transactions=dict(self.committed_store.transactions),
            requests=dict(self.committed_store.requests),
            entries=dict(self.committed_store.entries),
            passwords=dict(self.committed_store.passwords),
            sign_in_failures=dict(self.committed_store.sign_in_failures),
        )
        self.users = FakeUserRepository(self.working)
        self.accounts = FakeAccountRepository(self.working)
        self.transactions = FakeTransactionRepository(self.working)
        self.sign_in_failures = FakeSignInFailureRepository(self.working)
        return self

    async def __aexit__(self, *exc: object) -> None:
        del self.working

    async def commit(self) -> None:
        if self.read_only:
            raise RuntimeError("commit() in a read-only unit of work")
        store = self.committed_store
        store.users, store.accounts = self.working.users, self.working.accounts
        store.funding = self.working.funding
        store.transactions, store.requests = self.working.transactions, self.working.requests
        store.entries, store.next_id = self.working.entries, self.working.next_id
        store.passwords = self.working.passwords
        store.sign_in_failures = self.working.sign_in_failures
        self.committed = True


class FakeUnitOfWorkFactory:
    """Hands out units of work on one store and remembers them, so tests can ask what committed."""

    def __init__(self) -> None:
        self.store = FakeStore()
        self.made: list[FakeUnitOfWork] = []

    def __call__(self, *, read_only: bool = False) -> FakeUnitOfWork:
        uow = FakeUnitOfWork(self.store, read_only=read_only)
        self.made.append(uow)
        return uow

    @property
    def commits(self) -> int:
        return sum(uow.committed for uow in self.made)
