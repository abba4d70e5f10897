"""Double-entry bookkeeping: a movement is a transaction whose entries sum to zero."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import NewType

from domain.errors import InvalidValue, LedgerInvariantBroken, TransactionNotReversible
from domain.limits import MoneyLimits
from domain.model import Account, AccountId, FundingAccount, UserId
from domain.money import Money

TransactionId = NewType("TransactionId", int)
EntryId = NewType("EntryId", int)


class TransactionKind(StrEnum):
    DEPOSIT = "DEPOSIT"
    WITHDRAWAL = "WITHDRAWAL"
    TRANSFER = "TRANSFER"
    # Undoes an earlier transaction by moving the same amount back.
    REVERSAL = "REVERSAL"


@dataclass(frozen=True, slots=True)
class Idempotency:
    """A client's key for one request, and a digest of that request to tell retries apart."""

    key: str
    request_hash: str


# One side of a movement: a customer's account, or the bank's funding account.
Side = Account | FundingAccount


@dataclass(frozen=True, slots=True)
class NewEntry:
    account_id: AccountId
    amount: Money
    # None on the funding side, which keeps no running balance.
    balance_after: Money | None


@dataclass(frozen=True, slots=True)
class NewTransaction:
    """A transaction ready to be recorded; it cannot be built unbalanced."""

    kind: TransactionKind
    amount: Money
    source_account_id: AccountId | None
    destination_account_id: AccountId | None
    description: str | None
    actor_id: UserId
    idempotency: Idempotency | None
    entries: tuple[NewEntry, ...]
    # The hold this transaction captures, and the transaction a REVERSAL undoes.
    hold_id: int | None = None
    reverses_id: TransactionId | None = None

    def __post_init__(self) -> None:
        if not self.amount.is_positive:
            raise LedgerInvariantBroken("a transaction moves a positive amount")
        if len(self.entries) < 2:
            raise LedgerInvariantBroken("a transaction has at least two entries")
        if any(entry.amount.currency != self.amount.currency for entry in self.entries):
            raise LedgerInvariantBroken("a transaction's entries share its currency")
        if sum(entry.amount.minor_units for entry in self.entries) != 0:
            raise LedgerInvariantBroken("a transaction's entries sum to zero")
        if (self.kind is TransactionKind.REVERSAL) != (self.reverses_id is not None):
            raise LedgerInvariantBroken("a reversal, and only a reversal, names what it undoes")


@dataclass(frozen=True, slots=True)
class Transaction:
    id: TransactionId
    kind: TransactionKind
    amount: Money
    source_account_id: AccountId | None
    destination_account_id: AccountId | None
    description: str | None
    actor_id: UserId
    created_at: datetime
    hold_id: int | None = None
    reverses_id: TransactionId | None = None


@dataclass(frozen=True, slots=True)
class Entry:
    """One line of a customer account's statement: a signed amount and the balance after it."""

    id: EntryId
    transaction_id: TransactionId
    account_id: AccountId
    amount: Money
    balance_after: Money
    created_at: datetime


def positive_amount(amount: Money) -> Money:
    if not amount.is_positive:
        raise InvalidValue("The amount must be greater than zero.")
    return amount


def check_payer(account: Account, amount: Money) -> None:
    """Refuse what the paying account alone decides: closed, then currency, then funds. A
    transfer checks this before anything about the account it pays, whose refusals must not
    tell one customer anything about another's account."""
    account.ensure_open()
    account.ensure_currency(amount.currency)
    account.ensure_covers(amount)


def check_movement(
    debit: Side, credit: Side, amount: Money, primary: Account, limits: MoneyLimits
) -> None:
    """Refuse a movement in the documented order: closed, then currency, then funds, then
    the room left in the receiving account."""
    for side in (primary, debit, credit):
        if isinstance(side, Account):
            side.ensure_open()
    primary.ensure_currency(amount.currency)
    for side in (debit, credit):
        primary.ensure_currency(side.currency)
    if isinstance(debit, Account):
        debit.ensure_covers(amount)
    if isinstance(credit, Account):
        limits.check_room(credit, amount)


def _entry(side: Side, change: Money) -> NewEntry:
    after = side.balance + change if isinstance(side, Account) else None
    return NewEntry(side.id, change, after)


def move(
    kind: TransactionKind,
    *,
    debit: Side,
    credit: Side,
    amount: Money,
    actor_id: UserId,
    description: str | None,
    idempotency: Idempotency | None,
    limits: MoneyLimits,
    hold_id: int | None = None,
) -> NewTransaction:
    """Move an amount from one side to the other, updating the customer balances it changes,
    or move nothing."""
    primary = credit if kind is TransactionKind.DEPOSIT else debit
    if not isinstance(primary, Account):
        raise LedgerInvariantBroken(f"a {kind} moves money of a customer's account")
    check_movement(debit, credit, amount, primary, limits)
    # Both entries are computed before either account changes: a failure changes nothing.
    entries = (_entry(debit, -amount), _entry(credit, amount))
    for side, change in ((debit, -amount), (credit, amount)):
        if isinstance(side, Account):
            side.apply(change)
    return NewTransaction(
        kind=kind,
        amount=amount,
        source_account_id=debit.id if isinstance(debit, Account) else None,
        destination_account_id=credit.id if isinstance(credit, Account) else None,
        description=description,
        actor_id=actor_id,
        idempotency=idempotency,
        entries=entries,
        hold_id=hold_id,
    )


def reverse(
    original: Transaction,
    *,
    debit: Side,
    credit: Side,
    actor_id: UserId,
    description: str | None,
    idempotency: Idempotency | None,
) -> NewTransaction:
    """Undo a transaction with a new one that moves the same amount the other way: `debit`
    is the side the original credited, `credit` the side it debited. Money that comes back
    out of a customer's account must be available there; a closed account refuses."""
    if original.kind is TransactionKind.REVERSAL:
        raise TransactionNotReversible(original.id)
    expected = (original.destination_account_id, original.source_account_id)
    found = tuple(side.id if isinstance(side, Account) else None for side in (debit, credit))
    if found != expected:
        raise LedgerInvariantBroken("a reversal swaps the sides of what it undoes")
    amount = original.amount
    for side in (debit, credit):
        if isinstance(side, Account):
            side.ensure_open()
    if isinstance(debit, Account):
        debit.ensure_covers(amount)
    entries = (_entry(debit, -amount), _entry(credit, amount))
    for side, change in ((debit, -amount), (credit, amount)):
        if isinstance(side, Account):
            side.apply(change)
    return NewTransaction(
        kind=TransactionKind.REVERSAL,
        amount=amount,
        source_account_id=original.destination_account_id,
        destination_account_id=original.source_account_id,
        description=description,
        actor_id=actor_id,
        idempotency=idempotency,
        entries=entries,
        reverses_id=original.id,
    )


def request_hash(kind: str, **fields: object) -> str:
    """A stable digest of a movement request, to tell a retry from a different request."""
    canonical = json.dumps({"kind": str(kind), **fields}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()
