"""Holds: place, capture and void, each under the lock of the account whose money they hold."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from domain.errors import (
    AccountNotFound,
    DomainError,
    DuplicateRequest,
    HoldNotFound,
    IdempotencyConflict,
    InvalidInput,
)
from domain.holds import Hold, HoldId, HoldStatus, NewHold, hold_lifetime
from domain.ledger import (
    Idempotency,
    TransactionKind,
    check_payer,
    move,
    positive_amount,
    request_hash,
)
from domain.limits import MoneyLimits
from domain.model import Account, AccountId, Actor
from domain.money import Money
from domain.ports import Page, PageRequest, UnitOfWork, UnitOfWorkFactory
from domain.services.accounts import utc_now, with_reserved
from domain.services.movements import Movement, movement_of
from domain.services.retry import retrying

T = TypeVar("T")

DEFAULT_LONGEST_HOLD_SECONDS = 30 * 24 * 3600


@dataclass(frozen=True, slots=True)
class HoldChange:
    """A hold as a use case left it, and its account with what its holds now reserve."""

    hold: Hold
    account: Account


@dataclass(frozen=True, slots=True)
class HoldCapture:
    hold: Hold
    movement: Movement


class HoldService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        limits: MoneyLimits | None = None,
        *,
        longest_hold_s: int = DEFAULT_LONGEST_HOLD_SECONDS,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._uow = uow
        self._limits = limits or MoneyLimits()
        self._longest_hold_s = longest_hold_s
        self.now = clock

    async def place(
        self,
        *,
        actor: Actor,
        account_id: AccountId,
        amount: Money,
        destination: AccountId | None = None,
        expires_in_s: int | None = None,
        description: str | None = None,
        idempotency_key: str | None = None,
    ) -> HoldChange:
        """Reserve money on one of the actor's open accounts, out of its available balance.

        A capture pays the destination (an open account of the same currency) or, without
        one, takes the money out of the bank. Refusals about a destination the actor may not
        read are AccountNotFound, as for one that does not exist."""
        positive_amount(amount)
        lifetime = hold_lifetime(expires_in_s, self._longest_hold_s)
        if destination == account_id:
            raise InvalidInput("destinationAccountId", "A hold cannot pay its own account.")
        key = None
        if idempotency_key is not None:
            fingerprint = request_hash(
                "HOLD",
                account=account_id,
                destination=destination,
                amount=amount.minor_units,
                currency=amount.currency.code,
                expires_in=expires_in_s,
                description=description,
            )
            key = Idempotency(idempotency_key, fingerprint)

        async def attempt(uow: UnitOfWork) -> HoldChange:
            if key is not None:
                recorded = await uow.holds.find_request(actor.user_id, key.key)
                if recorded is not None:
                    if recorded.request_hash != key.request_hash:
                        raise IdempotencyConflict(key.key)
                    return await self._change_of(uow, recorded.hold)
                if await uow.transactions.find_request(actor.user_id, key.key) is not None:
                    raise IdempotencyConflict(key.key)  # the key moved money
            self._limits.check_movement(amount)
            now = self.now()
            # The destination is locked too, in the same id order as every movement: the new
            # hold's reference to it would otherwise wait on a transfer that waits on us.
            keys = [account_id] if destination is None else [account_id, destination]
            locked = await uow.accounts.lock(keys)
            account = locked.get(account_id)
            if account is None or not actor.can_move(account):
                raise AccountNotFound(account_id)
            await with_reserved(uow, now, account)
            check_payer(account, amount)
            if destination is not None:
                self._check_destination(actor, account, destination, locked.get(destination))
            hold = await uow.holds.add(
                NewHold(
                    account_id=account_id,
                    placed_by=actor.user_id,
                    amount=amount,
                    destination_account_id=destination,
                    description=description,
                    expires_at=now + lifetime,
                    idempotency=key,
                )
            )
            account.reserved += amount.minor_units
            await uow.commit()
            return HoldChange(hold, account)

        return await self._run(attempt)

    @staticmethod
    def _check_destination(
        actor: Actor, account: Account, destination: AccountId, target: Account | None
    ) -> None:
        try:
            if target is None:
                raise AccountNotFound(destination)
            target.ensure_open()
            account.ensure_currency(target.currency)
        except DomainError:
            if target is not None and actor.can_read(target):
                raise
            raise AccountNotFound(destination) from None

    async def capture(
        self,
        *,
        actor: Actor,
        hold_id: HoldId,
        amount: Money | None = None,
        idempotency_key: str | None = None,
    ) -> HoldCapture:
        """Move up to the pending amount (all of it when None) as one transaction that names
        the hold, and release the rest. It never lacks funds: the money was reserved."""
        if amount is not None:
            positive_amount(amount)
        key = None
        if idempotency_key is not None:
            fingerprint = request_hash(
                "CAPTURE",
                hold=hold_id,
                amount=amount.minor_units if amount is not None else None,
                currency=amount.currency.code if amount is not None else None,
            )
            key = Idempotency(idempotency_key, fingerprint)

        async def attempt(uow: UnitOfWork) -> HoldCapture:
            if key is not None:
                recorded = await uow.transactions.find_request(actor.user_id, key.key)
                if recorded is not None:
                    held = recorded.transaction.hold_id
                    found = await uow.holds.get(HoldId(held)) if held is not None else None
                    if recorded.request_hash != key.request_hash or found is None:
                        raise IdempotencyConflict(key.key)
                    movement = await movement_of(uow, actor, recorded.transaction, replayed=True)
                    return HoldCapture(found, movement)
                if await uow.holds.find_request(actor.user_id, key.key) is not None:
                    raise IdempotencyConflict(key.key)  # the key placed a hold
            hold, account, locked = await self._locked(uow, actor, hold_id)
            now = self.now()
            if amount is not None:
                account.ensure_currency(amount.currency)
            hold.ensure_pending(now)
            await with_reserved(uow, now, account)
            # This hold's reservation is what the capture spends, so the check of funds
            # counts only the others.
            account.reserved -= hold.amount.minor_units
            taken = hold.capture(amount, now)
            destination = hold.destination_account_id
            if destination is None:
                credit: Account | None = None
                new = move(
                    TransactionKind.WITHDRAWAL,
                    debit=account,
                    credit=await uow.accounts.funding(account.currency),
                    amount=taken,
                    actor_id=actor.user_id,
                    description=hold.description,
                    idempotency=key,
                    limits=self._limits,
                    hold_id=hold.id,
                )
            else:
                credit = locked.get(destination)
                try:
                    if credit is None:
                        raise AccountNotFound(destination)
                    new = move(
                        TransactionKind.TRANSFER,
                        debit=account,
                        credit=credit,
                        amount=taken,
                        actor_id=actor.user_id,
                        description=hold.description,
                        idempotency=key,
                        limits=self._limits,
                        hold_id=hold.id,
                    )
                except DomainError:
                    if credit is not None and actor.can_read(credit):
                        raise
                    raise AccountNotFound(destination) from None
            transaction = await uow.transactions.record(new)
            hold.transaction_id = transaction.id
            await uow.holds.save(hold)
            await uow.accounts.save(account)
            if credit is not None:
                await uow.accounts.save(credit)
            movement = await movement_of(uow, actor, transaction)
            await uow.commit()
            return HoldCapture(hold, movement)

        return await self._run(attempt)

    async def void(self, *, actor: Actor, hold_id: HoldId) -> HoldChange:
        """Release a pending hold's money without moving it."""

        async def attempt(uow: UnitOfWork) -> HoldChange:
            hold, account, _locked = await self._locked(uow, actor, hold_id)
            now = self.now()
            hold.void(now)
            await with_reserved(uow, now, account)
            account.reserved -= hold.amount.minor_units  # read while still stored as pending
            await uow.holds.save(hold)
            await uow.commit()
            return HoldChange(hold, account)

        return await self._run(attempt)

    async def _locked(
        self, uow: UnitOfWork, actor: Actor, hold_id: HoldId
    ) -> tuple[Hold, Account, dict[AccountId, Account]]:
        """The hold read afresh under the lock of its account (and of its destination), when
        the actor placed it or owns the account; HoldNotFound otherwise."""
        found = await uow.holds.get(hold_id)
        if found is None:
            raise HoldNotFound(hold_id)
        keys = [found.account_id]
        if found.destination_account_id is not None:
            keys.append(found.destination_account_id)
        locked = await uow.accounts.lock(keys)
        account = locked.get(found.account_id)
        if account is None or actor.user_id not in (found.placed_by, account.owner_id):
            raise HoldNotFound(hold_id)
        # Every change to the account's holds waits for its lock: read after it, the hold
        # shows whatever a racing capture or void committed.
        hold = await uow.holds.get(hold_id)
        if hold is None:
            raise HoldNotFound(hold_id)
        return hold, account, locked

    async def _change_of(self, uow: UnitOfWork, hold: Hold) -> HoldChange:
        account = await uow.accounts.get(hold.account_id)
        if account is None:
            raise AccountNotFound(hold.account_id)
        await with_reserved(uow, self.now(), account)
        return HoldChange(hold, account)

    async def _run(self, attempt: Callable[[UnitOfWork], Awaitable[T]]) -> T:
        async def once() -> T:
            async with self._uow() as uow:
                return await attempt(uow)

        async def run() -> T:
            try:
                return await once()
            except DuplicateRequest:
                # A concurrent request with the same key committed first: answer as a retry.
                return await once()

        return await retrying(run)

    # Reads

    async def holds(
        self,
        *,
        actor: Actor,
        account_id: AccountId,
        status: HoldStatus | None,
        page: PageRequest,
    ) -> Page[Hold]:
        """A page of the account's holds newest first; empty when the actor may not read it."""
        async with self._uow(read_only=True) as uow:
            account = await uow.accounts.get(account_id)
            if account is None or not actor.can_read(account):
                return Page([], has_next=False, has_previous=False)
            items = await uow.holds.list(account_id, status=status, page=page, now=self.now())
        return Page(items[: page.first], len(items) > page.first, page.after is not None)

    async def holds_by_ids(self, *, actor: Actor, hold_ids: Sequence[HoldId]) -> dict[HoldId, Hold]:
        """The holds on accounts the actor may read."""
        async with self._uow(read_only=True) as uow:
            found = await uow.holds.get_many(hold_ids)
            accounts = await uow.accounts.get_many(list({h.account_id for h in found}))
        readable = {a.id for a in accounts if actor.can_read(a)}
        return {h.id: h for h in found if h.account_id in readable}

    async def reserved(
        self, *, actor: Actor, account_ids: Sequence[AccountId]
    ) -> dict[AccountId, int]:
        """What pending holds reserve now on each account the actor may read (0 for none)."""
        async with self._uow(read_only=True) as uow:
            accounts = await uow.accounts.get_many(account_ids)
            readable = [a.id for a in accounts if actor.can_read(a)]
            found = await uow.holds.reserved(readable, self.now())
        return {key: found.get(key, 0) for key in readable}
