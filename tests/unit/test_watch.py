"""EntryWatch: one look per interval for every reader, waking only those whose account moved."""

import asyncio
import logging

import pytest

from domain.model import Actor, Role, UserId
from domain.money import Currency, Money
from domain.services import (
    AccountService,
    EntryWatch,
    MovementService,
    SessionService,
    SessionWatch,
    UserService,
)
from tests.fakes import FakePasswordHasher, FakeUnitOfWorkFactory

EUR = Currency.of("EUR")
ALICE = Actor(UserId(1), Role.CUSTOMER)


class Clock:
    """Stands in for asyncio.sleep: each tick lets the watch take exactly one look."""

    def __init__(self) -> None:
        self._ticks: asyncio.Queue[None] = asyncio.Queue()

    async def sleep(self, _seconds: float) -> None:
        await self._ticks.get()

    async def tick(self) -> None:
        await self._ticks.put(None)
        for _ in range(20):  # the fake storage answers without waiting on anything
            await asyncio.sleep(0)


@pytest.fixture
def uow():
    return FakeUnitOfWorkFactory()


def looks(uow) -> int:
    return sum(1 for made in uow.made if made.read_only)


async def test_one_look_serves_every_reader_and_wakes_only_those_whose_account_moved(uow):
    accounts, movements = AccountService(uow), MovementService(uow)
    a = await accounts.open_account(actor=ALICE, name="A", currency=EUR)
    b = await accounts.open_account(actor=ALICE, name="B", currency=EUR)
    clock = Clock()
    watch = EntryWatch(uow, 0.5, clock.sleep)
    async with (
        watch.watching(a.id) as first_of_a,
        watch.watching(a.id) as second_of_a,
        watch.watching(b.id) as only_of_b,
    ):
        waits = {"a1": first_of_a, "a2": second_of_a, "b": only_of_b}

        async def woken_by_one_look() -> set[str]:
            tasks = {name: asyncio.create_task(wait()) for name, wait in waits.items()}
            before = looks(uow)
            await clock.tick()
            assert looks(uow) == before + 1
            for task in tasks.values():
                task.cancel()
            return {name for name, task in tasks.items() if task.done() and not task.cancelled()}

        # The first look wakes everyone, in case lines came just before the watch began.
        assert await woken_by_one_look() == {"a1", "a2", "b"}
        assert await woken_by_one_look() == set()
        await movements.deposit(actor=ALICE, account_id=a.id, amount=Money(100, EUR))
        assert await woken_by_one_look() == {"a1", "a2"}
        await movements.transfer(actor=ALICE, source=a.id, destination=b.id, amount=Money(1, EUR))
        assert await woken_by_one_look() == {"a1", "a2", "b"}
        assert await woken_by_one_look() == set()

    # With no reader left the watch stops looking.
    before = looks(uow)
    await clock.tick()
    await clock.tick()
    assert looks(uow) == before


async def test_a_failed_look_is_logged_and_the_next_one_still_wakes(uow, caplog):
    accounts, movements = AccountService(uow), MovementService(uow)
    a = await accounts.open_account(actor=ALICE, name="A", currency=EUR)
    failures = [RuntimeError("the database went away")]

    def flaky(*, read_only: bool = False):
        if read_only and failures:
            raise failures.pop()
        return uow(read_only=read_only)

    clock = Clock()
    watch = EntryWatch(flaky, 0.5, clock.sleep)
    async with watch.watching(a.id) as wait:
        waiting = asyncio.create_task(wait())
        with caplog.at_level(logging.WARNING, logger="bankql.watch"):
            await clock.tick()
        assert not waiting.done()
        assert "went away" in str(caplog.records[0].exc_info[1])
        await movements.deposit(actor=ALICE, account_id=a.id, amount=Money(5, EUR))
        await clock.tick()
        assert waiting.done()


async def test_one_look_serves_every_stream_and_tells_only_those_whose_session_ended(uow):
    users, sessions = UserService(uow, FakePasswordHasher()), SessionService(uow)
    alice = await users.register(email="alice@example.com", password="correct horse 1")
    phone = (await sessions.start(alice, user_agent=None)).session
    laptop = (await sessions.start(alice, user_agent=None)).session
    actor = Actor(alice.id, Role.CUSTOMER)
    clock = Clock()
    watch = SessionWatch(sessions.live, 0.5, clock.sleep)
    async with (
        watch.watching(phone.id) as phone_stream,
        watch.watching(phone.id) as other_phone_stream,
        watch.watching(laptop.id) as laptop_stream,
    ):
        before = looks(uow)
        await clock.tick()
        assert looks(uow) == before + 1
        assert not phone_stream.is_set() and not laptop_stream.is_set()
        await sessions.end(actor=actor, session_id=phone.id)
        await clock.tick()
        assert looks(uow) == before + 2
        assert phone_stream.is_set() and other_phone_stream.is_set()
        assert not laptop_stream.is_set()
    # Nobody watches any more: no more looks.
    await clock.tick()
    assert looks(uow) == before + 2
