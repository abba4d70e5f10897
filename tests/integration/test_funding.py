"""The bank's funding accounts in storage: made once, never shown, never locked."""

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from domain.model import Actor, FundingAccount, Role, UserId
from domain.money import Currency, Money
from domain.ports import PageRequest
from domain.services import AccountService, AuditService, MovementService, UserService
from tests.fakes import FakePasswordHasher

CHF = Currency.of("CHF")
# Generous: a deposit that does not wait on another finishes in milliseconds, and one that
# does would wait for as long as the other stays open, which here is until the bound runs out.
BOUND_S = 60


async def customer(uow_factory, email: str) -> Actor:
    user = await UserService(uow_factory, FakePasswordHasher()).register(
        email=email, password="long enough password"
    )
    return Actor(user.id, user.role)


async def test_a_currency_has_one_funding_account_that_no_customer_lookup_finds(uow_factory):
    alice = await customer(uow_factory, "alice@example.com")
    account = await AccountService(uow_factory).open_account(
        actor=alice, name="A", currency=CHF, initial_deposit=Money(500, CHF)
    )
    async with uow_factory() as uow:
        funding = await uow.accounts.funding(CHF)
        assert await uow.accounts.funding(CHF) == funding
        assert funding == FundingAccount(funding.id, CHF)
        assert await uow.accounts.get(funding.id) is None
        assert await uow.accounts.get_many([funding.id, account.id]) == [account]
        assert await uow.accounts.lock([funding.id]) == {}
        assert await uow.transactions.entries([funding.id], PageRequest(10)) == {funding.id: []}
        assert await uow.transactions.entries_after(funding.id, None, 10) == []
        # Its line exists (the watch may see it) but is nobody's statement line.
        newest = await uow.transactions.newest_entry_ids([funding.id])
        assert await uow.transactions.get_entry(newest[funding.id]) is None
        # Nor can a stream resume after it: only customer lines have an account to resume in.
        opening = (await uow.transactions.newest_entry_ids([account.id]))[account.id]
        found = await uow.transactions.entry_accounts([newest[funding.id], opening, 987654])
        assert found == {opening: account.id}


class HeldCommit:
    """Units of work whose commit waits until released, so that the transaction of a movement
    stays open, holding whatever locks it took, while the test does something else."""

    def __init__(self, uow_factory) -> None:
        self._uow_factory = uow_factory
        self.reached = asyncio.Event()
        self.release = asyncio.Event()

    def __call__(self, *, read_only: bool = False):
        uow = self._uow_factory(read_only=read_only)
        commit = uow.commit

        async def held_commit() -> None:
            self.reached.set()
            await self.release.wait()
            await commit()

        uow.commit = held_commit
        return uow


async def lock_at_once(engine, account_key: int) -> bool:
    """Whether a writer could lock the account's row right now (what an UPDATE of its balance
    would need), without waiting for anyone."""
    async with engine.connect() as connection:
        try:
            await connection.execute(
                text(f"SELECT id FROM accounts WHERE id = {account_key} FOR NO KEY UPDATE NOWAIT")
            )
        except DBAPIError as error:
            assert getattr(error.orig, "sqlstate", None) == "55P03"  # lock_not_available
            return False
        finally:
            await connection.rollback()
    return True


async def test_deposits_in_one_currency_do_not_wait_on_one_another(engine, uow_factory):
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite runs one writing transaction at a time, by design")
    alice = await customer(uow_factory, "alice@example.com")
    bob = await customer(uow_factory, "bob@example.com")
    accounts = AccountService(uow_factory)
    # The accounts, and with the first deposit the CHF funding account, exist beforehand.
    a = await accounts.open_account(
        actor=alice, name="A", currency=CHF, initial_deposit=Money(100, CHF)
    )
    b = await accounts.open_account(actor=bob, name="B", currency=CHF)
    async with uow_factory(read_only=True) as uow:
        funding = await uow.accounts.funding(CHF)

    held = HeldCommit(uow_factory)
    first = asyncio.create_task(
        MovementService(held).deposit(actor=alice, account_id=a.id, amount=Money(7, CHF))
    )
    try:
        await asyncio.wait_for(held.reached.wait(), BOUND_S)
        # Alice's deposit has written everything and holds its locks, uncommitted: her
        # account's row is taken, the funding account's is not.
        assert not await lock_at_once(engine, a.id)
        assert await lock_at_once(engine, funding.id)
        movements = MovementService(uow_factory)
        meanwhile = [
            movements.deposit(actor=bob, account_id=b.id, amount=Money(5, CHF)),
            accounts.open_account(actor=bob, name="C", currency=CHF, initial_deposit=Money(3, CHF)),
            movements.withdraw(actor=bob, account_id=b.id, amount=Money(2, CHF)),
        ]
        for movement in meanwhile:
            await asyncio.wait_for(movement, BOUND_S)
        assert not first.done()
    finally:
        held.release.set()
    await first
    async with uow_factory(read_only=True) as uow:
        stored = {
            account.id: account.balance for account in await uow.accounts.get_many([a.id, b.id])
        }
    assert stored == {a.id: Money(107, CHF), b.id: Money(3, CHF)}
    report = await AuditService(uow_factory).audit(actor=Actor(UserId(0), Role.ADMIN))
    assert report.ok, report
