"""Argon2id password hashing: off the event loop, a bounded number at once per process."""

from __future__ import annotations

import asyncio
import math
import os
import sys
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import cache, cached_property
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from domain.errors import HashingBusy

T = TypeVar("T")
# How much less CPU priority a hashing thread has than the event loop's (a nice increment).
HASHING_NICENESS = 10
LOWEST_PRIORITY = 19


def _yield_to_the_event_loop() -> None:
    """Lower this hashing thread's priority (and that of the lane threads it starts), so that
    a busy core serves requests first: hashes wait, queries do not. Linux sets priorities
    per thread; elsewhere the call would slow the whole process, so it is left out."""
    if sys.platform == "linux":
        thread = threading.get_native_id()
        niceness = os.getpriority(os.PRIO_PROCESS, thread) + HASHING_NICENESS
        os.setpriority(os.PRIO_PROCESS, thread, min(niceness, LOWEST_PRIORITY))


@cache
def hashing_threads(workers: int) -> ThreadPoolExecutor:
    """The process's hashing threads, made on first use and kept for its life: a thread that
    ends takes state with it that the runtime must tear down (greenlet's, under SQLAlchemy's
    asyncio layer), and threads made and ended with every app would do that again and again."""
    return ThreadPoolExecutor(
        max_workers=workers,
        thread_name_prefix="bankql-hashing",
        initializer=_yield_to_the_event_loop,
    )


class PasswordHashing:
    """Argon2id with the library's recommended costs unless told otherwise (tests go cheaper).

    Each hash takes a CPU core for its whole time, so at most `max_concurrent` run at once;
    a caller waits up to `wait_s` for a turn and is then refused with HashingBusy rather
    than queueing without bound behind an attacker's requests. The hashing threads run at
    a lower priority than the event loop, so that hashes never starve the requests.
    """

    def __init__(
        self,
        time_cost: int = 3,
        memory_cost_kib: int = 65536,
        parallelism: int = 4,
        *,
        max_concurrent: int = 1,
        wait_s: float = 2.0,
    ) -> None:
        self.time_cost = time_cost
        self.memory_cost_kib = memory_cost_kib
        self.parallelism = parallelism
        self.wait_s = wait_s
        self.max_concurrent = max_concurrent
        self._turns = asyncio.Semaphore(max_concurrent)

    @property
    def _threads(self) -> ThreadPoolExecutor:
        return hashing_threads(self.max_concurrent)

    @cached_property
    def _hasher(self) -> PasswordHasher:
        return PasswordHasher(
            time_cost=self.time_cost, memory_cost=self.memory_cost_kib, parallelism=self.parallelism
        )

    @cached_property
    def _decoy(self) -> str:
        # Checked against when an email is unknown, so that both answers take the same time.
        return self._hasher.hash("not the password of anyone")

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """One of the process's hashing turns, waited for at most wait_s."""
        try:
            async with asyncio.timeout(self.wait_s):
                await self._turns.acquire()
        except TimeoutError:
            raise HashingBusy(max(1.0, math.ceil(self.wait_s))) from None
        try:
            yield
        finally:
            self._turns.release()

    async def hash(self, password: str) -> str:
        return await self._run(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True when the password matches; a missing hash costs as much as a wrong password."""
        return await self._run(self._verify, password_hash, password)

    def _verify(self, password_hash: str | None, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash or self._decoy, password) and bool(
                password_hash
            )
        except (VerificationError, InvalidHashError):
            return False

    async def _run(self, work: Callable[..., T], *args: object) -> T:
        # The pool has as many threads as there are turns, so that even the work of a
        # cancelled request, which gave its turn back, never adds a hash beyond the bound.
        return await asyncio.get_running_loop().run_in_executor(self._threads, work, *args)
