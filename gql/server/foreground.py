"""HTTP requests first: while any is in flight, WebSocket work of the process waits its turn.

One event loop serves both. A request suspends several times (its reads, its answer), and at
each suspension it waits for every other step that is ready; thousands of subscriptions sent
at once make that a long wait. So the steps of WebSocket work (each message a client sends,
each subscription's start) first take a turn here: at once while no request is in flight;
otherwise they wait until none is, and are let go a few at a time, so that a request that
comes in meanwhile waits behind a few steps, not all of them. However busy HTTP is, one
waiting step is let go every `least_every_s`, so that WebSocket work is slowed, never stopped.
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


class Foreground:
    """Requests in flight, and the WebSocket steps waiting for none to be."""

    def __init__(self, per_turn: int | None = None, least_every_s: float | None = None) -> None:
        self.per_turn = PER_TURN if per_turn is None else per_turn
        self.least_every_s = LEAST_EVERY_S if least_every_s is None else least_every_s
        self._requests = 0
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._letting_go = False
        self._least: asyncio.TimerHandle | None = None

    @contextmanager
    def request(self) -> Iterator[None]:
        """Around an HTTP request: while it is in flight, WebSocket steps wait."""
        self._requests += 1
        try:
            yield
        finally:
            self._requests -= 1
            if self._requests == 0 and self._waiting:
                self._let_go_soon()

    async def turn(self) -> None:
        """Return at once while no request is in flight and no step waits; otherwise wait
        for this step's turn."""
        if self._requests == 0 and not self._waiting:
            return
        loop = asyncio.get_running_loop()
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

    def _let_go_soon(self) -> None:
        if not self._letting_go:
            self._letting_go = True
            asyncio.get_running_loop().call_soon(self._let_go)

    def _let_go(self) -> None:
        self._letting_go = False
        if self._requests:
            self._least_soon()
            return
        self._let_go_up_to(self.per_turn)
        if self._waiting:
            self._let_go_soon()

    def _let_go_least(self) -> None:
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
