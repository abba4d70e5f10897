"""GraphQL input types and their translation into validated domain values."""

from __future__ import annotations

import strawberry

from domain import values
from domain.errors import InvalidValue
from domain.holds import HoldId
from domain.model import AccountId
from domain.money import Currency, Money
from domain.values import at
from gql.schema.ids import MalformedId, key_of
from gql.schema.scalars import DecimalText


def _account_key(global_id: str) -> AccountId:
    try:
        return AccountId(key_of(global_id, "Account"))
    except MalformedId:
        raise InvalidValue("This is not an account ID issued by this server.") from None


def account_id(field: str, global_id: strawberry.ID) -> AccountId:
    return at(field, _account_key, global_id)


def money(field: str, amount: MoneyInput) -> Money:
    """An amount in its own currency; errors name "<field>.amount" or "<field>.currency"."""
    currency = at(f"{field}.currency", Currency.of, amount.currency)
    return at(f"{field}.amount", Money.parse, amount.amount, currency)


@strawberry.input
class MoneyInput:
    amount: DecimalText = strawberry.field(
        description="Positive, with no more decimal places than the currency has."
    )
    currency: str


@strawberry.input
class RegisterInput:
    email: str
    password: str


@strawberry.input
class LoginInput:
    email: str
    password: str


@strawberry.input
class RefreshSessionInput:
    refresh_token: str


@strawberry.input
class SignOutInput:
    everywhere: bool | None = strawberry.field(
        default=None, description="End every session of the viewer, not only the current one."
    )


@strawberry.input
class EndSessionInput:
    session_id: strawberry.ID


@strawberry.input
class ChangePasswordInput:
    current_password: str
    new_password: str


@strawberry.input
class OpenAccountInput:
    name: str
    currency: str
    initial_deposit: DecimalText | None = strawberry.field(
        default=None,
        description="Money put in when the account opens; zero when left out, never negative.",
    )


@strawberry.input
class RenameAccountInput:
    account_id: strawberry.ID
    name: str


@strawberry.input
class CloseAccountInput:
    account_id: strawberry.ID


@strawberry.input
class DepositInput:
    account_id: strawberry.ID
    amount: MoneyInput
    description: str | None = None
    idempotency_key: str | None = strawberry.field(
        default=None,
        description="The same key sent again by the same user returns the first result and "
        "moves no money.",
    )


@strawberry.input
class WithdrawInput:
    account_id: strawberry.ID
    amount: MoneyInput
    description: str | None = None
    idempotency_key: str | None = None


@strawberry.input
class TransferInput:
    source_account_id: strawberry.ID
    destination_account_id: strawberry.ID
    amount: MoneyInput
    description: str | None = None
    idempotency_key: str | None = None


@strawberry.input
class PlaceHoldInput:
    account_id: strawberry.ID
    amount: MoneyInput
    destination_account_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="Where a capture will move the money; out of the bank when left out.",
    )
    expires_in_seconds: int | None = strawberry.field(
        default=None,
        description="Seconds until the hold expires; the server's default (7 days) when left out.",
    )
    description: str | None = None
    idempotency_key: str | None = None


@strawberry.input
class CaptureHoldInput:
    hold_id: strawberry.ID
    amount: MoneyInput | None = strawberry.field(
        default=None,
        description="At most the pending amount; all of it when left out. The rest is released.",
    )
    idempotency_key: str | None = None


@strawberry.input
class VoidHoldInput:
    hold_id: strawberry.ID


@strawberry.input
class ReverseTransactionInput:
    transaction_id: strawberry.ID
    description: str | None = None
    idempotency_key: str | None = None


def _hold_key(global_id: str) -> HoldId:
    try:
        return HoldId(key_of(global_id, "Hold"))
    except MalformedId:
        raise InvalidValue("This is not a hold ID issued by this server.") from None


def hold_id(field: str, global_id: strawberry.ID) -> HoldId:
    return at(field, _hold_key, global_id)


def description(text: str | None) -> str | None:
    return at("description", values.description, text)


def idempotency_key(text: str | None) -> str | None:
    return at("idempotencyKey", values.idempotency_key, text)
