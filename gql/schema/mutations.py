"""Mutation resolvers: validate input into domain values, call one service, return a union."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Self

import strawberry

from domain import errors, values
from domain.errors import DomainError, InvalidInput, TryLater
from domain.ledger import TransactionId, TransactionKind
from domain.model import SessionId, User
from domain.money import Currency, Money
from domain.services import HoldCapture as DomainHoldCapture
from domain.services import HoldChange, Movement
from domain.values import at
from gql.schema import errors_as_data as e
from gql.schema.errors_as_data import ErrorMapper
from gql.schema.ids import MalformedId, key_of
from gql.schema.inputs import (
    CaptureHoldInput,
    ChangePasswordInput,
    CloseAccountInput,
    DepositInput,
    EndSessionInput,
    LoginInput,
    OpenAccountInput,
    PlaceHoldInput,
    RefreshSessionInput,
    RegisterInput,
    RenameAccountInput,
    ReverseTransactionInput,
    SignOutInput,
    TransferInput,
    VoidHoldInput,
    WithdrawInput,
    account_id,
    description,
    hold_id,
    idempotency_key,
    money,
)
from gql.schema.permissions import SIGNED_IN
from gql.schema.top_level_errors import BadUserInput, Forbidden, RateLimited, Unauthenticated
from gql.schema.types import Account, AuthPayload, Hold, Info, Transaction


@strawberry.type
class SignOutPayload:
    ended_sessions: int = strawberry.field(description="How many sessions ended.")


@strawberry.type
class AccountPayload:
    account: Account


@strawberry.type(description="A committed movement and the accounts it touched.")
class MoneyMovement:
    transaction: Transaction
    source_account: Account | None
    destination_account: Account | None

    @classmethod
    def from_domain(cls, movement: Movement) -> Self:
        return cls(
            transaction=Transaction.from_domain(movement.transaction),
            source_account=Account.from_domain(movement.source) if movement.source else None,
            destination_account=(
                Account.from_domain(movement.destination) if movement.destination else None
            ),
        )

    @classmethod
    def committed(cls, movement: Movement, info: Info) -> Self:
        """The answer to a mutation that moved money; a new movement (not the answer to a
        retry) is told to the context's observer by its kind and currency alone."""
        observe = info.context.on_movement
        if observe is not None and not movement.replayed:
            transaction = movement.transaction
            observe(transaction.kind.value, transaction.amount.currency.code)
        return cls.from_domain(movement)


@strawberry.type
class HoldPayload:
    hold: Hold
    account: Account

    @classmethod
    def from_domain(cls, change: HoldChange, info: Info) -> Self:
        return cls(
            hold=Hold.from_domain(change.hold, info.context.holds.now()),
            account=Account.from_domain(change.account),
        )


@strawberry.type(description="A captured hold and the movement that the capture committed.")
class HoldCapture:
    hold: Hold
    movement: MoneyMovement

    @classmethod
    def from_domain(cls, capture: DomainHoldCapture, info: Info) -> Self:
        return cls(
            hold=Hold.from_domain(capture.hold, info.context.holds.now()),
            movement=MoneyMovement.committed(capture.movement, info),
        )


