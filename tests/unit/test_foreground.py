"""HTTP requests first: WebSocket steps wait while a request is in flight, go a few at a time
once none is, and are never stopped however busy HTTP is, nor held by a request that lasts
(gql/server/foreground.py)."""

from __future__ import annotations

import asyncio

import pytest

from gql.server.foreground import Foreground

A_LONG_TIME_S = 60.0


async def _turns(foreground: Foreground, count: int) -> tuple[list[int], list[asyncio.Task[None]]]:
    """`count` steps asking for their turn; the list of those that got it, in order."""
    went: list[int] = []

    async def step(number: int) -> None:
        await foreground.turn()
        went.append(number)

    tasks = [asyncio.create_task(step(number)) for number in range(count)]
    await asyncio.sleep(0)  # every step asks
    return went, tasks


async def _loop_turns(count: int) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


async def test_a_step_goes_at_once_while_no_request_is_in_flight() -> None:
    foreground = Foreground(least_every_s=A_LONG_TIME_S, counts_for_s=A_LONG_TIME_S)
    went, tasks = await _turns(foreground, 1)
    assert went == [0]
    await asyncio.gather(*tasks)


async def test_steps_wait_while_a_request_is_in_flight_and_go_in_order_after_it() -> None:
    foreground = Foreground(least_every_s=A_LONG_TIME_S, counts_for_s=A_LONG_TIME_S)
    with foreground.request():
        went, tasks = await _turns(foreground, 3)
        await _loop_turns(20)
        assert went == []  # HTTP first
    await asyncio.wait_for(asyncio.gather(*tasks), 1)
    assert went == [0, 1, 2]


async def test_a_step_asking_after_others_waits_behind_them() -> None:
    foreground = Foreground(least_every_s=A_LONG_TIME_S, counts_for_s=A_LONG_TIME_S)
    with foreground.request():
        went, tasks = await _turns(foreground, 2)
    # No request in flight now, but two steps wait: a newcomer does not jump the queue.
    late = asyncio.create_task(foreground.turn())
    await asyncio.wait_for(asyncio.gather(*tasks, late), 1)
    assert went == [0, 1]


async def test_after_a_request_the_waiting_steps_go_a_few_per_turn_of_the_loop() -> None:
    foreground = Foreground(per_turn=4, least_every_s=A_LONG_TIME_S, counts_for_s=A_LONG_TIME_S)
    with foreground.request():
        went, tasks = await _turns(foreground, 12)
    # Let go in one turn of the loop, and run in the next: never all twelve at once.
    seen = []
    for _ in range(8):
        await asyncio.sleep(0)
        seen.append(len(went))
    assert seen[-1] == 12
    assert all(later - earlier <= 4 for earlier, later in zip([0, *seen], seen, strict=False))
    await asyncio.gather(*tasks)


async def test_a_request_that_comes_in_stops_the_letting_go() -> None:
    foreground = Foreground(per_turn=2, least_every_s=A_LONG_TIME_S, counts_for_s=A_LONG_TIME_S)
    with foreground.request():
        went, tasks = await _turns(foreground, 10)
    await _loop_turns(2)
    with foreground.request():
        gone = len(went)
        await _loop_turns(20)
        # Those already let go still run; no more are let go.
        assert len(went) <= gone + 2 < 10
    await asyncio.wait_for(asyncio.gather(*tasks), 1)


async def test_however_busy_http_is_a_waiting_step_goes_now_and_then() -> None:
    foreground = Foreground(least_every_s=0.01, counts_for_s=A_LONG_TIME_S)
    with foreground.request():  # a request that does not end while the steps wait
        went, tasks = await _turns(foreground, 3)
        await asyncio.wait_for(asyncio.gather(*tasks), 2)
        assert went == [0, 1, 2]


async def test_a_cancelled_step_passes_its_turn_on() -> None:
    foreground = Foreground(per_turn=1, least_every_s=A_LONG_TIME_S, counts_for_s=A_LONG_TIME_S)
    with foreground.request():
        went, tasks = await _turns(foreground, 2)
    # The first is let go, then cancelled before it runs: the second still goes.
    await asyncio.sleep(0)
    tasks[0].cancel()
    await asyncio.wait_for(tasks[1], 1)
    assert went == [1]
    with pytest.raises(asyncio.CancelledError):
        await tasks[0]


async def test_a_request_that_lasts_holds_steps_back_for_a_while_at_most() -> None:
    # Waiting for its database or its client, not for the loop: the steps go meanwhile.
    foreground = Foreground(least_every_s=A_LONG_TIME_S, counts_for_s=0.05)
    with foreground.request():
        went, tasks = await _turns(foreground, 3)
        await _loop_turns(20)
        assert went == []  # held back at first
        await asyncio.wait_for(asyncio.gather(*tasks), 2)
        assert went == [0, 1, 2]
        # Past its while, the request no longer counts: a new step goes at once.
        late, more = await _turns(foreground, 1)
        assert late == [0]
    await asyncio.gather(*more)
    with foreground.request():  # a request that ends early counts only once
        pass
    with foreground.request():
        went, tasks = await _turns(foreground, 1)
        assert went == []
    await asyncio.wait_for(asyncio.gather(*tasks), 1)


def test_a_new_event_loop_is_not_held_by_what_the_old_one_left() -> None:
    foreground = Foreground(least_every_s=A_LONG_TIME_S, counts_for_s=A_LONG_TIME_S)
    left: list[object] = []

    async def left_in_flight() -> None:
        in_flight = foreground.request()
        in_flight.__enter__()  # a request the old loop never ends
        left.extend([in_flight, asyncio.create_task(foreground.turn())])
        await asyncio.sleep(0)

    asyncio.run(left_in_flight())  # the loop ends with a request in flight and a step waiting

    async def on_a_new_loop() -> list[int]:
        went, tasks = await _turns(foreground, 2)
        await asyncio.wait_for(asyncio.gather(*tasks), 1)
        return went

    assert asyncio.run(on_a_new_loop()) == [0, 1]
