"""Run a use case again when the database undid it for a concurrent one."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from domain.errors import TransientConflict

T = TypeVar("T")

MAX_ATTEMPTS = 5
BASE_DELAY_S = 0.01


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
    runs = AsyncRetrying(
        retry=retry_if_exception_type(TransientConflict),
        stop=stop_after_attempt(attempts),
        wait=wait_random_exponential(multiplier=base_delay_s),
        reraise=True,
    )
    async for run in runs:
        with run:
            return await use_case()
    raise AssertionError("unreachable: the last run returns or raises")  # pragma: no cover
