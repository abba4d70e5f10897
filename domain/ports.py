"""What the use cases need from storage, as protocols that persistence and test fakes implement."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, Protocol, Self, TypeVar

from domain.holds import Hold, HoldId, HoldStatus, NewHold
from domain.ledger import Entry, EntryId, NewTransaction, Transaction, TransactionId
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
from domain.money import Currency
from domain.throttle import SignInFailures

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PageRequest:
    """Keyset pagination: at most `first` items after the item whose key is `after`."""

    first: int
    after: int | None = None


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    has_next: bool
    has_previous: bool
    # How many items all the pages hold, where the listing counts them.
    total: int | None = None


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """The transaction a request with an idempotency key produced, and that request's digest."""

    transaction: Transaction
    request_hash: str


@dataclass(frozen=True, slots=True)
class AuditReport:
    """What a check of the whole ledger found; empty id lists mean a clean ledger."""

    accounts_checked: int
    transactions_checked: int
    mismatched_account_ids: list[AccountId]
    unbalanced_transaction_ids: list[TransactionId]
    # Currencies whose funding entries do not offset what the customers hold in them.
    unbalanced_currencies: list[str]
    # Holds captured more than once, or whose record disagrees with their capture.
    faulty_hold_ids: list[HoldId] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (
            self.mismatched_account_ids
            or self.unbalanced_transaction_ids
            or self.unbalanced_currencies
            or self.faulty_hold_ids
        )


@dataclass(frozen=True, slots=True)
class RecordedHold:
    """The hold a request with an idempotency key placed, and that request's digest."""

    hold: Hold
    request_hash: str


@dataclass(frozen=True, slots=True)
class ExportLine:
    """A statement line with what an export shows of its transaction, in minor units."""

    entry_id: EntryId
    transaction_id: TransactionId
    kind: str
    description: str | None
    amount: int
    balance_after: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class PeriodTotals:
    """What came into and went out of an account over a period, in minor units (both >= 0)."""

    money_in: int
    money_out: int


@dataclass(frozen=True, slots=True)
class Credentials:
    """A user and their stored password hash (None for a user who cannot sign in)."""

    user: User
    password_hash: str | None


class PasswordHasher(Protocol):
    """Slow on purpose, so it runs outside every unit of work: no connection waits on it.

    A process hashes a bounded number of passwords at once: hash() and verify() belong
    inside a turn(), which waits briefly for one and raises HashingBusy if none comes.
    """

    def turn(self) -> AbstractAsyncContextManager[None]: ...
    async def hash(self, password: str) -> str: ...
    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True when the password matches; as slow for a missing hash as for a wrong one."""
        ...


class UserRepository(Protocol):
    async def add(self, *, email: str, role: Role, password_hash: str) -> User:
        """Store a new user; the block ends in DuplicateRequest when the email is taken."""
        ...

    async def get(self, user_id: UserId) -> User | None: ...
    async def get_many(self, user_ids: Sequence[UserId]) -> list[User]: ...
    async def credentials(self, email: str) -> Credentials | None:
        """The user with this (normalised) email and their password hash, if there is one."""
        ...

    async def set_password(self, user_id: UserId, password_hash: str) -> None: ...
    async def lock_password(self, user_id: UserId) -> str | None:
        """The user's password hash, the user locked until the unit of work ends: a
        password change waits for the unit of work, or the unit of work for the change."""
        ...


@dataclass(frozen=True, slots=True)
class NewSession:
    user_id: UserId
    # Only a digest of the refresh token is stored, never the token.
    refresh_token_hash: str
    created_at: datetime
    expires_at: datetime
    user_agent: str | None


class SessionRepository(Protocol):
    """Signed-in sessions and the digests of their refresh tokens, current and retired."""

    async def add(self, new: NewSession) -> Session: ...
    async def rotate(
        self, old_hash: str, new_hash: str, *, now: datetime, expires_at: datetime
    ) -> Session | None:
        """Swap a live session's current refresh token digest for a new one, remembering the
        old one as retired; None when no live session holds `old_hash` as its current one.

        One conditional write: of two rotations of one token at once, at most one matches.
        """
        ...

    async def retired(self, token_hash: str) -> SessionId | None:
        """The session a refresh token digest was retired from, if it was."""
        ...

    async def forget_retired(self, session_id: SessionId, before: datetime) -> None:
        """Delete the session's digests retired before this."""
        ...

    async def end(self, user_id: UserId, session_id: SessionId | None, *, now: datetime) -> int:
        """End one live session of the user (every one when session_id is None); how many ended."""
        ...

    async def end_oldest(self, user_id: UserId, *, keep: int, now: datetime) -> None:
        """End the user's live sessions but the newest `keep`."""
        ...

    async def end_by_id(self, session_id: SessionId, *, now: datetime) -> None:
        """End a session whoever holds it (a refresh token was used twice)."""
        ...

    async def actor(self, user_id: UserId, session_id: SessionId, now: datetime) -> Actor | None:
        """The user of a live session of theirs, in one query; None once it ended or lapsed."""
        ...

    async def get_live(
        self, user_id: UserId, session_id: SessionId, now: datetime
    ) -> Session | None: ...
    async def list_live(self, user_id: UserId, now: datetime, page: PageRequest) -> list[Session]:
        """The user's live sessions newest first, `after` being the last id already seen;
        one more than asked for when there are more."""
        ...

    async def live_ids(self, session_ids: Sequence[SessionId], now: datetime) -> set[SessionId]:
        """Those of these sessions that are still live."""
        ...

    async def prune(self, before: datetime, *, limit: int) -> int:
        """Delete up to `limit` sessions that ended or lapsed before this, with their retired
        digests; how many went."""
        ...