RegisterResult = Annotated[
    AuthPayload | e.ValidationError | e.EmailAlreadyRegistered, strawberry.union("RegisterResult")
]
LoginResult = Annotated[
    AuthPayload | e.ValidationError | e.InvalidCredentials, strawberry.union("LoginResult")
]
RefreshSessionResult = Annotated[
    AuthPayload | e.InvalidRefreshToken, strawberry.union("RefreshSessionResult")
]
EndSessionResult = Annotated[
    SignOutPayload | e.SessionNotFound, strawberry.union("EndSessionResult")
]
ChangePasswordResult = Annotated[
    AuthPayload | e.InvalidCredentials | e.ValidationError, strawberry.union("ChangePasswordResult")
]
OpenAccountResult = Annotated[
    AccountPayload | e.ValidationError, strawberry.union("OpenAccountResult")
]
RenameAccountResult = Annotated[
    AccountPayload | e.ValidationError | e.AccountNotFound | e.AccountClosed,
    strawberry.union("RenameAccountResult"),
]
CloseAccountResult = Annotated[
    AccountPayload
    | e.AccountNotFound
    | e.AccountClosed
    | e.AccountNotEmpty
    | e.AccountHasPendingHolds,
    strawberry.union("CloseAccountResult"),
]
PlaceHoldResult = Annotated[
    HoldPayload
    | e.ValidationError
    | e.AccountNotFound
    | e.AccountClosed
    | e.CurrencyMismatch
    | e.InsufficientFunds
    | e.IdempotencyConflict,
    strawberry.union("PlaceHoldResult"),
]
CaptureHoldResult = Annotated[
    HoldCapture
    | e.ValidationError
    | e.HoldNotFound
    | e.HoldNotPending
    | e.CaptureExceedsHold
    | e.CurrencyMismatch
    | e.AccountNotFound
    | e.AccountClosed
    | e.IdempotencyConflict,
    strawberry.union("CaptureHoldResult"),
]
VoidHoldResult = Annotated[
    HoldPayload | e.HoldNotFound | e.HoldNotPending, strawberry.union("VoidHoldResult")
]
ReverseTransactionResult = Annotated[
    MoneyMovement
    | e.TransactionNotFound
    | e.TransactionNotReversible
    | e.InsufficientFunds
    | e.AccountClosed
    | e.IdempotencyConflict,
    strawberry.union("ReverseTransactionResult"),
]
DepositResult = Annotated[
    MoneyMovement
    | e.ValidationError
    | e.AccountNotFound
    | e.AccountClosed
    | e.CurrencyMismatch
    | e.IdempotencyConflict,
    strawberry.union("DepositResult"),
]
WithdrawResult = Annotated[
    MoneyMovement
    | e.ValidationError
    | e.AccountNotFound
    | e.AccountClosed
    | e.CurrencyMismatch
    | e.InsufficientFunds
    | e.IdempotencyConflict,
    strawberry.union("WithdrawResult"),
]
TransferResult = Annotated[
    MoneyMovement
    | e.ValidationError
    | e.AccountNotFound
    | e.AccountClosed
    | e.CurrencyMismatch
    | e.InsufficientFunds
    | e.IdempotencyConflict,
    strawberry.union("TransferResult"),
]


async def _with_funding(
    info: Info, input: DepositInput | WithdrawInput, move: Callable[..., Awaitable[Movement]]
) -> MoneyMovement | e.Error:
    """A deposit or a withdrawal: the same input, the same answers, another service method."""
    try:
        movement = await move(
            actor=await info.context.actor(),
            account_id=account_id("accountId", input.account_id),
            amount=money("amount", input.amount),
            description=description(input.description),
            idempotency_key=idempotency_key(input.idempotency_key),
        )
    except DomainError as error:
        return ErrorMapper(amount_field="amount.amount")(error)
    return MoneyMovement.committed(movement, info)


async def _signed_in(info: Info, user: User) -> AuthPayload:
    """A new session for a user who just proved who they are, and its tokens."""
    started = await info.context.sessions.start(user, user_agent=info.context.user_agent)
    return AuthPayload.issue(info.context.tokens, started)


