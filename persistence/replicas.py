"""Reads on streaming standbys that are never older than what their reader has seen.

A request's reads go to a standby only if it has replayed the primary's WAL up to where the
primary stood when the request's reads began (its "floor"). Everything the user wrote, or
was shown by any bankql process, was committed before their request was sent, so it lies
below the floor: the standby's answer includes it. Otherwise the reads go to the primary.

The floor costs one tiny statement on the primary (no table is read); requests that want
one while a look is under way wait for the next look and share it, so a busy process sends
at most about one per round trip, however many reads it serves. A standby's replay position
only grows, so the highest one seen so far serves every floor at or below it without asking.

A standby that fails, or is not in recovery (say, promoted), is left alone for a while; one
too far behind is skipped at once; one a little behind is waited for briefly. Either way the
read goes to the primary, never to an error.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from persistence.database import begun, make_engine, make_session_factory

logger = logging.getLogger("bankql")

T = TypeVar("T")

# Connections each process keeps open to each standby.
REPLICA_POOL_SIZE = 5
# How long a read waits for a standby a little behind its floor before it goes to the
# primary, and how often it looks meanwhile.
CATCH_UP_WAIT_S = 0.05
CATCH_UP_LOOK_S = 0.002
# A standby further behind than this many bytes of WAL is not waited for.
MAX_LAG_BYTES = 16 * 1024 * 1024
# A standby that failed (or is not a standby) is left alone this long before it is tried again.
RETRY_AFTER_S = 5.0
# The longest one look at a standby's position may take; and the longest a new connection
# to a standby may take, so that a host that does not answer costs a read little.
LOOK_TIMEOUT_S = 1.0
CONNECT_TIMEOUT_S = 2

_PRIMARY_POSITION = text("SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn")
_REPLAYED = text("SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn() - '0/0'::pg_lsn")

PRIMARY = "primary"


class Coalesced(Generic[T]):
    """A value looked up for many callers at once, each getting one looked up after it asked.

    A caller that asks while a look is under way (which may have begun before it asked)
    waits for the next look, which every caller asking meanwhile shares."""

    def __init__(self, look: Callable[[], Awaitable[T]]) -> None:
        self._look = look
        self._running: asyncio.Future[T] | None = None
        self._next: asyncio.Future[T] | None = None

    def fresh(self) -> asyncio.Future[T]:
        """A look begun after this call; await it through asyncio.shield, as others share it."""
        if self._next is not None:
            return self._next
        running = self._running
        if running is None or running.done():
            self._running = _retrieved(asyncio.ensure_future(self._look()))
            return self._running
        self._next = _retrieved(asyncio.ensure_future(self._after(running)))
        return self._next

    async def _after(self, running: asyncio.Future[T]) -> T:
        await asyncio.wait([running])
        self._running, self._next = self._next, None
        return await self._look()


def _retrieved(future: asyncio.Future[T]) -> asyncio.Future[T]:
    """A shared look whose callers may all have stopped waiting (their read went to the
    primary): its failure is taken here, not reported as never retrieved."""
    future.add_done_callback(lambda done: done.cancelled() or done.exception())
    return future


@dataclass
class Replica:
    """One standby: its pool, and the furthest it has been seen to have replayed."""

    name: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    replayed: int = -1
    resting_until: float = 0.0
    _look: Coalesced[int] = field(init=False)

    def __post_init__(self) -> None:
        self._look = Coalesced(self._replay_position)

    async def _replay_position(self) -> int:
        async with self.engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            row = (await connection.execute(_REPLAYED)).one()
        in_recovery, position = row
        if not in_recovery or position is None:
            raise NotAStandby(f"{self.name} is not a streaming standby")
        self.replayed = max(self.replayed, int(position))
        return self.replayed

    async def caught_up_to(self, floor: int) -> bool:
        """Whether it has replayed up to `floor`; asks the standby only when needed."""
        if self.replayed >= floor:
            return True
        await asyncio.wait_for(asyncio.shield(self._look.fresh()), LOOK_TIMEOUT_S)
        return self.replayed >= floor

    def busy(self) -> bool:
        pool = self.engine.pool
        checked_out: int = pool.checkedout()  # type: ignore[attr-defined]
        size: int = pool.size()  # type: ignore[attr-defined]
        return checked_out >= size

    def resting(self, now: float) -> bool:
        return now < self.resting_until

    def rest(self, reason: object) -> None:
        if not self.resting(time.monotonic()):
            logger.warning("reads leave %s for %.0f s: %s", self.name, RETRY_AFTER_S, reason)
        self.resting_until = time.monotonic() + RETRY_AFTER_S
        # What answers at this URL next may be another server (rebuilt, restarted from an
        # older backup): nothing seen of this one vouches for it.
        self.replayed = -1


class NotAStandby(Exception):
    """A replica URL leads to a server that is not replaying a primary's WAL."""


