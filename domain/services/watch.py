"""One look for new statement lines per interval, shared by every subscription of a process."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from domain.ledger import EntryId
from domain.model import AccountId, SessionId
from domain.ports import UnitOfWorkFactory

logger = logging.getLogger("bankql.watch")

Sleep = Callable[[float], Awaitable[None]]


class EntryWatch:
    """Wakes the readers of an account when its newest line changes.

    However many subscriptions a process holds, it asks the database one question per
    interval: the newest line of each watched account. An account's lines are numbered in
    commit order, so a newer newest line means lines were committed, whichever process
    wrote them. A woken reader then fetches what it has not seen. An account's first look
    wakes its readers too, so that nothing committed just before the watch began is missed.
    """

    def __init__(self, uow: UnitOfWorkFactory, interval_s: float, sleep: Sleep = asyncio.sleep):
        self._uow = uow
        self.interval_s = interval_s
        self._sleep = sleep
        self._readers: dict[AccountId, set[asyncio.Event]] = {}
        self._newest: dict[AccountId, EntryId | None] = {}
        self._task: asyncio.Task[None] | None = None

    @asynccontextmanager
    async def watching(self, account_id: AccountId) -> AsyncIterator[Callable[[], Awaitable[None]]]:
        """A wait() that returns once the account may have new lines, for as long as the
        block lasts."""
        woken = asyncio.Event()
        self._readers.setdefault(account_id, set()).add(woken)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._look_until_unwatched())

        async def wait() -> None:
            await woken.wait()
            woken.clear()

        try:
            yield wait
        finally:
            readers = self._readers[account_id]
            readers.discard(woken)
            if not readers:
                del self._readers[account_id]
                self._newest.pop(account_id, None)

    async def _look_until_unwatched(self) -> None:
        while self._readers:
            await self._sleep(self.interval_s)
            try:
                await self._look()
            except Exception:  # the database may be away for a while; readers just wait longer
                logger.warning("could not look for new statement lines", exc_info=True)

    async def _look(self) -> None:
        watched = list(self._readers)
        if not watched:
            return
        async with self._uow(read_only=True) as uow:
            newest = await uow.transactions.newest_entry_ids(watched)
        for account_id in watched:
            if account_id not in self._readers:  # unwatched while the database answered
                continue
            latest = newest.get(account_id)
            if account_id not in self._newest or self._newest[account_id] != latest:
                self._newest[account_id] = latest
                for woken in self._readers.get(account_id, ()):
                    woken.set()


class SessionWatch:
    """Tells the streams of a session that it ended, within one interval of its end.

    Like EntryWatch, one question per interval serves every stream of a process: which of
    the watched sessions are still live. Whichever process ended a session, its streams
    here learn of it at the next look.
    """

    def __init__(
        self,
        live: Callable[[list[SessionId]], Awaitable[set[SessionId]]],
        interval_s: float,
        sleep: Sleep = asyncio.sleep,
    ):
        self._live = live
        self.interval_s = interval_s
        self._sleep = sleep
        self._watchers: dict[SessionId, set[asyncio.Event]] = {}
        self._task: asyncio.Task[None] | None = None

    @asynccontextmanager
    async def watching(self, session_id: SessionId) -> AsyncIterator[asyncio.Event]:
        """An event set once the session has ended, for as long as the block lasts."""
        ended = asyncio.Event()
        self._watchers.setdefault(session_id, set()).add(ended)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._look_until_unwatched())
        try:
            yield ended
        finally:
            watchers = self._watchers[session_id]
            watchers.discard(ended)
            if not watchers:
                del self._watchers[session_id]

    async def _look_until_unwatched(self) -> None:
        while self._watchers:
            await self._sleep(self.interval_s)
            try:
                await self._look()
            except Exception:  # the database may be away for a while; streams go on meanwhile
                logger.warning("could not look for ended sessions", exc_info=True)

    async def _look(self) -> None:
        watched = list(self._watchers)
        if not watched:
            return
        live = await self._live(watched)
        for session_id in watched:
            if session_id not in live:
                for ended in self._watchers.get(session_id, ()):
                    ended.set()
