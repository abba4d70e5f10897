"""Expected failures as GraphQL types (errors as data), mapped from domain errors in one place."""

from __future__ import annotations

import strawberry

from domain import errors
from domain.holds import HoldStatus
from gql.schema.ids import to_global_id
from gql.schema.types import Money


@strawberry.interface(description="Every expected failure of a mutation implements Error.")
class Error:
    message: str = strawberry.field(description="A sentence fit to show to the person.")


@strawberry.type
class ValidationError(Error):
    field: str = strawberry.field(
        description='The input field at fault, such as "amount.currency".'
    )


@strawberry.type
class AccountNotFound(Error):
    account_id: strawberry.ID


@strawberry.type
class AccountClosed(Error):
    account_id: strawberry.ID


@strawberry.type
class AccountNotEmpty(Error):
    account_id: strawberry.ID
    balance: Money


@strawberry.type
class InsufficientFunds(Error):
    account_id: strawberry.ID
    available: Money
    requested: Money


@strawberry.type
class CurrencyMismatch(Error):
    expected: str
    received: str


@strawberry.type
class IdempotencyConflict(Error):
    idempotency_key: str


@strawberry.type
class EmailAlreadyRegistered(Error):
    pass


@strawberry.type
class InvalidCredentials(Error):
    pass


@strawberry.type(
    description=("The refresh token is unknown, used, expired or its session ended: sign in again.")
)
class InvalidRefreshToken(Error):
    pass


@strawberry.type
class SessionNotFound(Error):
    session_id: strawberry.ID


@strawberry.type
class HoldNotFound(Error):
    hold_id: strawberry.ID


@strawberry.type
class HoldNotPending(Error):
    hold_id: strawberry.ID
    status: HoldStatus


@strawberry.type
class CaptureExceedsHold(Error):
    hold_id: strawberry.ID
    pending: Money
    requested: Money


@strawberry.type
class AccountHasPendingHolds(Error):
    account_id: strawberry.ID


@strawberry.type
class TransactionNotFound(Error):
    transaction_id: strawberry.ID


@strawberry.type
class TransactionNotReversible(Error):
    transaction_id: strawberry.ID


def _hold(key: int) -> strawberry.ID:
    return strawberry.ID(to_global_id("Hold", key))


def _transaction(key: int) -> strawberry.ID:
    return strawberry.ID(to_global_id("Transaction", key))


def _account(key: int) -> strawberry.ID:
    return strawberry.ID(to_global_id("Account", key))


class ErrorMapper:
    """Turns a domain error into its GraphQL type, knowing the mutation's field names."""

    def __init__(
        self,
        *,
        amount_field: str = "amount.amount",
        same_account_field: str = "destinationAccountId",
    ):
        self.amount_field = amount_field
        self.same_account_field = same_account_field

    def __call__(self, error: errors.DomainError) -> Error:
        match error:
            case errors.InvalidInput(field=field):
                return ValidationError(message=error.message, field=field)
            case (
                errors.InvalidValue()
                | errors.AmountOutOfRange()
                | errors.MovementOverLimit()
                | errors.BalanceOverLimit()
            ):
                return ValidationError(message=error.message, field=self.amount_field)
            case errors.SameAccountTransfer():
                return ValidationError(message=error.message, field=self.same_account_field)
            case errors.AccountNotFound(account_id=key):
                return AccountNotFound(message=error.message, account_id=_account(key))
            case errors.AccountClosed(account_id=key):
                return AccountClosed(message=error.message, account_id=_account(key))
            case errors.AccountNotEmpty(account_id=key, balance=balance):
                return AccountNotEmpty(
                    message=error.message,
                    account_id=_account(key),
                    balance=Money.from_domain(balance),
                )
            case errors.InsufficientFunds(account_id=key, available=available, requested=requested):
                return InsufficientFunds(
                    message=error.message,
                    account_id=_account(key),
                    available=Money.from_domain(available),
                    requested=Money.from_domain(requested),
                )
            case errors.CurrencyMismatch(expected=expected, received=received):
                return CurrencyMismatch(message=error.message, expected=expected, received=received)
            case errors.IdempotencyConflict(idempotency_key=key):
                return IdempotencyConflict(message=error.message, idempotency_key=key)
            case errors.EmailAlreadyRegistered():
                return EmailAlreadyRegistered(message=error.message)
            case errors.InvalidCredentials():
                return InvalidCredentials(message=error.message)
            case errors.InvalidRefreshToken():
                return InvalidRefreshToken(message=error.message)
            case errors.SessionNotFound(session_id=key):
                return SessionNotFound(
                    message=error.message, session_id=strawberry.ID(to_global_id("Session", key))
                )
            case errors.HoldNotFound(hold_id=key):
                return HoldNotFound(message=error.message, hold_id=_hold(key))
            case errors.HoldNotPending(hold_id=key, status=status):
                return HoldNotPending(
                    message=error.message, hold_id=_hold(key), status=HoldStatus(status)
                )
            case errors.CaptureExceedsHold(hold_id=key, pending=pending, requested=requested):
                return CaptureExceedsHold(
                    message=error.message,
                    hold_id=_hold(key),
                    pending=Money.from_domain(pending),
                    requested=Money.from_domain(requested),
                )
            case errors.AccountHasPendingHolds(account_id=key):
                return AccountHasPendingHolds(message=error.message, account_id=_account(key))
            case errors.TransactionNotFound(transaction_id=key):
                return TransactionNotFound(message=error.message, transaction_id=_transaction(key))
            case errors.TransactionNotReversible(transaction_id=key):
                return TransactionNotReversible(
                    message=error.message, transaction_id=_transaction(key)
                )
        raise error
