"""In-memory implementations of the storage ports, for service tests without a database."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Self

from domain.errors import DuplicateRequest
from domain.holds import Hold, HoldId, HoldStatus, NewHold
from domain.ledger import (
    Entry,
    EntryId,
    NewTransaction,
    Transaction,
    TransactionId,
    TransactionKind,
)
from domain.model import (
    Account,
    AccountId,
    AccountStatus,
    Actor,
    FundingAccount,
    Role,
    Session,
    SessionId,
    User,
    UserId,
)
from domain.money import Currency, Money
from domain.ports import (
    AuditReport,
    Credentials,
    ExportLine,
    NewSession,
    PageRequest,
    PeriodTotals,
    RecordedHold,
    RecordedRequest,
)
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
    sessions: dict[SessionId, Session] = field(default_factory=dict)
    # Each session's current refresh token digest, and every retired one's session.
    refresh_hashes: dict[SessionId, str] = field(default_factory=dict)
    retired_hashes: dict[str, tuple[SessionId, datetime]] = field(default_factory=dict)
    holds: dict[HoldId, Hold] = field(default_factory=dict)
    hold_requests: dict[tuple[UserId, str], RecordedHold] = field(default_factory=dict)
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

    async def set_password(self, user_id: UserId, password_hash: str) -> None:
        self.store.passwords[user_id] = password_hash

    async def lock_password(self, user_id: UserId) -> str | None:
        return self.store.passwords.get(user_id)


class FakeSessionRepository:
    def __init__(self, store: FakeStore) -> None:
        self.store = store

    async def add(self, new: NewSession) -> Session:
        session = Session(
            SessionId(self.store.new_id()),
            new.user_id,
            new.created_at,
            None,
            new.expires_at,
            new.user_agent,
        )
        self.store.sessions[session.id] = session
        self.store.refresh_hashes[session.id] = new.refresh_token_hash
        return session

    async def rotate(
        self, old_hash: str, new_hash: str, *, now: datetime, expires_at: datetime
    ) -> Session | None:
        found = next((k for k, h in self.store.refresh_hashes.items() if h == old_hash), None)
        if found is None or not self.store.sessions[found].is_live(now):
            return None
        session = replace(self.store.sessions[found], last_refreshed_at=now, expires_at=expires_at)
        self.store.sessions[found] = session
        self.store.refresh_hashes[found] = new_hash
        self.store.retired_hashes[old_hash] = (found, now)
        return session

    async def retired(self, token_hash: str) -> SessionId | None:
        found = self.store.retired_hashes.get(token_hash)
        return found[0] if found is not None else None

    async def forget_retired(self, session_id: SessionId, before: datetime) -> None:
        self.store.retired_hashes = {
            h: (key, at)
            for h, (key, at) in self.store.retired_hashes.items()
            if key != session_id or at >= before
        }

    async def end(self, user_id: UserId, session_id: SessionId | None, *, now: datetime) -> int:
        ending = [
            s
            for s in self.store.sessions.values()
            if s.user_id == user_id and s.is_live(now) and session_id in (None, s.id)
        ]
        for session in ending:
            self.store.sessions[session.id] = replace(session, ended_at=now)
        return len(ending)

    async def end_oldest(self, user_id: UserId, *, keep: int, now: datetime) -> None:
        live = sorted(
            (s for s in self.store.sessions.values() if s.user_id == user_id and s.is_live(now)),
            key=lambda s: s.id,
            reverse=True,
        )
        for session in live[keep:]:
            self.store.sessions[session.id] = replace(session, ended_at=now)

    async def end_by_id(self, session_id: SessionId, *, now: datetime) -> None:
        session = self.store.sessions.get(session_id)
        if session is not None and session.ended_at is None:
            self.store.sessions[session_id] = replace(session, ended_at=now)

    async def actor(self, user_id: UserId, session_id: SessionId, now: datetime) -> Actor | None:
        session = await self.get_live(user_id, session_id, now)
        user = self.store.users.get(user_id)
        return Actor(user.id, user.role) if session is not None and user is not None else None

    async def get_live(
        self, user_id: UserId, session_id: SessionId, now: datetime
    ) -> Session | None:
        session = self.store.sessions.get(session_id)
        live = session is not None and session.user_id == user_id and session.is_live(now)
        return session if live else None

    async def list_live(self, user_id: UserId, now: datetime, page: PageRequest) -> list[Session]:
        found = sorted(
            (
                s
                for s in self.store.sessions.values()
                if s.user_id == user_id
                and s.is_live(now)
                and (page.after is None or s.id < page.after)
            ),
            key=lambda s: s.id,
            reverse=True,
        )
        return found[: page.first + 1]

    async def live_ids(self, session_ids: Sequence[SessionId], now: datetime) -> set[SessionId]:
        return {
            key
            for key in session_ids
            if key in self.store.sessions and self.store.sessions[key].is_live(now)
        }

    async def prune(self, before: datetime, *, limit: int) -> int:
        doomed = {
            key
            for key, s in sorted(self.store.sessions.items())
            if s.expires_at < before or (s.ended_at is not None and s.ended_at < before)
        }
        doomed = set(sorted(doomed)[:limit])
        for key in doomed:
            del self.store.sessions[key]
            del self.store.refresh_hashes[key]
        self.store.retired_hashes = {
            h: found for h, found in self.store.retired_hashes.items() if found[0] not in doomed
        }
        return len(doomed)


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
            new.hold_id,
            new.reverses_id,
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

    async def entry_accounts(self, entry_ids: Sequence[EntryId]) -> dict[EntryId, AccountId]:
        found = [await self.get_entry(entry_id) for entry_id in set(entry_ids)]
        return {entry.id: entry.account_id for entry in found if entry is not None}

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

    async def reversals(
        self, transaction_ids: Sequence[TransactionId]
    ) -> dict[TransactionId, Transaction]:
        return {
            t.reverses_id: t
            for t in self.store.transactions.values()
            if t.reverses_id is not None and t.reverses_id in transaction_ids
        }

    async def balance_at(self, account_id: AccountId, at: datetime) -> int | None:
        # Every fake line is written at NOW.
        before = [e for e in self._statement(account_id) if e.created_at < at]
        return before[-1].balance_after.minor_units if before else None

    def _period(self, account_id: AccountId, start: datetime, end: datetime) -> list[Entry]:
        return [e for e in self._statement(account_id) if start <= e.created_at < end]

    async def period_totals(
        self, account_id: AccountId, start: datetime, end: datetime
    ) -> PeriodTotals:
        amounts = [e.amount.minor_units for e in self._period(account_id, start, end)]
        return PeriodTotals(sum(a for a in amounts if a > 0), -sum(a for a in amounts if a < 0))

    async def period_entries(
        self,
        account_id: AccountId,
        start: datetime,
        end: datetime,
        page: PageRequest,
        *,
        oldest_first: bool = False,
    ) -> list[Entry]:
        found = self._period(account_id, start, end)
        if not oldest_first:
            found = found[::-1]
        if page.after is not None:
            found = [e for e in found if (e.id > page.after if oldest_first else e.id < page.after)]
        return found[: page.first + 1]

    async def export_lines(
        self,
        account_id: AccountId,
        start: datetime,
        end: datetime,
        after: tuple[datetime, EntryId] | None,
        limit: int,
    ) -> list[ExportLine]:
        found = [
            e
            for e in self._period(account_id, start, end)
            if after is None or (e.created_at, e.id) > after
        ]
        return [
            ExportLine(
                e.id,
                e.transaction_id,
                self.store.transactions[e.transaction_id].kind.value,
                self.store.transactions[e.transaction_id].description,
                e.amount.minor_units,
                e.balance_after.minor_units,
                e.created_at,
            )
            for e in found[:limit]
        ]

    async def audit(self) -> AuditReport:
        lines = sorted(self.store.entries.values(), key=lambda line: line.id)

        def total(key: object, of: str = "account_id") -> int:
            return sum(line.amount.minor_units for line in lines if getattr(line, of) == key)

        def mismatched(account: Account) -> bool:
            own = [line for line in lines if line.account_id == account.id]
            last = own[-1].balance_after if own else account.balance
            held = sum(
                h.pending_at(datetime.now(UTC)).minor_units
                for h in self.store.holds.values()
                if h.account_id == account.id
            )
            return (
                account.balance.minor_units != total(account.id)
                or last != account.balance
                or account.balance.is_negative
                or held > account.balance.minor_units
            )

        def faulty(hold: Hold) -> bool:
            captures = [
                t
                for t in self.store.transactions.values()
                if t.hold_id == hold.id and t.kind is not TransactionKind.REVERSAL
            ]
            if hold.recorded_status is HoldStatus.CAPTURED:
                return len(captures) != 1 or captures[0].amount != hold.captured
            return bool(captures) or hold.captured.minor_units != 0

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
            faulty_hold_ids=[h.id for h in self.store.holds.values() if faulty(h)],
        )


class FakeHoldRepository:
    def __init__(self, store: FakeStore) -> None:
        self.store = store

    def _with_capture(self, hold: Hold) -> Hold:
        found = copy.copy(hold)
        found.transaction_id = next(
            (
                t.id
                for t in sorted(self.store.transactions.values(), key=lambda t: t.id)
                if t.hold_id == hold.id and t.kind is not TransactionKind.REVERSAL
            ),
            None,
        )
        return found

    async def add(self, new: NewHold) -> Hold:
        hold = Hold(
            id=HoldId(self.store.new_id()),
            account_id=new.account_id,
            placed_by=new.placed_by,
            amount=new.amount,
            captured=Money.zero(new.amount.currency),
            recorded_status=HoldStatus.PENDING,
            destination_account_id=new.destination_account_id,
            description=new.description,
            expires_at=new.expires_at,
            created_at=NOW,
            resolved_at=None,
        )
        if new.idempotency is not None:
            slot = (new.placed_by, new.idempotency.key)
            if slot in self.store.hold_requests:
                raise DuplicateRequest()
            self.store.hold_requests[slot] = RecordedHold(hold, new.idempotency.request_hash)
        self.store.holds[hold.id] = hold
        return copy.copy(hold)

    async def get(self, hold_id: HoldId) -> Hold | None:
        found = self.store.holds.get(hold_id)
        return self._with_capture(found) if found is not None else None

    async def get_many(self, hold_ids: Sequence[HoldId]) -> list[Hold]:
        return [
            self._with_capture(self.store.holds[i]) for i in set(hold_ids) if i in self.store.holds
        ]

    async def save(self, hold: Hold) -> None:
        self.store.holds[hold.id] = copy.copy(hold)

    async def find_request(self, actor_id: UserId, key: str) -> RecordedHold | None:
        recorded = self.store.hold_requests.get((actor_id, key))
        if recorded is None:
            return None
        hold = await self.get(recorded.hold.id)
        return RecordedHold(hold, recorded.request_hash) if hold is not None else None

    async def reserved(
        self, account_ids: Sequence[AccountId], now: datetime
    ) -> dict[AccountId, int]:
        found: dict[AccountId, int] = {}
        for hold in self.store.holds.values():
            if hold.account_id in account_ids:
                found[hold.account_id] = (
                    found.get(hold.account_id, 0) + hold.pending_at(now).minor_units
                )
        return found

    async def list(
        self,
        account_id: AccountId,
        *,
        status: HoldStatus | None,
        page: PageRequest,
        now: datetime,
    ) -> list[Hold]:
        before = page.after if page.after is not None else float("inf")
        found = [
            self._with_capture(h)
            for h in sorted(self.store.holds.values(), key=lambda h: -h.id)
            if h.account_id == account_id and h.id < before and status in (None, h.status_at(now))
        ]
        return found[: page.first + 1]


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
            sessions=dict(self.committed_store.sessions),
            refresh_hashes=dict(self.committed_store.refresh_hashes),
            retired_hashes=dict(self.committed_store.retired_hashes),
            holds={k: copy.copy(v) for k, v in self.committed_store.holds.items()},
            hold_requests=dict(self.committed_store.hold_requests),
        )
        self.users = FakeUserRepository(self.working)
        self.accounts = FakeAccountRepository(self.working)
        self.transactions = FakeTransactionRepository(self.working)
        self.sign_in_failures = FakeSignInFailureRepository(self.working)
        self.sessions = FakeSessionRepository(self.working)
        self.holds = FakeHoldRepository(self.working)
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
        store.sessions = self.working.sessions
        store.refresh_hashes = self.working.refresh_hashes
        store.retired_hashes = self.working.retired_hashes
        store.holds, store.hold_requests = self.working.holds, self.working.hold_requests
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
