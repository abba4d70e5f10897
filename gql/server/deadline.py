"""Time bounds on the work of one request: its deadline, and its client going away.

Past the deadline, or as soon as the client disconnects, the request's task is cancelled:
its database statement is cancelled on the server, its transaction rolls back, and its
connection goes back to the pool. A client still waiting gets a TIMEOUT error.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable

from starlette.types import Message, Receive


class Ending(enum.Enum):
    DONE = "done"
    TIMED_OUT = "timeout"
    DISCONNECTED = "disconnected"


class ClientWatch:
    """Reads the client's side of a request once its body is in, so that a disconnect is
    seen while the app works; the app, asking for more, gets that disconnect too."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self.gone = asyncio.Event()
        # Set as the answer's last part goes out: the server reports the end of a request
        # as a disconnect too, and that one is no client leaving.
        self.answered = False

    async def until_gone(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass
        if not self.answered:
            self.gone.set()

    async def after_body(self) -> Message:
        await self.gone.wait()
        return {"type": "http.disconnect"}


async def within_deadline(
    work: Callable[[], Awaitable[None]], watch: ClientWatch, timeout_s: float
) -> Ending:
    """Run the work until it is done, its time is up, or its client is gone."""
    try:
        async with asyncio.timeout(timeout_s) as bound:

            async def stop_when_gone() -> None:
                await watch.until_gone()
                if watch.gone.is_set():
                    # The client cannot read an answer any more: end the work at once.
                    bound.reschedule(asyncio.get_running_loop().time())

            watcher = asyncio.create_task(stop_when_gone())
            try:
                await work()
            finally:
                watcher.cancel()
    except TimeoutError:
        return Ending.DISCONNECTED if watch.gone.is_set() else Ending.TIMED_OUT
    return Ending.DONE
