"""Expected failures of the use cases, each carrying the data a client needs to act on it."""

from __future__ import annotations

from dataclasses import dataclass

# The base and money's own failures, named here too: every failure is found in this module.
from domain.failures import AmountOutOfRange as AmountOutOfRange
from domain.failures import CurrencyMismatch as CurrencyMismatch
from domain.failures import DomainError as DomainError
from domain.failures import InvalidValue as InvalidValue
from domain.money import Money


@dataclass
class InvalidInput(DomainError):
    """An input field, named by its dotted path inside the request, that cannot be accepted."""

    field: str
    reason: str

    def __post_init__(self) -> None:
        self.message = self.reason


@dataclass
class MovementOverLimit(DomainError):
    """A single movement larger than the bank lets one movement be."""

    limit: Money

    def __post_init__(self) -> None:
        self.message = f"A single movement is at most {self.limit}."


@dataclass
class BalanceOverLimit(DomainError):
    """A movement that would take the receiving account above the largest balance it may hold."""

    account_id: int
    limit: Money

    def __post_init__(self) -> None:
        self.message = f"An account holds at most {self.limit}; this would take it above that."


@dataclass
class SameAccountTransfer(DomainError):
    def __post_init__(self) -> None:
        self.message = "The destination must be another account than the source."


@dataclass
class AccountNotFound(DomainError):
    account_id: int

    def __post_init__(self) -> None:
        self.message = "No such account."


@dataclass
class AccountClosed(DomainError):
    account_id: int

    def __post_init__(self) -> None:
        self.message = "The account is closed."


@dataclass
class AccountNotEmpty(DomainError):
    account_id: int
    balance: Money

    def __post_init__(self) -> None:
        self.message = f"The account still holds {self.balance}; only an empty one can be closed."


@dataclass
class InsufficientFunds(DomainError):
    account_id: int
    available: Money
    requested: Money

    def __post_init__(self) -> None:
        self.message = f"The account has {self.available} available, less than {self.requested}."


@dataclass
class IdempotencyConflict(DomainError):
    idempotency_key: str

    def __post_init__(self) -> None:
        self.message = "This idempotency key was already used for a different request."


@dataclass
class EmailAlreadyRegistered(DomainError):
    def __post_init__(self) -> None:
        self.message = "An account with this email address already exists."


@dataclass
class InvalidCredentials(DomainError):
    def __post_init__(self) -> None:
        self.message = "The email address or the password is wrong."


@dataclass
class InvalidRefreshToken(DomainError):
    """Unknown, already used, expired, or its session ended: the client must sign in again."""

    def __post_init__(self) -> None:
        self.message = "This refresh token is no longer valid: sign in again."


@dataclass
class SessionNotFound(DomainError):
    """None of the viewer's live sessions has this id (another user's is not told apart)."""

    session_id: int

    def __post_init__(self) -> None:
        self.message = "No such session."


@dataclass
class NotSignedIn(DomainError):
    def __post_init__(self) -> None:
        self.message = "Sign in to do this."


@dataclass
class Forbidden(DomainError):
    def __post_init__(self) -> None:
        self.message = "Only an administrator may do this."


class LedgerInvariantBroken(Exception):
    """A bug, not a user error: the ledger refused to record something inconsistent."""


class DuplicateRequest(Exception):
    """A concurrent request committed the same unique value first (an idempotency key, an email)."""


class TransientConflict(Exception):
    """The database gave up on a transaction to keep concurrent ones correct (a deadlock or a
    serialization failure, or a lock not had in time); running the use case again may succeed."""


class StoreUnavailable(Exception):
    """The store could not be reached, or lost its server mid-way (a primary that stopped,
    or one that now takes no writes): the work was not confirmed. A loss during the commit
    leaves it unknown whether the commit happened, so the use case is not run again here;
    the client sends it again, with the same idempotency key for a movement."""


@dataclass
class TryLater(DomainError):
    """Refused for now, not for good: the same request may succeed after retry_after_s."""

    retry_after_s: float


@dataclass
class SignInThrottled(TryLater):
    """Too many recent failed sign-ins for this email address: the next one must wait."""

    def __post_init__(self) -> None:
        self.message = "Too many failed sign-ins for this email address: wait, then try again."


@dataclass
class HashingBusy(TryLater):
    """Every password check this process may run at once is taken."""

    def __post_init__(self) -> None:
        self.message = "The server is busy signing others in: try again shortly."


@dataclass
class HoldNotFound(DomainError):
    """No such hold, or one on an account the actor may not act on: the two look alike."""

    hold_id: int

    def __post_init__(self) -> None:
        self.message = "No such hold."


@dataclass
class HoldNotPending(DomainError):
    """The hold was already captured, voided or expired: a hold resolves once."""

    hold_id: int
    status: str

    def __post_init__(self) -> None:
        self.message = f"The hold is {self.status.lower()}, no longer pending."


@dataclass
class CaptureExceedsHold(DomainError):
    hold_id: int
    pending: Money
    requested: Money

    def __post_init__(self) -> None:
        self.message = f"The hold reserves {self.pending}, less than {self.requested}."


@dataclass
class AccountHasPendingHolds(DomainError):
    account_id: int

    def __post_init__(self) -> None:
        self.message = "The account has pending holds: capture or void them first."


@dataclass
class TransactionNotFound(DomainError):
    transaction_id: int

    def __post_init__(self) -> None:
        self.message = "No such transaction."


@dataclass
class TransactionNotReversible(DomainError):
    """A reversal, or a transaction that was already reversed."""

    transaction_id: int

    def __post_init__(self) -> None:
        self.message = "This transaction cannot be reversed: it is a reversal or was reversed."


@dataclass
class EntryNotFound(DomainError):
    """A statement line that is not one of the account's, or none at all."""

    entry_id: int

    def __post_init__(self) -> None:
        self.message = "No such line on this account."


@dataclass
class StreamFellBehind(DomainError):
    """A stream whose client read so slowly that more lines waited for it than it may hold."""

    limit: int

    def __post_init__(self) -> None:
        self.message = (
            f"More than {self.limit} lines waited for this stream: its client reads too slowly. "
            "Subscribe again with afterEntryId set to the last line received."
        )


@dataclass
class StreamLimitReached(DomainError):
    """A process that holds as many streams as it may."""

    limit: int

    def __post_init__(self) -> None:
        self.message = (
            f"This server holds as many live statements as it may ({self.limit}): try again later."
        )
