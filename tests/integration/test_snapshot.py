"""ReadSnapshot: a request's reads see one moment, its own writes, and take turns."""

import asyncio

import pytest

from domain.model import Actor
from domain.money import Currency, Money
from domain.ports import PageRequest
from domain.services import AccountService, MovementService, UserService
from persistence.database import make_session_factory
from persistence.passwords import PasswordHashing
from persistence.snapshot import ReadSnapshot

EUR = Currency.of("EUR")


@pytest.fixture
def snapshot(engine):
    return ReadSnapshot(make_session_factory(engine))


async def opened(uow_factory):
    user = await UserService(uow_factory, PasswordHashing(1, 64, 1)).register(
        email="snap@example.com", password="long enough password"
    )
    actor = Actor(user.id, user.role)
    account = await AccountService(uow_factory).open_account(
        actor=actor, name="A", currency=EUR, initial_deposit=Money(100, EUR)
    )
    return actor, account


async def balance(factory, actor, account):
    found = await AccountService(factory).account(actor=actor, account_id=account.id)
    return found.balance.minor_units


async def test_reads_see_one_moment_until_the_request_writes(uow_factory, snapshot):
    actor, account = await opened(uow_factory)
    request = snapshot.unit_of_work
    assert await balance(request, actor, account) == 100
    # Another request commits a deposit: this request still sees the moment it began with.
    await MovementService(uow_factory).deposit(
        actor=actor, account_id=account.id, amount=Money(5, EUR)
    )
    assert await balance(request, actor, account) == 100
    statement = await AccountService(request).statement(
        actor=actor, account_id=account.id, page=PageRequest(10)
    )
    assert [e.balance_after.minor_units for e in statement.items] == [100]
    # Its own write ends the snapshot, so it reads what it wrote, and the other deposit too.
    here = MovementService(request)
    await here.deposit(actor=actor, account_id=account.id, amount=Money(1, EUR))
    assert await balance(request, actor, account) == 106
    await snapshot.close()
    assert await balance(uow_factory, actor, account) == 106


async def test_concurrent_reads_take_turns_and_a_nested_read_is_refused(uow_factory, snapshot):
    actor, account = await opened(uow_factory)
    request = snapshot.unit_of_work
    balances = await asyncio.gather(*(balance(request, actor, account) for _ in range(10)))
    assert balances == [100] * 10
    async with request(read_only=True):
        with pytest.raises(RuntimeError, match="wait forever"):
            async with request(read_only=True):
                pass
    await snapshot.close()
