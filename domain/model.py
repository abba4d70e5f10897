"""Users, accounts and who may do what with them; every method keeps the account's invariants."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import NewType

from domain.errors import (
    AccountClosed,
    AccountHasPendingHolds,
    AccountNotEmpty,
    CurrencyMismatch,
    InsufficientFunds,
    LedgerInvariantBroken,
)
from domain.money import Currency, Money

UserId = NewType("UserId", int)
AccountId = NewType("AccountId", int)
SessionId = NewType("SessionId", int)


class Role(StrEnum):
    CUSTOMER = "CUSTOMER"
    ADMIN = "ADMIN"


class AccountStatus(StrEnum):
    OPEN = "OPEN"
    CLOSED = "CLOSED"


class AccountKind(StrEnum):
    """What an account row stores: a customer's Account or the bank's FundingAccount."""

    CUSTOMER = "CUSTOMER"
    FUNDING = "FUNDING"


@dataclass(frozen=True, slots=True)
class User:
    id: UserId
    email: str
    role: Role
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Session:
    """One signed-in device or client: live until it ends or its refresh token lapses."""

    id: SessionId
    user_id: UserId
    created_at: datetime
    last_refreshed_at: datetime | None
    # When the refresh token lapses unless traded first; each refresh moves it on.
    expires_at: datetime
    user_agent: str | None
    ended_at: datetime | None = None

    def is_live(self, now: datetime) -> bool:
        return self.ended_at is None and self.expires_at > now


@dataclass(frozen=True, slots=True)
class Actor:
    """Whoever a use case acts for; every service call names one."""

    user_id: UserId
    role: Role

    def can_read(self, account: Account) -> bool:
        return account.owner_id == self.user_id or self.role is Role.ADMIN

    def can_move(self, account: Account) -> bool:
        return account.owner_id == self.user_id

    def can_read_user(self, user_id: UserId) -> bool:
        return user_id == self.user_id or self.role is Role.ADMIN


@dataclass(slots=True)
class Account:
    """A customer's account: a balance that never goes below zero, of which pending holds
    reserve a part; what they leave is the available balance."""

    id: AccountId
    owner_id: UserId
    name: str
    balance: Money
    status: AccountStatus
    created_at: datetime
    # Minor units its pending, unexpired holds reserve, as read under the account's lock by
    # the use cases that need it (see HoldRepository.reserved); 0 where nothing read them.
    reserved: int = 0

    @property
    def available(self) -> Money:
        """The balance less what pending holds reserve: what may leave the account."""
        return Money(self.balance.minor_units - self.reserved, self.currency)

    @property
    def currency(self) -> Currency:
        return self.balance.currency

    def ensure_open(self) -> None:
        if self.status is AccountStatus.CLOSED:
            raise AccountClosed(self.id)

    def ensure_currency(self, received: Currency) -> None:
        if received != self.currency:
            raise CurrencyMismatch(expected=self.currency.code, received=received.code)

    def ensure_covers(self, amount: Money) -> None:
        if self.available < amount:
            raise InsufficientFunds(self.id, available=self.available, requested=amount)

    def apply(self, change: Money) -> Money:
        """Add a signed change to the balance and return the balance after it."""
        self.ensure_open()
        new_balance = self.balance + change
        if new_balance.is_negative:
            raise LedgerInvariantBroken(f"account {self.id} would go below zero")
        if change.is_negative and new_balance.minor_units < self.reserved:
            raise LedgerInvariantBroken(f"account {self.id} would spend money its holds reserve")
        self.balance = new_balance
        return new_balance

    def rename(self, name: str) -> None:
        self.ensure_open()
        self.name = name

    def close(self) -> None:
        self.ensure_open()
        if self.reserved > 0:
            raise AccountHasPendingHolds(self.id)
        if self.balance.minor_units != 0:
            raise AccountNotEmpty(self.id, balance=self.balance)
        self.status = AccountStatus.CLOSED


@dataclass(frozen=True, slots=True)
class FundingAccount:
    """The bank's own side of deposits and withdrawals in one currency; never shown.

    It keeps no balance of its own: what it holds is minus what the customers hold in its
    currency, however large that grows. So no customer can push it to a bound that others
    share, and a movement need not lock it.
    """

    id: AccountId
    currency: Currency
