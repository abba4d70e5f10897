"""Deposits, withdrawals and transfers: each one transaction, applied once per idempotency key."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from domain.errors import (
    AccountNotFound,
    DomainError,
    DuplicateRequest,
    Forbidden,
    IdempotencyConflict,
    SameAccountTransfer,
    TransactionNotFound,
    TransactionNotReversible,
)
from domain.ledger import (
    Idempotency,
    NewTransaction,
    Side,
    Transaction,
    TransactionId,
    TransactionKind,
    check_payer,
    move,
    positive_amount,
    request_hash,
    reverse,
)
from domain.limits import MoneyLimits
from domain.model import Account, AccountId, Actor, Role
from domain.money import Money
from domain.ports import UnitOfWork, UnitOfWorkFactory
from domain.services.accounts import movable_or_raise, utc_now, with_reserved
from domain.services.retry import retrying


@dataclass(frozen=True, slots=True)
class Movement:
    """A committed transaction and the customer accounts it touched that the actor may see."""

    transaction: Transaction
    source: Account | None
    destination: Account | None
    # The answer to a retry: the transaction was committed by an earlier request.
    replayed: bool = False


# Builds the transaction inside the unit of work and names the accounts whose balances it changed.
Plan = Callable[[UnitOfWork], Awaitable[tuple[NewTransaction, tuple[Account, ...]]]]


@dataclass(frozen=True, slots=True)
class MovementRequest:
    """What the client asked for, as far as it decides whether a retry is the same request."""

    kind: TransactionKind
    actor: Actor
    amount: Money
    description: str | None
    idempotency_key: str | None

    def idempotency(self, **accounts: AccountId | None) -> Idempotency | None:
        if self.idempotency_key is None:
            return None
        fingerprint = request_hash(
            self.kind,
            amount=self.amount.minor_units,
            currency=self.amount.currency.code,
            description=self.description,
            **accounts,
        )
        return Idempotency(self.idempotency_key, fingerprint)


class MovementService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        limits: MoneyLimits | None = None,
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._uow = uow
        self._limits = limits or MoneyLimits()
        self._clock = clock

    async def deposit(
        self,
        *,
        actor: Actor,
        account_id: AccountId,
        amount: Money,
        description: str | None = None,
        idempotency_key: str | None = None,
    ) -> Movement:
        """Put money into an account from outside the bank."""
        request = MovementRequest(
            TransactionKind.DEPOSIT, actor, amount, description, idempotency_key
        )
        return await self._with_funding(request, account_id)

    async def withdraw(
        self,
        *,
        actor: Actor,
        account_id: AccountId,
        amount: Money,
        description: str | None = None,
        idempotency_key: str | None = None,
    ) -> Movement:
        """Take money out of an account, never below zero."""
        request = MovementRequest(
            TransactionKind.WITHDRAWAL, actor, amount, description, idempotency_key
        )
        return await self._with_funding(request, account_id)

    async def transfer(
        self,
        *,
        actor: Actor,
        source: AccountId,
        destination: AccountId,
        amount: Money,
        description: str | None = None,
        idempotency_key: str | None = None,
    ) -> Movement:
        """Move money from one of the actor's accounts to any open account of its currency.

        The sender's refusals come first; then one about a destination the actor may not
        read is always AccountNotFound, as for an account that does not exist."""
        positive_amount(amount)
        if source == destination:
            raise SameAccountTransfer()
        request = MovementRequest(
            TransactionKind.TRANSFER, actor, amount, description, idempotency_key
        )
        key = request.idempotency(source=source, destination=destination)

        async def plan(uow: UnitOfWork) -> tuple[NewTransaction, tuple[Account, ...]]:
            self._limits.check_movement(amount)
            locked = await uow.accounts.lock([source, destination])
            debit = locked.get(source)
            if debit is None or not actor.can_move(debit):
                raise AccountNotFound(source)
            await with_reserved(uow, self._clock(), debit)
            check_payer(debit, amount)
            credit = locked.get(destination)
            try:
                if credit is None:
                    raise AccountNotFound(destination)
                new = move(
                    request.kind,
                    debit=debit,
                    credit=credit,
                    amount=amount,
                    actor_id=actor.user_id,
                    description=description,
                    idempotency=key,
                    limits=self._limits,
                )
            except DomainError:
                if credit is not None and actor.can_read(credit):
                    raise
                # Whatever refused it (closed, another currency, a balance at its limit), an
                # account the actor may not read looks exactly like one that does not exist.
                raise AccountNotFound(destination) from None
            return new, (debit, credit)

        return await self._run(actor, key, plan)

    async def _with_funding(self, request: MovementRequest, account_id: AccountId) -> Movement:
        """A deposit or withdrawal, balanced against the bank's funding account, which
        neither keeps a balance nor takes a lock: only the customer's account is locked."""
        positive_amount(request.amount)
        key = request.idempotency(account=account_id)

        async def plan(uow: UnitOfWork) -> tuple[NewTransaction, tuple[Account, ...]]:
            self._limits.check_movement(request.amount)
            account = await movable_or_raise(
                uow,
                request.actor,
                account_id,
                self._clock(),
                spends=request.kind is not TransactionKind.DEPOSIT,
            )
            funding = await uow.accounts.funding(account.currency)
            debit, credit = (
                (funding, account)
                if request.kind is TransactionKind.DEPOSIT
                else (account, funding)
            )
            new = move(
                request.kind,
                debit=debit,
                credit=credit,
                amount=request.amount,
                actor_id=request.actor.user_id,
                description=request.description,
                idempotency=key,
                limits=self._limits,
            )
            return new, (account,)

        return await self._run(request.actor, key, plan)

    async def reverse(
        self,
        *,
        actor: Actor,
        transaction_id: TransactionId,
        description: str | None = None,
        idempotency_key: str | None = None,
    ) -> Movement:
        """Administrators only: undo a committed transaction with a REVERSAL that moves the
        same amount back, at most once. History is never edited."""
        if actor.role is not Role.ADMIN:
            raise Forbidden()
        key = None
        if idempotency_key is not None:
            fingerprint = request_hash(
                TransactionKind.REVERSAL, transaction=transaction_id, description=description
            )
            key = Idempotency(idempotency_key, fingerprint)

        async def plan(uow: UnitOfWork) -> tuple[NewTransaction, tuple[Account, ...]]:
            original = await uow.transactions.get(transaction_id)
            if original is None:
                raise TransactionNotFound(transaction_id)
            if original.kind is TransactionKind.REVERSAL:
                raise TransactionNotReversible(transaction_id)
            touched = [
                account_id
                for account_id in (original.source_account_id, original.destination_account_id)
                if account_id is not None
            ]
            locked = await uow.accounts.lock(touched)
            # Read after the locks: a reversal committed meanwhile is seen here.
            if await uow.transactions.reversals([transaction_id]):
                raise TransactionNotReversible(transaction_id)
            await with_reserved(uow, self._clock(), *locked.values())

            async def side(account_id: AccountId | None) -> Side:
                if account_id is None:
                    return await uow.accounts.funding(original.amount.currency)
                return locked[account_id]

            new = reverse(
                original,
                debit=await side(original.destination_account_id),
                credit=await side(original.source_account_id),
                actor_id=actor.user_id,
                description=description,
                idempotency=key,
            )
            return new, tuple(locked.values())

        return await self._run(actor, key, plan)

    async def _run(self, actor: Actor, key: Idempotency | None, plan: Plan) -> Movement:
        async def attempt() -> Movement:
            try:
                return await self._attempt(actor, key, plan)
            except DuplicateRequest:
                # A concurrent request with the same key committed first: answer as a retry
                # would, with its transaction or an IdempotencyConflict.
                return await self._attempt(actor, key, plan)

        return await retrying(attempt)

    async def _attempt(self, actor: Actor, key: Idempotency | None, plan: Plan) -> Movement:
        async with self._uow() as uow:
            if key is not None:
                recorded = await uow.transactions.find_request(actor.user_id, key.key)
                if recorded is not None:
                    if recorded.request_hash != key.request_hash:
                        raise IdempotencyConflict(key.key)
                    return await movement_of(uow, actor, recorded.transaction, replayed=True)
                if await uow.holds.find_request(actor.user_id, key.key) is not None:
                    raise IdempotencyConflict(key.key)  # the key placed a hold
            new, changed = await plan(uow)
            transaction = await uow.transactions.record(new)
            for account in changed:
                await uow.accounts.save(account)
            # The accounts it changed are locked and in hand, as saved: no need to read them.
            movement = await movement_of(uow, actor, transaction, changed)
            await uow.commit()
            return movement


async def movement_of(
    uow: UnitOfWork,
    actor: Actor,
    transaction: Transaction,
    known: tuple[Account, ...] = (),
    *,
    replayed: bool = False,
) -> Movement:
    """The movement as the actor may see it; accounts not among `known` are read."""
    in_hand = {account.id: account for account in known}

    async def visible(account_id: AccountId | None) -> Account | None:
        if account_id is None:
            return None
        account = in_hand.get(account_id) or await uow.accounts.get(account_id)
        return account if account is not None and actor.can_read(account) else None

    return Movement(
        transaction,
        await visible(transaction.source_account_id),
        await visible(transaction.destination_account_id),
        replayed,
    )
