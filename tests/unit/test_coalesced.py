"""A look shared by many callers never hands one of them a value looked up before it asked:
the reads on standbys are only as fresh as this (persistence/replicas.py)."""

from __future__ import annotations

import asyncio

from persistence.replicas import Coalesced


class Positions:
    """A primary whose position moves on by one with every look, and which takes a moment
    to answer, so that callers pile up while a look is under way."""

    def __init__(self) -> None:
        self.position = 0
        self.looks = 0

    async def look(self) -> int:
        self.looks += 1
        seen = self.position  # read when the look reaches the server
        await asyncio.sleep(0.005)
        return seen

    async def caller(self, shared: Coalesced[int], delay: float) -> tuple[int, int]:
        await asyncio.sleep(delay)
        self.position += 1  # a write committed just before this caller asked
        asked_at = self.position
        return asked_at, await asyncio.shield(shared.fresh())


async def test_every_caller_gets_a_look_begun_after_it_asked_and_looks_are_shared() -> None:
    primary = Positions()
    shared = Coalesced(primary.look)
    delays = [index * 0.0007 for index in range(60)]
    answers = await asyncio.gather(*(primary.caller(shared, delay) for delay in delays))
    assert all(seen >= asked_at for asked_at, seen in answers), answers
    # Sixty callers over about 40 ms of 5 ms looks: far fewer looks than callers.
    assert primary.looks <= len(delays) // 2


class Stale(Coalesced[int]):
    """Handing a caller the look already under way: what the check above must catch."""

    def fresh(self) -> asyncio.Future[int]:
        running = self._running
        if running is not None and not running.done():
            return running
        self._running = asyncio.ensure_future(self._look())
        return self._running


async def test_handing_out_the_look_under_way_is_caught() -> None:
    primary = Positions()
    shared = Stale(primary.look)
    answers = await asyncio.gather(*(primary.caller(shared, index * 0.0007) for index in range(60)))
    assert any(seen < asked_at for asked_at, seen in answers)
