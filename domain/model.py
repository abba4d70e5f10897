"""Users, accounts and who may do what with them; every method keeps the account's invariants."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import NewType

from domain.errors import (
    AccountClosed,
    AccountNotEmpty,
    CurrencyMismatch,
    InsufficientFunds,
    LedgerInvariantBroken,
)
from domain.money import Currency, Money

UserId = NewType("UserId", int)
AccountId = NewType("AccountId", int)


class Role(StrEnum):
    CUSTOMER = "CUSTOMER"
    ADMIN = "ADMIN"


class AccountStatus(StrEnum):
    OPEN = "OPEN"
    CLOSED = "CLOSED"


class AccountKind(StrEnum):
    CUSTOMER = "CUSTOMER"
    # The bank's own counterpart of deposits and withdrawals, one per currency; never shown.
    FUNDING = "FUNDING"


@dataclass(frozen=True, slots=True)
class User:
    id: UserId
    email: str
    role: Role
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Actor:
    """Whoever a use case acts for; every service call names one."""

    user_id: UserId
    role: Role

    def can_read(self, account: Account) -> bool:
        return account.is_customer and (account.owner_id == self.user_id or self.role is Role.ADMIN)

    def can_move(self, account: Account) -> bool:
        return account.is_customer and account.owner_id == self.user_id

    def can_read_user(self, user_id: UserId) -> bool:
        return user_id == self.user_id or self.role is Role.ADMIN


@dataclass(slots=True)
class Account:
    id: AccountId
    owner_id: UserId | None
    kind: AccountKind
    name: str
    balance: Money
    status: AccountStatus
    created_at: datetime

    @property
    def currency(self) -> Currency:
        return self.balance.currency

    @property
    def is_customer(self) -> bool:
        return self.kind is AccountKind.CUSTOMER

    def ensure_open(self) -> None:
        if self.status is AccountStatus.CLOSED:
            raise AccountClosed(self.id)

    def ensure_currency(self, received: Currency) -> None:
        if received != self.currency:
            raise CurrencyMismatch(expected=self.currency.code, received=received.code)

    def ensure_covers(self, amount: Money) -> None:
        """A customer account never goes below zero; the bank's funding account may."""
        if self.is_customer and self.balance < amount:
            raise InsufficientFunds(self.id, available=self.balance, requested=amount)

    def apply(self, change: Money) -> Money:
        """Add a signed change to the balance and return the balance after it."""
        self.ensure_open()
        new_balance = self.balance + change
        if self.is_customer and new_balance.is_negative:
            raise LedgerInvariantBroken(f"account {self.id} would go below zero")
        self.balance = new_balance
        return new_balance

    def rename(self, name: str) -> None:
        self.ensure_open()
        self.name = name

    def close(self) -> None:
        self.ensure_open()
        if self.balance.minor_units != 0:
            raise AccountNotEmpty(self.id, balance=self.balance)
        self.status = AccountStatus.CLOSED