def _current_session(info: Info) -> SessionId:
    signed_in = info.context.signed_in
    if signed_in is None:  # never once SIGNED_IN let the request in
        raise Unauthenticated("Sign in to do this: send Authorization: Bearer <token>.")
    return signed_in.session_id


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def register(self, info: Info, input: RegisterInput) -> RegisterResult:
        """Create a customer and sign them in."""
        try:
            user = await info.context.users.register(email=input.email, password=input.password)
        except TryLater as error:
            raise RateLimited(error.message, error.retry_after_s) from None
        except DomainError as error:
            return ErrorMapper()(error)  # type: ignore[return-value]
        return await _signed_in(info, user)

    @strawberry.mutation
    async def login(self, info: Info, input: LoginInput) -> LoginResult:
        """Sign in with an email address and a password."""
        try:
            started = await info.context.users.sign_in(
                email=input.email, password=input.password, user_agent=info.context.user_agent
            )
        except TryLater as error:
            raise RateLimited(error.message, error.retry_after_s) from None
        except DomainError as error:
            return ErrorMapper()(error)  # type: ignore[return-value]
        return AuthPayload.issue(info.context.tokens, started)

    @strawberry.mutation
    async def refresh_session(self, info: Info, input: RefreshSessionInput) -> RefreshSessionResult:
        """Trade a refresh token for a new access and refresh token pair (rotation)."""
        try:
            started = await info.context.sessions.refresh(input.refresh_token)
        except DomainError as error:
            return ErrorMapper()(error)  # type: ignore[return-value]
        return AuthPayload.issue(info.context.tokens, started)

    @strawberry.mutation(permission_classes=SIGNED_IN)
    async def sign_out(self, info: Info, input: SignOutInput | None = None) -> SignOutPayload:
        """End the current session, or every session of the viewer with everywhere: true."""
        ended = await info.context.sessions.sign_out(
            actor=await info.context.actor(),
            session_id=_current_session(info),
            everywhere=bool(input and input.everywhere),
        )
        return SignOutPayload(ended_sessions=ended)

    @strawberry.mutation(permission_classes=SIGNED_IN)
    async def end_session(self, info: Info, input: EndSessionInput) -> EndSessionResult:
        """End one of the viewer's sessions, for example a lost phone's."""
        try:
            key = SessionId(key_of(input.session_id, "Session"))
        except MalformedId:
            # The contract's EndSessionResult has no ValidationError member.
            raise BadUserInput("`sessionId` is not a Session ID issued by this server.") from None
        try:
            ended = await info.context.sessions.end(
                actor=await info.context.actor(), session_id=key
            )
        except DomainError as error:
            return ErrorMapper()(error)  # type: ignore[return-value]
        return SignOutPayload(ended_sessions=ended)

    @strawberry.mutation(permission_classes=SIGNED_IN)
    async def change_password(self, info: Info, input: ChangePasswordInput) -> ChangePasswordResult:
        """Change the viewer's password; every other session of the viewer ends."""
        try:
            started = await info.context.users.change_password(
                actor=await info.context.actor(),
                current_password=input.current_password,
                new_password=input.new_password,
                user_agent=info.context.user_agent,
            )
        except TryLater as error:
            raise RateLimited(error.message, error.retry_after_s) from None
        except DomainError as error:
            return ErrorMapper()(error)  # type: ignore[return-value]
        return AuthPayload.issue(info.context.tokens, started)

    @strawberry.mutation(permission_classes=SIGNED_IN)
    async def open_account(self, info: Info, input: OpenAccountInput) -> OpenAccountResult:
        """Open an account in one currency, optionally with money in it."""
        try:
            name = at("name", values.account_name, input.name)
            currency = at("currency", Currency.of, input.currency)
            initial = (
                at("initialDeposit", Money.parse, input.initial_deposit, currency)
                if input.initial_deposit is not None
                else None
            )
            account = await info.context.accounts.open_account(
                actor=await info.context.actor(),
                name=name,
                currency=currency,
                initial_deposit=initial,
            )
        except DomainError as error:
            return ErrorMapper(amount_field="initialDeposit")(error)  # type: ignore[return-value]
        if initial is not None and initial.is_positive and info.context.on_movement is not None:
            info.context.on_movement(TransactionKind.DEPOSIT.value, currency.code)
        return AccountPayload(account=Account.from_domain(account))

    @strawberry.mutation(permission_classes=SIGNED_IN)
    async def rename_account(self, info: Info, input: RenameAccountInput) -> RenameAccountResult:
        """Give an open account a new name."""
        try:
            key = account_id("accountId", input.account_id)
            name = at("name", values.account_name, input.name)
            account = await info.context.accounts.rename_account(
                actor=await info.context.actor(), account_id=key, name=name
            )
        except DomainError as error:
            return ErrorMapper()(error)  # type: ignore[return-value]
        return AccountPayload(account=Account.from_domain(account))

    @strawberry.mutation(permission_classes=SIGNED_IN)
    async def close_account(self, info: Info, input: CloseAccountInput) -> CloseAccountResult:
        """Close an empty account for good."""
        try:
            key = account_id("accountId", input.account_id)
        except InvalidInput as error:
            # The contract's CloseAccountResult has no ValidationError member.
            raise BadUserInput(f"`accountId`: {error.message}") from None
        try:
            account = await info.context.accounts.close_account(
                actor=await info.context.actor(), account_id=key
            )
        except DomainError as error:
            return ErrorMapper()(error)  # type: ignore[return-value]
        return AccountPayload(account=Account.from_domain(account))

    @strawberry.mutation(permission_classes=SIGNED_IN)
    async def deposit(self, info: Info, input: DepositInput) -> DepositResult:
        """Put money into one of the viewer's accounts."""
        return await _with_funding(info, input, info.context.movements.deposit)  # type: ignore[return-value]

    @strawberry.mutation(permission_classes=SIGNED_IN)
    async def withdraw(self, info: Info, input: WithdrawInput) -> WithdrawResult:
        """Take money out of one of the viewer's accounts, never below zero."""
        return await _with_funding(info, input, info.context.movements.withdraw)  # type: ignore[return-value]

    @strawberry.mutation(permission_classes=SIGNED_IN)
    async def transfer(self, info: Info, input: TransferInput) -> TransferResult:
        """Move money from one of the viewer's accounts to another open account."""
        try:
            movement = await info.context.movements.transfer(
                actor=await info.context.actor(),
                source=account_id("sourceAccountId", input.source_account_id),
                destination=account_id("destinationAccountId", input.destination_account_id),
                amount=money("amount", input.amount),
                description=description(input.description),
                idempotency_key=idempotency_key(input.idempotency_key),
            )
        except DomainError as error:
            return ErrorMapper(amount_field="amount.amount")(error)  # type: ignore[return-value]
        return MoneyMovement.committed(movement, info)

    @strawberry.mutation(
        permission_classes=SIGNED_IN,
        description=(
            "Reserve money on one of the viewer's accounts until it is captured, voided or expires."
        ),
    )
    async def place_hold(self, info: Info, input: PlaceHoldInput) -> PlaceHoldResult:
        try:
            change = await info.context.holds.place(
                actor=await info.context.actor(),
                account_id=account_id("accountId", input.account_id),
                amount=money("amount", input.amount),
                destination=(
                    account_id("destinationAccountId", input.destination_account_id)
                    if input.destination_account_id is not None
                    else None
                ),
                expires_in_s=input.expires_in_seconds,
                description=description(input.description),
                idempotency_key=idempotency_key(input.idempotency_key),
            )
        except DomainError as error:
            return ErrorMapper(amount_field="amount.amount")(error)  # type: ignore[return-value]
        return HoldPayload.from_domain(change, info)

    @strawberry.mutation(
        permission_classes=SIGNED_IN,
        description=(
            "Move some or all of a pending hold's money; whatever is not captured is released."
        ),
    )
    async def capture_hold(self, info: Info, input: CaptureHoldInput) -> CaptureHoldResult:
        try:
            capture = await info.context.holds.capture(
                actor=await info.context.actor(),
                hold_id=hold_id("holdId", input.hold_id),
                amount=money("amount", input.amount) if input.amount is not None else None,
                idempotency_key=idempotency_key(input.idempotency_key),
            )
        except DomainError as error:
            return ErrorMapper(amount_field="amount.amount")(error)  # type: ignore[return-value]
        return HoldCapture.from_domain(capture, info)

    @strawberry.mutation(
        permission_classes=SIGNED_IN,
        description="Release a pending hold's money without moving it.",
    )
    async def void_hold(self, info: Info, input: VoidHoldInput) -> VoidHoldResult:
        try:
            key = hold_id("holdId", input.hold_id)
        except InvalidInput as error:
            # The contract's VoidHoldResult has no ValidationError member.
            raise BadUserInput(f"`holdId`: {error.message}") from None
        try:
            change = await info.context.holds.void(actor=await info.context.actor(), hold_id=key)
        except DomainError as error:
            return ErrorMapper()(error)  # type: ignore[return-value]
        return HoldPayload.from_domain(change, info)

    @strawberry.mutation(
        permission_classes=SIGNED_IN,
        description=(
            "Administrators only: undo a committed deposit, withdrawal, transfer or hold capture "
            "with a new transaction."
        ),
    )
    async def reverse_transaction(
        self, info: Info, input: ReverseTransactionInput
    ) -> ReverseTransactionResult:
        # The contract's ReverseTransactionResult has no ValidationError member.
        try:
            key = TransactionId(key_of(input.transaction_id, "Transaction"))
        except MalformedId:
            raise BadUserInput(
                "`transactionId` is not a transaction ID issued by this server."
            ) from None
        try:
            note = description(input.description)
            request_key = idempotency_key(input.idempotency_key)
        except InvalidInput as error:
            raise BadUserInput(f"`{error.field}`: {error.message}") from None
        try:
            movement = await info.context.movements.reverse(
                actor=await info.context.actor(),
                transaction_id=key,
                description=note,
                idempotency_key=request_key,
            )
        except errors.Forbidden as error:
            raise Forbidden(error.message) from None
        except DomainError as error:
            return ErrorMapper()(error)  # type: ignore[return-value]
        return MoneyMovement.committed(movement, info)
