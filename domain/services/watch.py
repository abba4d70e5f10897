"""Live statement lines: one read per account with news, handed to every stream of it."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from domain.errors import (
    AccountNotFound,
    EntryNotFound,
    StreamFellBehind,
    StreamLimitReached,
)
from domain.ledger import Entry, EntryId
from domain.model import Account, AccountId, Actor, SessionId
from domain.ports import EntryNews, UnitOfWorkFactory

logger = logging.getLogger("bankql.watch")

Sleep = Callable[[float], Awaitable[None]]

# Awaits what it is given (news for a stream), bounded as the caller sees fit.
Waiting = Callable[[Awaitable[object]], Awaitable[None]]

DEFAULT_QUEUE_LIMIT = 1000
DEFAULT_BATCH = 100
# Most streams one start-up read serves.
START_BATCH = 500
# How long a start-up read waits for more starting streams to join it.
START_GATHER_S = 0.01


async def _just_wait(news: Awaitable[object]) -> None:
    await news


class _Stream:
    """What one subscription has been handed and not yet taken."""

    def __init__(self) -> None:
        self.waiting: deque[Entry] = deque()
        self.arrived = asyncio.Event()
        self.fell_behind = False


@dataclass(frozen=True)
class _Found:
    """What the start-up read found for one starting stream."""

    account: Account | None
    newest: EntryId | None
    # The account of the line to resume after, if that line exists.
    entry_account: AccountId | None


class _Account:
    """The streams of one account, the newest line handed to them, and the account itself,
    whose owner decides who may join (an account never changes hands)."""

    def __init__(self, account: Account, last: EntryId | None) -> None:
        self.account = account
        self.last = last
        self.streams: set[_Stream] = set()


class EntryWatch:
    """Reads each account's new lines once, and hands them to every stream of the account.

    News comes two ways. Storage that can announce committed lines (`news`) wakes the watch
    as each commits; as announcements can be lost, the watch also looks every `interval_s`
    at the newest line of every watched account in one query, and at once whenever the
    announcements (re)start. Without announcements that look is all there is, so it is
    made often. Either way an account with news is read once, after the newest line its
    streams were handed, and each stream gets the lines in their order.

    A look and its reads are given up after `read_timeout_s` and made again later.
    At most `max_streams` streams run at once; one more is refused.
    A stream whose client has still not taken `queue_limit` lines when the next read
    brings more ends with StreamFellBehind, and the others go on: a stream holds at most
    that many lines plus one read's (`batch`).
    """

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        interval_s: float,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        *,
        news: EntryNews | None = None,
        queue_limit: int = DEFAULT_QUEUE_LIMIT,
        batch: int = DEFAULT_BATCH,
        read_timeout_s: float | None = None,
        max_streams: int | None = None,
    ) -> None:
        self._uow = uow
        self.interval_s = interval_s
        self._sleep = sleep
        self._news = news
        self.queue_limit = queue_limit
        self._batch = batch
        self._read_timeout_s = read_timeout_s
        self.max_streams = max_streams
        self.streams = 0
        self._accounts: dict[AccountId, _Account] = {}
        self._with_news: set[AccountId] = set()
        self._look_at_all = False
        self._woken = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listening: asyncio.Task[None] | None = None
        self._starting: list[tuple[AccountId, EntryId | None, asyncio.Future[_Found]]] = []
        self._start_up: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def pushed(self) -> bool:
        """Whether storage announces new lines (else the look every interval is all)."""
        return self._news is not None

    async def lines(
        self,
        *,
        actor: Actor,
        account_id: AccountId,
        after: EntryId | None = None,
        waiting: Waiting = _just_wait,
    ) -> AsyncGenerator[Entry, None]:
        """The account's lines committed from now on, or after the line `after`, oldest
        first, none skipped or repeated, for as long as the caller reads. `waiting` awaits
        the news between lines (the caller's bound on how long that may take)."""
        self._on_running_loop()
        if self.max_streams is not None and self.streams >= self.max_streams:
            raise StreamLimitReached(self.max_streams)
        self.streams += 1
        lines = self._lines(actor, account_id, after, waiting)
        try:
            async for entry in lines:
                yield entry
        finally:
            self.streams -= 1
            await lines.aclose()  # leaves the account's readers now, not when collected

    async def _lines(
        self, actor: Actor, account_id: AccountId, after: EntryId | None, waiting: Waiting
    ) -> AsyncGenerator[Entry, None]:
        # Joining an account that is watched already costs nothing. The first stream of an
        # account, and a resumed one, wait for the next start-up read, one query of each
        # kind for every stream starting meanwhile.
        known = self._accounts.get(account_id)
        account = known.account if known is not None else None
        newest: EntryId | None = None
        if account is None or after is not None:
            found = await self._found(account_id, after)
            account = account or found.account
            newest = found.newest
            if account is None or not actor.can_read(account):
                raise AccountNotFound(account_id)
            if after is not None and found.entry_account != account_id:
                raise EntryNotFound(after)
        if account is None or not actor.can_read(account):
            raise AccountNotFound(account_id)
        # From here until the first await: the stream joins with the account's newest line
        # handed out; every later line comes to it, and a resumed stream reads the rest.
        watched = self._accounts.get(account_id)
        if watched is None:
            watched = self._accounts[account_id] = _Account(account, newest)
        stream = _Stream()
        watched.streams.add(stream)
        self._start()
        joined_at = watched.last
        sent = after if after is not None else joined_at
        try:
            while after is not None and joined_at is not None and (sent or 0) < joined_at:
                async with self._uow(read_only=True) as uow:
                    caught_up = await uow.transactions.entries_after(account_id, sent, self._batch)
                if not caught_up:
                    break
                for entry in caught_up:
                    sent = entry.id
                    yield entry
            while True:
                while not stream.waiting:
                    if stream.fell_behind:
                        raise StreamFellBehind(self.queue_limit)
                    stream.arrived.clear()
                    await waiting(stream.arrived.wait())
                entry = stream.waiting.popleft()
                if sent is not None and entry.id <= sent:  # read while catching up
                    continue
                sent = entry.id
                yield entry
        finally:
            watched.streams.discard(stream)
            if not watched.streams and self._accounts.get(account_id) is watched:
                del self._accounts[account_id]
                self._with_news.discard(account_id)

    def _on_running_loop(self) -> None:
        """Start afresh on a new event loop: what a finished one left is of no use (a
        process runs one loop; a test may run one per connection)."""
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return
        self._loop = loop
        self._woken = asyncio.Event()
        self._task = self._listening = self._start_up = None
        self._starting = []

    def _found(self, account_id: AccountId, after: EntryId | None) -> asyncio.Future[_Found]:
        """What a starting stream needs to know, from the next start-up read."""
        future: asyncio.Future[_Found] = asyncio.get_running_loop().create_future()
        self._starting.append((account_id, after, future))
        if self._start_up is None or self._start_up.done():
            self._start_up = asyncio.create_task(self._read_for_starts())
        return future

    async def _read_for_starts(self) -> None:
        while self._starting:
            if len(self._starting) < START_BATCH:
                # The streams starting in the next moment join in: under a flood of starts
                # one read then serves dozens, and a lone start waits no more than this.
                await asyncio.sleep(START_GATHER_S)
            starting = self._starting[:START_BATCH]
            del self._starting[:START_BATCH]
            # An account watched already is known (it never changes hands), and so is the
            # newest line its streams were handed: only a resumed stream's line is read.
            watched = {a: self._accounts[a] for a, _, _ in starting if a in self._accounts}
            unknown = list({account_id for account_id, _, _ in starting} - watched.keys())
            after = [entry_id for _, entry_id, _ in starting if entry_id is not None]
            accounts: dict[AccountId, Account] = {}
            newest: dict[AccountId, EntryId] = {}
            owners: dict[EntryId, AccountId] = {}
            try:
                if unknown or after:
                    async with self._uow(read_only=True) as uow:
                        accounts = {a.id: a for a in await uow.accounts.get_many(unknown)}
                        newest = await uow.transactions.newest_entry_ids(unknown)
                        owners = await uow.transactions.entry_accounts(after)
            except Exception as error:
                for _, _, future in starting:
                    if not future.done():
                        future.set_exception(error)
                continue
            for account_id, known in watched.items():
                accounts[account_id] = known.account
                if known.last is not None:
                    newest[account_id] = known.last
            for account_id, entry_id, future in starting:
                if not future.done():
                    owner = owners.get(entry_id) if entry_id is not None else None
                    future.set_result(
                        _Found(accounts.get(account_id), newest.get(account_id), owner)
                    )

    def heard(self, account_ids: Sequence[AccountId] | None) -> None:
        """News from storage: these accounts have new lines, or (None) any may have."""
        if account_ids is None:
            self._look_at_all = True
        else:
            self._with_news.update(a for a in account_ids if a in self._accounts)
        self._woken.set()

    def _start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._watch_while_watched())
        if self._news is not None and (self._listening is None or self._listening.done()):
            self._listening = asyncio.create_task(self._listen(self._news))

    async def _listen(self, news: EntryNews) -> None:
        try:
            await news.listen(self.heard)
        except Exception:  # the look every interval carries on without announcements
            logger.warning("stopped listening for new statement lines", exc_info=True)

    async def _watch_while_watched(self) -> None:
        # An account's first read happens at once: its newest line may be older than the
        # moment its first stream joined, and the stream must not wait for the next look.
        self._look_at_all = True
        try:
            while self._accounts:
                idle = not self._woken.is_set() and not self._look_at_all
                if idle and await self._wait_for_news():
                    self._look_at_all = True
                self._woken.clear()
                try:
                    # A read that hangs would hold up every stream: it is given up, and
                    # made again after the pause.
                    async with asyncio.timeout(self._read_timeout_s):
                        await self._look()
                except Exception:  # the database may be away for a while; readers wait longer
                    logger.warning("could not look for new statement lines", exc_info=True)
                    self._look_at_all = True
                    await self._pause()
        finally:
            self._task = None
            if self._listening is not None:
                self._listening.cancel()
                self._listening = None

    async def _wait_for_news(self) -> bool:
        """Wait for an announcement or the interval, whichever comes first; True for the
        interval, when every watched account is to be looked at."""
        if self._sleep is not None:  # a test's clock: every tick is a look at all
            sleeping = asyncio.ensure_future(self._sleep(self.interval_s))
            woken = asyncio.ensure_future(self._woken.wait())
            done, _ = await asyncio.wait({sleeping, woken}, return_when=asyncio.FIRST_COMPLETED)
            sleeping.cancel()
            woken.cancel()
            return sleeping in done
        try:
            async with asyncio.timeout(self.interval_s):
                await self._woken.wait()
        except TimeoutError:
            return True
        return False

    async def _pause(self) -> None:
        if self._sleep is not None:
            await self._sleep(self.interval_s)
        else:
            await asyncio.sleep(self.interval_s)

    async def _look(self) -> None:
        if self._look_at_all:
            self._look_at_all = False
            watched = list(self._accounts)
            if watched:
                async with self._uow(read_only=True) as uow:
                    newest = await uow.transactions.newest_entry_ids(watched)
                for account_id, latest in newest.items():
                    account = self._accounts.get(account_id)
                    if account is not None and (account.last is None or latest > account.last):
                        self._with_news.add(account_id)
        with_news, self._with_news = self._with_news, set()
        results = await asyncio.gather(
            *(self._read(account_id) for account_id in with_news), return_exceptions=True
        )
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            raise failed[0]

    async def _read(self, account_id: AccountId) -> None:
        account = self._accounts.get(account_id)
        if account is None:
            return
        try:
            async with self._uow(read_only=True) as uow:
                entries = await uow.transactions.entries_after(
                    account_id, account.last, self._batch
                )
        except BaseException:
            self._with_news.add(account_id)  # to be read again
            raise
        # Only this task reads an account, so no other read moved `last` meanwhile.
        fresh = [e for e in entries if account.last is None or e.id > account.last]
        if fresh:
            account.last = fresh[-1].id
            for stream in list(account.streams):
                self._hand(account, stream, fresh)
        if len(entries) == self._batch:  # there may be more
            self._with_news.add(account_id)
            self._woken.set()

    def _hand(self, account: _Account, stream: _Stream, entries: list[Entry]) -> None:
        # A read's lines are handed at once, before any reader can take one, so the limit
        # is on what is still waiting from earlier reads: a reader that keeps up is never
        # ended because many lines committed between two reads.
        if len(stream.waiting) >= self.queue_limit:
            stream.fell_behind = True
            stream.waiting.clear()
            account.streams.discard(stream)
        else:
            stream.waiting.extend(entries)
        stream.arrived.set()


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
