"""Opening, renaming and closing accounts, and reading them with their statements."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from domain.errors import AccountNotFound, InvalidInput, InvalidValue
from domain.ledger import Entry, EntryId, Transaction, TransactionId, TransactionKind, move
from domain.limits import MoneyLimits
from domain.model import Account, AccountId, AccountStatus, Actor, Role, UserId
from domain.money import Currency, Money
from domain.ports import ExportLine, Page, PageRequest, UnitOfWork, UnitOfWorkFactory
from domain.services.retry import retrying

T = TypeVar("T")

DEFAULT_LONGEST_STATEMENT_DAYS = 366


def utc_now() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """A moment in UTC, as every stored moment is; one without an offset is taken as UTC."""
    return moment.astimezone(UTC) if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


async def with_reserved(uow: UnitOfWork, now: datetime, *accounts: Account) -> None:
    """Read what the accounts' pending holds reserve at `now` into them. Under the accounts'
    locks this is exact: every change to an account's holds is made under its lock."""
    reserved = await uow.holds.reserved([account.id for account in accounts], now)
    for account in accounts:
        account.reserved = reserved.get(account.id, 0)


async def movable_or_raise(
    uow: UnitOfWork, actor: Actor, account_id: AccountId, now: datetime, *, spends: bool = True
) -> Account:
    """The account locked for change, when the actor may move its money, with what its
    holds reserve at `now` when the change `spends` from it (money coming in needs no look
    at the holds)."""
    account = (await uow.accounts.lock([account_id])).get(account_id)
    if account is None or not actor.can_move(account):
        raise AccountNotFound(account_id)
    if spends:
        await with_reserved(uow, now, account)
    return account


@dataclass(frozen=True, slots=True)
class StatementSummary:
    """An account's movements over [start, end): closing = opening + money_in - money_out."""

    account: Account
    start: datetime
    end: datetime
    opening: Money
    closing: Money
    money_in: Money
    money_out: Money


def _may_list(actor: Actor, owner_id: UserId | None) -> bool:
    return owner_id is None or actor.can_read_user(owner_id)


def _listed_owner(actor: Actor, owner_id: UserId | None) -> UserId | None:
    """Whose accounts to list; None lists every owner's, which only an administrator gets."""
    if owner_id is not None:
        return owner_id
    return None if actor.role is Role.ADMIN else actor.user_id


def _page(items: list[T], page: PageRequest) -> Page[T]:
    return Page(items[: page.first], len(items) > page.first, page.after is not None)


