"""Row <-> domain conversion, in one place."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import Row

from domain.holds import Hold, HoldId, HoldStatus
from domain.ledger import Entry, EntryId, Transaction, TransactionId, TransactionKind
from domain.model import Account, AccountId, AccountStatus, Role, Session, SessionId, User, UserId
from domain.money import Currency, Money
from persistence.tables import AccountRow, EntryRow, HoldRow, SessionRow, TransactionRow, UserRow


@cache
def currency(code: str) -> Currency:
    return Currency.of(code)


def utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every stored moment is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _id(value: int | None) -> int:
    if value is None:
        raise ValueError("a stored row has an id")
    return value


def to_user(row: UserRow | Row[Any]) -> User:
    return User(UserId(_id(row.id)), row.email, Role(row.role), utc(row.created_at))


def to_account(row: AccountRow | Row[Any]) -> Account:
    """A customer's account; the repositories never hand a funding account's row here."""
    if row.owner_id is None:
        raise ValueError(f"account {row.id} is not a customer's")
    return Account(
        id=AccountId(_id(row.id)),
        owner_id=UserId(row.owner_id),
        name=row.name,
        balance=Money(row.balance, currency(row.currency)),
        status=AccountStatus(row.status),
        created_at=utc(row.created_at),
    )


def to_transaction(row: TransactionRow | Row[Any]) -> Transaction:
    source, destination = row.source_account_id, row.destination_account_id
    return Transaction(
        id=TransactionId(_id(row.id)),
        kind=TransactionKind(row.kind),
        amount=Money(row.amount, currency(row.currency)),
        source_account_id=AccountId(source) if source is not None else None,
        destination_account_id=AccountId(destination) if destination is not None else None,
        description=row.description,
        actor_id=UserId(row.actor_id),
        created_at=utc(row.created_at),
        hold_id=row.hold_id,
        reverses_id=TransactionId(row.reverses_id) if row.reverses_id is not None else None,
    )


def to_hold(row: HoldRow, transaction_id: int | None) -> Hold:
    unit = currency(row.currency)
    destination = row.destination_account_id
    return Hold(
        id=HoldId(_id(row.id)),
        account_id=AccountId(row.account_id),
        placed_by=UserId(row.placed_by),
        amount=Money(row.amount, unit),
        captured=Money(row.captured, unit),
        recorded_status=HoldStatus(row.status),
        destination_account_id=AccountId(destination) if destination is not None else None,
        description=row.description,
        expires_at=utc(row.expires_at),
        created_at=utc(row.created_at),
        resolved_at=utc(row.resolved_at) if row.resolved_at is not None else None,
        transaction_id=TransactionId(transaction_id) if transaction_id is not None else None,
    )


def to_entry(row: EntryRow | Row[Any], currency_code: str) -> Entry:
    """A customer's statement line; only those carry the balance after them."""
    if row.balance_after is None:
        raise ValueError(f"entry {row.id} is not on a customer's statement")
    unit = currency(currency_code)
    return Entry(
        id=EntryId(_id(row.id)),
        transaction_id=TransactionId(row.transaction_id),
        account_id=AccountId(row.account_id),
        amount=Money(row.amount, unit),
        balance_after=Money(row.balance_after, unit),
        created_at=utc(row.created_at),
    )


def to_session(row: SessionRow) -> Session:
    return Session(
        id=SessionId(_id(row.id)),
        user_id=UserId(row.user_id),
        created_at=utc(row.created_at),
        last_refreshed_at=utc(row.last_refreshed_at) if row.last_refreshed_at else None,
        expires_at=utc(row.expires_at),
        user_agent=row.user_agent,
        ended_at=utc(row.ended_at) if row.ended_at else None,
    )
