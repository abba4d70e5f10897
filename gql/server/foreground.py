"""HTTP requests first: while any is in flight, WebSocket work of the process waits its turn.

One event loop serves both. A request suspends several times (its reads, its answer), and at
each suspension it waits for every other step that is ready; thousands of subscriptions sent
at once make that a long wait. So the steps of WebSocket work (each message a client sends,
each subscription's start) first take a turn here: at once while no request is in flight;
otherwise they wait until none is, and are let go a few at a time, so that a request that
comes in meanwhile waits behind a few steps, not all of them. However busy HTTP is, one
waiting step is let go every `least_every_s`, so that WebSocket work is slowed, never stopped.

A request holds WebSocket work back for `counts_for_s` at most. One that lasts longer is
waiting for its database or its client (a slow reader of a large answer, a costly query
running to its deadline), not for the event loop; it gains nothing from the wait, and a
client keeping such requests in flight would otherwise hold the process's WebSocket work at
the slowest pace for as long as they last.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

# Steps let go in one turn of the event loop while no request is in flight.
PER_TURN = 4
# However busy HTTP is, a waiting step goes at least this often.
LEAST_EVERY_S = 0.002
# A request holds WebSocket work back this long at most (a victim's p99 under a flood of
# subscriptions is under 40 ms).
COUNTS_FOR_S = 0.1


class Foreground:
    """Requests in flight, and the WebSocket steps waiting for none to be."""

    def __init__(
        self,
        per_turn: int | None = None,
        least_every_s: float | None = None,
        counts_for_s: float | None = None,
    ) -> None:
        self.per_turn = PER_TURN if per_turn is None else per_turn
        self.least_every_s = LEAST_EVERY_S if least_every_s is None else least_every_s
        self.counts_for_s = COUNTS_FOR_S if counts_for_s is None else counts_for_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._requests = 0
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._letting_go = False
        self._least: asyncio.TimerHandle | None = None

    @contextmanager
    def request(self) -> Iterator[None]:
        """Around an HTTP request: while it is in flight, for `counts_for_s` at most,
        WebSocket steps wait."""
        loop = self._bound()
        self._requests += 1
        counted = True

        def uncount() -> None:
            nonlocal counted
            if counted and self._loop is loop:
                counted = False
                self._requests -= 1
                if self._requests == 0 and self._waiting:
                    self._let_go_soon()

        lasted_too_long = loop.call_later(self.counts_for_s, uncount)
        try:
            yield
        finally:
            lasted_too_long.cancel()
            uncount()

    async def turn(self) -> None:
        """Return at once while no request is in flight and no step waits; otherwise wait
        for this step's turn."""
        loop = self._bound()
        if self._requests == 0 and not self._waiting:
            return
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiting.append(waiter)
        if self._requests == 0:
            self._let_go_soon()
        else:
            self._least_soon()
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._let_go_soon()  # its turn passes to the next
            raise

    def _bound(self) -> asyncio.AbstractEventLoop:
        """The running event loop. On another loop than before (a test's next one), nothing
        of the old one's state holds: its requests and waiting steps can never end there."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._loop = loop
            self._requests = 0
            self._waiting.clear()
            self._letting_go = False
            self._least = None
        return loop

    def _let_go_soon(self) -> None:
        if not self._letting_go:
            self._letting_go = True
            asyncio.get_running_loop().call_soon(self._let_go)

    def _let_go(self) -> None:
        if asyncio.get_running_loop() is not self._loop:
            return  # scheduled on a loop this has since left
        self._letting_go = False
        if self._requests:
            self._least_soon()
            return
        self._let_go_up_to(self.per_turn)
        if self._waiting:
            self._let_go_soon()

    def _let_go_least(self) -> None:
        if asyncio.get_running_loop() is not self._loop:
            return
        self._least = None
        self._let_go_up_to(1)
        if self._waiting and self._requests:
            self._least_soon()

    def _let_go_up_to(self, count: int) -> None:
        """The first `count` steps still waiting go; those cancelled meanwhile are dropped."""
        while self._waiting and count:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                count -= 1

    def _least_soon(self) -> None:
        if self._least is None:
            loop = asyncio.get_running_loop()
            self._least = loop.call_later(self.least_every_s, self._let_go_least)
