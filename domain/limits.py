"""Bounds an operator sets on customer money, the same number of whole units in any currency."""

from __future__ import annotations

from dataclasses import dataclass

from domain.errors import BalanceOverLimit, MovementOverLimit
from domain.model import Account
from domain.money import MAX_MINOR_UNITS, Currency, Money


def _cap(whole_units: int | None, currency: Currency) -> Money:
    """A limit in whole units as minor units of the currency; 64 bits bound every amount."""
    if whole_units is None:
        return Money(MAX_MINOR_UNITS, currency)
    return Money(min(whole_units * 10**currency.minor_digits, MAX_MINOR_UNITS), currency)


@dataclass(frozen=True, slots=True)
class MoneyLimits:
    """The largest single movement and the largest balance a customer account may hold.

    Each counts whole units of whichever currency is moved (1000 is 1000.00 EUR, 1000 JPY or
    1000.000 BHD); None sets no bound of its own, leaving the one of 64 bits of minor units.
    The bank's funding side has no bound: no customer can use up room that others share.
    """

    max_movement: int | None = None
    max_balance: int | None = None

    def __post_init__(self) -> None:
        for bound in (self.max_movement, self.max_balance):
            if bound is not None and bound < 1:
                raise ValueError("a money limit is at least one whole unit")

    def largest_movement(self, currency: Currency) -> Money:
        return _cap(self.max_movement, currency)

    def largest_balance(self, currency: Currency) -> Money:
        return _cap(self.max_balance, currency)

    def check_movement(self, amount: Money) -> None:
        """Refuse an amount larger than one movement may be."""
        limit = self.largest_movement(amount.currency)
        if limit < amount:
            raise MovementOverLimit(limit)

    def check_room(self, account: Account, amount: Money) -> None:
        """Refuse to credit an account beyond the largest balance it may hold."""
        limit = self.largest_balance(account.currency)
        if account.balance.minor_units + amount.minor_units > limit.minor_units:
            raise BalanceOverLimit(account.id, limit)