class SignInFailureRepository(Protocol):
    """Failed sign-ins per email address, shared by every server process."""

    async def lock(self, email: str) -> SignInFailures:
        """The address's failures (count 0 when none), locked until the unit of work ends,
        so that concurrent attempts on one address take turns."""
        ...

    async def count_failure(self, email: str, at: datetime) -> None:
        """One more failure, the last one at `at`."""
        ...

    async def clear(self, email: str) -> None: ...
    async def prune(self, last_failed_before: datetime) -> None:
        """Forget every address whose last failure is older than this."""
        ...


class AccountRepository(Protocol):
    """Customer accounts; an id of a funding account is found by none of these lookups."""

    async def add(self, *, owner_id: UserId, name: str, currency: Currency) -> Account: ...
    async def get(self, account_id: AccountId) -> Account | None: ...
    async def get_many(self, account_ids: Sequence[AccountId]) -> list[Account]: ...
    async def lock(self, account_ids: Sequence[AccountId]) -> dict[AccountId, Account]:
        """Fetch and lock these accounts, in ascending id order so that writers never deadlock."""
        ...

    async def funding(self, currency: Currency) -> FundingAccount:
        """The bank's funding account for a currency, created on first use. It is not
        locked: it keeps no balance, so movements in one currency never queue on it."""
        ...

    async def save(self, account: Account) -> None: ...
    async def list_by_owners(
        self, owner_ids: Sequence[UserId], *, status: AccountStatus | None, page: PageRequest
    ) -> dict[UserId, list[Account]]:
        """The same page of each owner's accounts oldest first, all in one query."""
        ...

    async def count_by_owners(
        self, owner_ids: Sequence[UserId], *, status: AccountStatus | None
    ) -> dict[UserId, int]:
        """How many accounts each owner holds (owners without any may be left out)."""
        ...

    async def list(
        self, *, owner_id: UserId | None, status: AccountStatus | None, page: PageRequest
    ) -> list[Account]:
        """Customer accounts oldest first (every owner's when owner_id is None)."""
        ...

    async def count(self, *, owner_id: UserId | None, status: AccountStatus | None) -> int: ...