class ReadRouter:
    """Where a request's reads go: a standby that has caught up with them, else the primary.

    `served` counts the read transactions each database took, by name."""

    def __init__(
        self,
        primary: AsyncEngine,
        primary_sessions: async_sessionmaker[AsyncSession],
        replicas: list[Replica],
    ) -> None:
        self.primary = primary
        self.primary_sessions = primary_sessions
        self.replicas = replicas
        self.served: Counter[str] = Counter()
        self._floor: Coalesced[int] = Coalesced(self._primary_position)
        self._turns = itertools.cycle(range(len(replicas)))

    async def _primary_position(self) -> int:
        async with self.primary.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            position = (await connection.execute(_PRIMARY_POSITION)).scalar_one()
        return int(position)

    async def open_read(self, options: dict[str, Any]) -> AsyncSession:
        """A session whose transaction (begun with `options`) reads a state no older than
        the primary's when this was called."""
        replica = await self._choose()
        # Looked at again: reads that arrived together all saw it with a connection free
        # before choosing it, which awaits the primary's position.
        if replica is not None and not replica.busy():
            try:
                session = await begun(replica.sessions(), options)
            except Exception as error:  # any failure to reach it: the primary answers instead
                replica.rest(error)
            else:
                self.served[replica.name] += 1
                return session
        session = await begun(self.primary_sessions(), options)
        self.served[PRIMARY] += 1
        return session

    async def _choose(self) -> Replica | None:
        now = time.monotonic()
        # A standby whose connections are all in use is passed over, not queued for: the
        # primary's pool is there for reads too.
        awake = [
            replica
            for replica in self._in_turn()
            if not replica.resting(now) and not replica.busy()
        ]
        if not awake:
            return None
        try:
            floor = await asyncio.shield(self._floor.fresh())
        except Exception:  # the primary answers, or fails, as it would without replicas
            return None
        deadline = now + CATCH_UP_WAIT_S
        while True:
            waiting = []
            for replica in awake:
                try:
                    if await replica.caught_up_to(floor):
                        return replica
                except Exception as error:  # down, not a standby, or too slow to answer
                    replica.rest(error)
                    continue
                if floor - replica.replayed <= MAX_LAG_BYTES:
                    waiting.append(replica)
            if not waiting or time.monotonic() >= deadline:
                return None
            awake = waiting
            await asyncio.sleep(CATCH_UP_LOOK_S)

    def _in_turn(self) -> list[Replica]:
        """Every replica, starting from the next one in turn, to spread the reads."""
        first = next(self._turns)
        return self.replicas[first:] + self.replicas[:first]

    async def dispose(self) -> None:
        for replica in self.replicas:
            await replica.engine.dispose()


def replica_engine(url: str, **options: Any) -> AsyncEngine:
    """A small pool to one standby, whose new connections give up quickly."""
    parsed = make_url(url)
    if "connect_timeout" not in parsed.query:
        parsed = parsed.update_query_dict({"connect_timeout": str(CONNECT_TIMEOUT_S)})
    return make_engine(
        parsed.render_as_string(hide_password=False), pool_size=REPLICA_POOL_SIZE, **options
    )


def read_router(
    primary: AsyncEngine,
    primary_sessions: async_sessionmaker[AsyncSession],
    urls: list[str],
    **engine_options: Any,
) -> ReadRouter:
    replicas = []
    for number, url in enumerate(urls, start=1):
        engine = replica_engine(url, **engine_options)
        where = make_url(url)
        name = f"replica {number} ({where.host}:{where.port or 5432})"
        replicas.append(Replica(name, engine, make_session_factory(engine)))
    return ReadRouter(primary, primary_sessions, replicas)
