"""Argon2id password hashing: off the event loop, a bounded number at once per process."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from functools import cached_property
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from domain.errors import HashingBusy

T = TypeVar("T")


class PasswordHashing:
    """Argon2id with the library's recommended costs unless told otherwise (tests go cheaper).

    Each hash takes a CPU core for its whole time, so at most `max_concurrent` run at once;
    a caller waits up to `wait_s` for a turn and is then refused with HashingBusy rather
    than queueing without bound behind an attacker's requests.
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
        self._turns = asyncio.Semaphore(max_concurrent)

    @cached_property
    def _hasher(self) -> PasswordHasher:
        return PasswordHasher(
            time_cost=self.time_cost, memory_cost=self.memory_cost_kib, parallelism=self.parallelism
        )

    @cached_property
    def _decoy(self) -> str:
        # Checked against when an email is unknown, so that both answers take the same time.
        return self._hasher.hash("not the password of anyone")

    async def hash(self, password: str) -> str:
        return await self._in_turn(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True when the password matches; a missing hash costs as much as a wrong password."""
        return await self._in_turn(self._verify, password_hash, password)

    def _verify(self, password_hash: str | None, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash or self._decoy, password) and bool(
                password_hash
            )
        except (VerificationError, InvalidHashError):
            return False

    async def _in_turn(self, work: Callable[..., T], *args: object) -> T:
        try:
            async with asyncio.timeout(self.wait_s):
                await self._turns.acquire()
        except TimeoutError:
            raise HashingBusy(max(1.0, math.ceil(self.wait_s))) from None
        # The turn ends when the thread does, even if the request that asked is cancelled.
        hashing = asyncio.ensure_future(asyncio.to_thread(work, *args))
        hashing.add_done_callback(lambda _: self._turns.release())
        return await asyncio.shield(hashing)
