"""Holds: money reserved on an account until it is captured, voided or expires.

A hold lowers the account's available balance, not its balance. It resolves once: a
capture moves up to its amount (the rest is released), a void releases it all, and from
its expiry on a pending hold is EXPIRED to every read and every check, whether or not
anything has recorded that yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import NewType

from domain.errors import CaptureExceedsHold, HoldNotPending, InvalidInput
from domain.ledger import Idempotency, TransactionId
from domain.model import AccountId, UserId
from domain.money import Money

HoldId = NewType("HoldId", int)

DEFAULT_HOLD_SECONDS = 7 * 24 * 3600


class HoldStatus(StrEnum):
    PENDING = "PENDING"
    CAPTURED = "CAPTURED"
    VOIDED = "VOIDED"
    EXPIRED = "EXPIRED"


def hold_lifetime(seconds: int | None, longest_s: int) -> timedelta:
    """How long a new hold lasts: the default when not given, from one second to the longest."""
    if seconds is None:
        return timedelta(seconds=min(DEFAULT_HOLD_SECONDS, longest_s))
    if not 1 <= seconds <= longest_s:
        raise InvalidInput("expiresInSeconds", f"A hold lasts from 1 to {longest_s} seconds.")
    return timedelta(seconds=seconds)


@dataclass(frozen=True, slots=True)
class NewHold:
    account_id: AccountId
    placed_by: UserId
    amount: Money
    destination_account_id: AccountId | None
    description: str | None
    expires_at: datetime
    idempotency: Idempotency | None


@dataclass(slots=True)
class Hold:
    id: HoldId
    account_id: AccountId
    placed_by: UserId
    amount: Money
    captured: Money
    # As stored: PENDING until something resolves it; status_at() tells what it is now.
    recorded_status: HoldStatus
    destination_account_id: AccountId | None
    description: str | None
    expires_at: datetime
    created_at: datetime
    resolved_at: datetime | None
    # The capture's transaction, once captured.
    transaction_id: TransactionId | None = None

    def status_at(self, now: datetime) -> HoldStatus:
        """PENDING becomes EXPIRED at expires_at, for every reader, with no job to record it."""
        if self.recorded_status is HoldStatus.PENDING and now >= self.expires_at:
            return HoldStatus.EXPIRED
        return self.recorded_status

    def pending_at(self, now: datetime) -> Money:
        """What it still reserves: all of it while pending, nothing once resolved."""
        if self.status_at(now) is HoldStatus.PENDING:
            return self.amount
        return Money.zero(self.amount.currency)

    def resolved_at_as_of(self, now: datetime) -> datetime | None:
        if self.status_at(now) is HoldStatus.EXPIRED and self.resolved_at is None:
            return self.expires_at
        return self.resolved_at

    def ensure_pending(self, now: datetime) -> None:
        status = self.status_at(now)
        if status is not HoldStatus.PENDING:
            raise HoldNotPending(self.id, status.value)

    def capture(self, amount: Money | None, now: datetime) -> Money:
        """Resolve it as captured, moving `amount` (all of it when None); returns the amount."""
        self.ensure_pending(now)
        taken = self.amount if amount is None else amount
        if self.amount < taken:
            raise CaptureExceedsHold(self.id, pending=self.amount, requested=taken)
        self.recorded_status = HoldStatus.CAPTURED
        self.captured = taken
        self.resolved_at = now
        return taken

    def void(self, now: datetime) -> None:
        self.ensure_pending(now)
        self.recorded_status = HoldStatus.VOIDED
        self.resolved_at = now
