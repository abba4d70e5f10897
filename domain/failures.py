"""The failures money itself refuses with, and the base of every expected failure.

They live apart from domain.errors, whose failures carry Money, so that money.py and
errors.py do not import each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class DomainError(Exception):
    """An expected failure: the request was refused and nothing changed."""

    message: str = field(init=False, default="The request was refused.")

    def __str__(self) -> str:
        return self.message


@dataclass
class InvalidValue(DomainError):
    """A value that breaks a rule of its own (an amount, a name, a currency code...)."""

    reason: str

    def __post_init__(self) -> None:
        self.message = self.reason


@dataclass
class AmountOutOfRange(DomainError):
    """An amount, or the balance it would lead to, does not fit 64 bits of minor units."""

    def __post_init__(self) -> None:
        self.message = "The amount is too large."


@dataclass
class CurrencyMismatch(DomainError):
    expected: str
    received: str

    def __post_init__(self) -> None:
        self.message = f"Expected an amount in {self.expected}, received {self.received}."