class TransactionRepository(Protocol):
    async def record(self, new: NewTransaction) -> Transaction: ...
    async def get(self, transaction_id: TransactionId) -> Transaction | None: ...
    async def find_request(self, actor_id: UserId, key: str) -> RecordedRequest | None: ...
    async def get_many(self, transaction_ids: Sequence[TransactionId]) -> list[Transaction]: ...
    async def entries(
        self, account_ids: Sequence[AccountId], page: PageRequest
    ) -> dict[AccountId, list[Entry]]:
        """Each account's entries newest first, `after` being the last entry id already seen;
        the same page of every account at once, so that a list costs one query."""
        ...

    async def newest_entry_ids(self, account_ids: Sequence[AccountId]) -> dict[AccountId, EntryId]:
        """The newest line of each of these accounts that has one, in one query."""
        ...

    async def entries_after(
        self, account_id: AccountId, after: EntryId | None, limit: int
    ) -> list[Entry]:
        """Up to `limit` of the account's lines after `after`, oldest first.

        A customer account's lines must be numbered in commit order (each movement holds
        the account's lock while it writes them), so that resuming after the last line seen
        never skips one that committed later.
        """
        ...

    async def get_entry(self, entry_id: EntryId) -> Entry | None: ...
    async def reversals(
        self, transaction_ids: Sequence[TransactionId]
    ) -> dict[TransactionId, Transaction]:
        """The reversal of each of these transactions that has one."""
        ...

    async def balance_at(self, account_id: AccountId, at: datetime) -> int | None:
        """The balance after the account's last line written before `at`, None before its
        first: one line read through an index, whatever the account's history."""
        ...

    async def period_totals(
        self, account_id: AccountId, start: datetime, end: datetime
    ) -> PeriodTotals:
        """The sums of the positive and (as a positive number) negative lines of [start, end)."""
        ...

    async def period_entries(
        self,
        account_id: AccountId,
        start: datetime,
        end: datetime,
        page: PageRequest,
        *,
        oldest_first: bool = False,
    ) -> list[Entry]:
        """Up to page.first + 1 lines of [start, end), newest first, after the line `after`
        (or oldest first, after it, for an export)."""
        ...

    async def export_lines(
        self,
        account_id: AccountId,
        start: datetime,
        end: datetime,
        after: tuple[datetime, EntryId] | None,
        limit: int,
    ) -> list[ExportLine]:
        """Up to `limit` lines of [start, end) oldest first after the line `after` (its
        moment and id), with their transactions' kinds and descriptions, in one plain query
        that walks the (account_id, created_at, id) index from where the last one stopped."""

    async def entry_accounts(self, entry_ids: Sequence[EntryId]) -> dict[EntryId, AccountId]:
        """The account of each of these lines that exists and is a customer account's, in
        one query."""
        ...

    async def audit(self) -> AuditReport:
        """Check every customer balance against its entries, every transaction's sum, and in
        every currency the funding entries against the customer balances."""
        ...


class HoldRepository(Protocol):
    """Holds; every change to an account's holds is made under that account's lock."""

    async def add(self, new: NewHold) -> Hold: ...
    async def get(self, hold_id: HoldId) -> Hold | None:
        """The hold as committed now (read afresh, never from a cache), with its capture."""
        ...

    async def get_many(self, hold_ids: Sequence[HoldId]) -> list[Hold]: ...
    async def save(self, hold: Hold) -> None: ...
    async def find_request(self, actor_id: UserId, key: str) -> RecordedHold | None: ...
    async def reserved(
        self, account_ids: Sequence[AccountId], now: datetime
    ) -> dict[AccountId, int]:
        """What the pending holds not expired at `now` reserve on each account, in minor
        units (accounts with none may be left out), in one query."""
        ...

    async def list(
        self,
        account_id: AccountId,
        *,
        status: HoldStatus | None,
        page: PageRequest,
        now: datetime,
    ) -> list[Hold]:
        """Up to page.first + 1 of the account's holds newest first, after the hold `after`,
        in the status they have at `now`."""
        ...


class UnitOfWork(Protocol):
    """One database transaction: leaving the block without commit() rolls everything back.

    A failure the use case can act on leaves the block as DuplicateRequest (a concurrent
    request committed the same unique value) or TransientConflict (run it again).
    """

    users: UserRepository
    accounts: AccountRepository
    transactions: TransactionRepository
    sign_in_failures: SignInFailureRepository
    sessions: SessionRepository
    holds: HoldRepository

    async def __aenter__(self) -> Self: ...
    async def __aexit__(self, exc_type: object, exc: object, traceback: object) -> None: ...
    async def commit(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self, *, read_only: bool = False) -> UnitOfWork:
        """A unit of work; a read-only one refuses commit(), and storage may let it run
        beside writers instead of queueing behind them."""
        ...


# Told the accounts that got new lines; None when news may have been missed (a reconnect).
Heard = Callable[[Sequence[AccountId] | None], None]


class EntryNews(Protocol):
    """Announcements of committed statement lines, pushed by the database as they commit."""

    async def listen(self, heard: Heard) -> None:
        """Call heard(account_ids) for each announcement until cancelled, and heard(None)
        each time listening (re)starts, as announcements made meanwhile are lost."""
        ...
