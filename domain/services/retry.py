"""Run a use case again when the database undid it for a concurrent one."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from domain.errors import TransientConflict

T = TypeVar("T")

MAX_ATTEMPTS = 5
BASE_DELAY_S = 0.01
_jitter = random.SystemRandom()


async def retrying(
    use_case: Callable[[], Awaitable[T]],
    *,
    attempts: int = MAX_ATTEMPTS,
    base_delay_s: float = BASE_DELAY_S,
) -> T:
    """Up to `attempts` runs, each after a random wait that doubles its range every time.

    Each run is one unit of work that was rolled back whole, so running again is safe; the
    last TransientConflict propagates and reaches the client as an internal error.
    """
    for attempt in range(1, attempts + 1):
        try:
            return await use_case()
        except TransientConflict:
            if attempt == attempts:
                raise
            await asyncio.sleep(_jitter.uniform(0, base_delay_s * 2**attempt))
    raise AssertionError("unreachable")  # pragma: no cover