class AccountService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        limits: MoneyLimits | None = None,
        *,
        longest_statement_days: int = DEFAULT_LONGEST_STATEMENT_DAYS,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._uow = uow
        self._limits = limits or MoneyLimits()
        self._longest_statement = timedelta(days=longest_statement_days)
        self._clock = clock

    async def open_account(
        self, *, actor: Actor, name: str, currency: Currency, initial_deposit: Money | None = None
    ) -> Account:
        """Open an account, recording any initial deposit as a DEPOSIT transaction."""
        if initial_deposit is not None and initial_deposit.is_negative:
            raise InvalidValue("An initial deposit cannot be negative.")
        if initial_deposit is not None:
            self._limits.check_movement(initial_deposit)
        return await retrying(lambda: self._open(actor, name, currency, initial_deposit))

    async def _open(
        self, actor: Actor, name: str, currency: Currency, initial_deposit: Money | None
    ) -> Account:
        async with self._uow() as uow:
            account = await uow.accounts.add(owner_id=actor.user_id, name=name, currency=currency)
            if initial_deposit is not None and initial_deposit.is_positive:
                deposit = move(
                    TransactionKind.DEPOSIT,
                    debit=await uow.accounts.funding(currency),
                    credit=account,
                    amount=initial_deposit,
                    actor_id=actor.user_id,
                    description="Initial deposit",
                    idempotency=None,
                    limits=self._limits,
                )
                await uow.transactions.record(deposit)
                await uow.accounts.save(account)
            await uow.commit()
            return account

    async def rename_account(self, *, actor: Actor, account_id: AccountId, name: str) -> Account:
        """Give an open account a new name."""
        return await retrying(lambda: self._change(actor, account_id, lambda a: a.rename(name)))

    async def close_account(self, *, actor: Actor, account_id: AccountId) -> Account:
        """Close an open account whose balance is zero; it then takes no movement."""
        return await retrying(lambda: self._change(actor, account_id, Account.close))

    async def _change(
        self, actor: Actor, account_id: AccountId, change: Callable[[Account], None]
    ) -> Account:
        async with self._uow() as uow:
            account = await movable_or_raise(uow, actor, account_id, self._clock())
            change(account)
            await uow.accounts.save(account)
            await uow.commit()
            return account

    async def account(self, *, actor: Actor, account_id: AccountId) -> Account | None:
        """The account, or None when it does not exist or the actor may not see it."""
        async with self._uow(read_only=True) as uow:
            account = await uow.accounts.get(account_id)
        return account if account is not None and actor.can_read(account) else None

    async def accounts(
        self,
        *,
        actor: Actor,
        status: AccountStatus | None,
        page: PageRequest,
        owner_id: UserId | None = None,
    ) -> Page[Account]:
        """One owner's accounts oldest first, with how many there are in all; without an
        owner, the actor's (an administrator's: everyone's)."""
        if not _may_list(actor, owner_id):
            return Page([], has_next=False, has_previous=False, total=0)
        owner = _listed_owner(actor, owner_id)
        async with self._uow(read_only=True) as uow:
            items = await uow.accounts.list(owner_id=owner, status=status, page=page)
            total = await uow.accounts.count(owner_id=owner, status=status)
        return replace(_page(items, page), total=total)

    async def accounts_of_owners(
        self,
        *,
        actor: Actor,
        owner_ids: Sequence[UserId],
        status: AccountStatus | None,
        page: PageRequest,
    ) -> dict[UserId, Page[Account]]:
        """The same page of several owners' accounts oldest first, with their totals, in two
        queries; an owner whose accounts the actor may not list gets an empty page."""
        listed = [owner for owner in owner_ids if _may_list(actor, owner)]
        items: dict[UserId, list[Account]] = {}
        totals: dict[UserId, int] = {}
        if listed:
            async with self._uow(read_only=True) as uow:
                items = await uow.accounts.list_by_owners(listed, status=status, page=page)
                totals = await uow.accounts.count_by_owners(listed, status=status)
        return {
            owner: replace(_page(items.get(owner, []), page), total=totals.get(owner, 0))
            for owner in owner_ids
        }

    async def statements(
        self, *, actor: Actor, account_ids: Sequence[AccountId], page: PageRequest
    ) -> dict[AccountId, Page[Entry]]:
        """The same page of several accounts' statements, newest first, in two queries; an
        account the actor may not see gets an empty page."""
        async with self._uow(read_only=True) as uow:
            accounts = await uow.accounts.get_many(account_ids)
            readable = [account.id for account in accounts if actor.can_read(account)]
            entries = await uow.transactions.entries(readable, page)
        return {key: _page(entries.get(key, []), page) for key in account_ids}

    async def statement(
        self, *, actor: Actor, account_id: AccountId, page: PageRequest
    ) -> Page[Entry]:
        """One account's statement page, newest first."""
        return (await self.statements(actor=actor, account_ids=[account_id], page=page))[account_id]

    async def entry(self, *, actor: Actor, entry_id: EntryId) -> Entry | None:
        """A statement line, or None when the actor may not see its account."""
        async with self._uow(read_only=True) as uow:
            entry = await uow.transactions.get_entry(entry_id)
            account = await uow.accounts.get(entry.account_id) if entry else None
        return entry if account is not None and actor.can_read(account) else None

    async def transactions(
        self, *, actor: Actor, transaction_ids: Sequence[TransactionId]
    ) -> dict[TransactionId, Transaction]:
        """The transactions the actor may see (those touching an account they may read)."""
        async with self._uow(read_only=True) as uow:
            found = await uow.transactions.get_many(transaction_ids)
            touched = {
                key
                for transaction in found
                for key in (transaction.source_account_id, transaction.destination_account_id)
                if key is not None
            }
            readable = {
                account.id
                for account in await uow.accounts.get_many(list(touched))
                if actor.can_read(account)
            }
        return {
            transaction.id: transaction
            for transaction in found
            if {transaction.source_account_id, transaction.destination_account_id} & readable
        }

    async def transaction(
        self, *, actor: Actor, transaction_id: TransactionId
    ) -> Transaction | None:
        """A transaction, or None unless the actor may see an account it touched."""
        found = await self.transactions(actor=actor, transaction_ids=[transaction_id])
        return found.get(transaction_id)

    async def reversals(
        self, *, actor: Actor, transaction_ids: Sequence[TransactionId]
    ) -> dict[TransactionId, Transaction]:
        """The reversal of each of these transactions that has one and the actor may see."""
        async with self._uow(read_only=True) as uow:
            found = await uow.transactions.reversals(transaction_ids)
        visible = await self.transactions(
            actor=actor, transaction_ids=[t.id for t in found.values()]
        )
        return {key: t for key, t in found.items() if t.id in visible}

    async def balances_at(
        self, *, actor: Actor, account_ids: Sequence[AccountId], at: datetime
    ) -> dict[AccountId, Money]:
        """Each readable account's balance right after its last line before `at` (zero
        before its first): one indexed line read per account."""
        at = as_utc(at)
        async with self._uow(read_only=True) as uow:
            accounts = await uow.accounts.get_many(account_ids)
            found: dict[AccountId, Money] = {}
            for account in accounts:
                if actor.can_read(account):
                    units = await uow.transactions.balance_at(account.id, at)
                    found[account.id] = Money(units or 0, account.currency)
        return found

    def check_period(self, start: datetime, end: datetime) -> None:
        """A period runs forward, and no longer than the longest statement."""
        if end < start:
            raise InvalidInput("to", "`to` must not be before `from`.")
        if end - start > self._longest_statement:
            days = self._longest_statement.days
            raise InvalidInput("to", f"A statement covers at most {days} days.")

    async def statement_summary(
        self, *, actor: Actor, account_id: AccountId, start: datetime, end: datetime
    ) -> StatementSummary | None:
        """The balances around [start, end) and the money in and out of it; None when the
        actor may not read the account. Three indexed reads, however long its history."""
        start, end = as_utc(start), as_utc(end)
        self.check_period(start, end)
        async with self._uow(read_only=True) as uow:
            account = await uow.accounts.get(account_id)
            if account is None or not actor.can_read(account):
                return None
            opening = await uow.transactions.balance_at(account_id, start)
            closing = await uow.transactions.balance_at(account_id, end)
            totals = await uow.transactions.period_totals(account_id, start, end)
        unit = account.currency
        return StatementSummary(
            account=account,
            start=start,
            end=end,
            opening=Money(opening or 0, unit),
            closing=Money(closing or 0, unit),
            money_in=Money(totals.money_in, unit),
            money_out=Money(totals.money_out, unit),
        )

    async def period_entries(
        self,
        *,
        actor: Actor,
        account_id: AccountId,
        start: datetime,
        end: datetime,
        page: PageRequest,
    ) -> Page[Entry]:
        """A page of the lines of [start, end), newest first; empty for an unreadable account."""
        start, end = as_utc(start), as_utc(end)
        self.check_period(start, end)
        async with self._uow(read_only=True) as uow:
            account = await uow.accounts.get(account_id)
            if account is None or not actor.can_read(account):
                return Page([], has_next=False, has_previous=False)
            items = await uow.transactions.period_entries(account_id, start, end, page)
        return _page(items, page)

    async def export_lines(
        self, *, account_id: AccountId, start: datetime, end: datetime, batch: int = 2000
    ) -> AsyncGenerator[list[ExportLine], None]:
        """The lines of [start, end) oldest first, a batch at a time: memory stays flat
        however many lines there are. The caller has checked, with statement_summary, that
        the actor may read the account."""
        start, end = as_utc(start), as_utc(end)
        after: tuple[datetime, EntryId] | None = None
        while True:
            async with self._uow(read_only=True) as uow:
                found = await uow.transactions.export_lines(account_id, start, end, after, batch)
            if not found:
                return
            yield found
            if len(found) < batch:
                return
            after = (found[-1].created_at, found[-1].entry_id)
