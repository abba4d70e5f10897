"""Subscriptions' units of work hold a bounded share of the pool, however many start at once."""

import asyncio

import pytest

from persistence.unit_of_work import SharedOut
from tests.fakes import FakeUnitOfWorkFactory


class Counting(FakeUnitOfWorkFactory):
    """Counts how many of its units of work are open at the same moment."""

    def __init__(self) -> None:
        super().__init__()
        self.open = self.most_open = 0

    def __call__(self, *, read_only: bool = False):
        made = super().__call__(read_only=read_only)
        factory, enter, leave = self, made.__aenter__, made.__aexit__

        async def entered():
            factory.open += 1
            factory.most_open = max(factory.most_open, factory.open)
            return await enter()

        async def left(*exc):
            factory.open -= 1
            return await leave(*exc)

        made.__aenter__, made.__aexit__ = entered, left  # type: ignore[method-assign]
        return made


async def test_no_more_than_the_slots_are_open_at_once():
    counting = Counting()
    shared = SharedOut(counting, slots=3)

    async def read() -> None:
        async with shared(read_only=True) as uow:
            await asyncio.sleep(0.01)
            assert uow.accounts is not None

    await asyncio.gather(*(read() for _ in range(20)))
    assert counting.most_open == 3
    assert counting.open == 0


async def test_a_failing_unit_of_work_gives_its_slot_back():
    shared = SharedOut(FakeUnitOfWorkFactory(), slots=1)
    with pytest.raises(RuntimeError):
        async with shared():
            raise RuntimeError("the use case failed")
    async with asyncio.timeout(5):
        async with shared() as uow:  # the only slot is free again
            assert uow.users is not None
