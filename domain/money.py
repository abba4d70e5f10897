"""Exact money: integer minor units of one ISO 4217 currency, parsed from and shown as decimals."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Self

from iso4217 import Currency as Iso4217

from domain.failures import AmountOutOfRange, CurrencyMismatch, InvalidValue

MAX_MINOR_UNITS = 2**63 - 1
MIN_MINOR_UNITS = -(2**63)
_PLAIN_DECIMAL = re.compile(r"-?([0-9]+)(?:\.([0-9]+))?")
_CURRENCY_CODE = re.compile(r"[A-Za-z]{3}")
# Longer than any int64 count of minor units can be written; refused before any arithmetic.
_MAX_AMOUNT_TEXT = 40


@dataclass(frozen=True, slots=True)
class Currency:
    """An ISO 4217 currency with a fixed number of minor digits (EUR: 2, JPY: 0, BHD: 3)."""

    code: str
    minor_digits: int

    @classmethod
    def of(cls, code: str) -> Self:
        """The currency for an alphabetic code in any case; InvalidValue for anything else."""
        if not _CURRENCY_CODE.fullmatch(code):
            raise InvalidValue("A currency is a three-letter ISO 4217 code such as EUR.")
        try:
            entry = Iso4217(code.upper())
        except ValueError:
            raise InvalidValue(f"{code.upper()} is not an ISO 4217 currency.") from None
        if entry.exponent is None:
            raise InvalidValue(f"{code.upper()} is not a currency that accounts can hold.")
        return cls(entry.code, int(entry.exponent))

    def __str__(self) -> str:
        return self.code


def _checked(minor_units: int) -> int:
    if not MIN_MINOR_UNITS <= minor_units <= MAX_MINOR_UNITS:
        raise AmountOutOfRange()
    return minor_units


@dataclass(frozen=True, slots=True)
class Money:
    """A signed amount of one currency, exact to its smallest unit."""

    minor_units: int
    currency: Currency

    def __post_init__(self) -> None:
        if isinstance(self.minor_units, bool) or not isinstance(self.minor_units, int):
            raise TypeError("Money counts minor units with an int")
        _checked(self.minor_units)

    @classmethod
    def zero(cls, currency: Currency) -> Self:
        return cls(0, currency)

    @classmethod
    def parse(cls, text: str, currency: Currency) -> Self:
        """Read a plain decimal such as "12.5"; no exponent, sign or excess precision."""
        match = _PLAIN_DECIMAL.fullmatch(text) if len(text) <= _MAX_AMOUNT_TEXT else None
        if match is None:
            if len(text) > _MAX_AMOUNT_TEXT and _PLAIN_DECIMAL.fullmatch(text):
                raise AmountOutOfRange()
            raise InvalidValue('An amount is a plain decimal number such as "12.50".')
        whole, fraction = match.group(1), match.group(2) or ""
        if len(fraction) > currency.minor_digits:
            raise InvalidValue(
                f"{currency} amounts have at most {currency.minor_digits} decimal places."
            )
        scale = 10**currency.minor_digits
        magnitude = int(whole) * scale + int(fraction.ljust(currency.minor_digits, "0") or "0")
        return cls(_checked(-magnitude if text.startswith("-") else magnitude), currency)

    def to_decimal_string(self) -> str:
        """The amount in major units with exactly the currency's minor digits: "-12.50"."""
        digits = self.currency.minor_digits
        sign = "-" if self.minor_units < 0 else ""
        whole, fraction = divmod(abs(self.minor_units), 10**digits)
        return f"{sign}{whole}.{fraction:0{digits}d}" if digits else f"{sign}{whole}"

    def _same_currency(self, other: Money) -> None:
        if other.currency != self.currency:
            raise CurrencyMismatch(expected=self.currency.code, received=other.currency.code)

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(_checked(self.minor_units + other.minor_units), self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(_checked(self.minor_units - other.minor_units), self.currency)

    def __neg__(self) -> Money:
        return Money(_checked(-self.minor_units), self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same_currency(other)
        return self.minor_units < other.minor_units

    @property
    def is_positive(self) -> bool:
        return self.minor_units > 0

    @property
    def is_negative(self) -> bool:
        return self.minor_units < 0

    def __str__(self) -> str:
        return f"{self.to_decimal_string()} {self.currency}"
