"""Growing delays between failed sign-ins to one email address, instead of a lock-out.

A lock-out would let anyone lock a victim out by failing on purpose; a delay only slows
guessing. After `free_failures` failures each further attempt waits twice as long as the
one before, up to `max_delay`, counted from the last failure; a success forgets them all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class SignInFailures:
    """The failed sign-ins to one email address not yet forgotten (count 0: none)."""

    email: str
    count: int
    last_failed_at: datetime | None


@dataclass(frozen=True, slots=True)
class SignInThrottle:
    free_failures: int = 5
    first_delay: timedelta = timedelta(seconds=1)
    max_delay: timedelta = timedelta(seconds=60)
    # Failures are forgotten (their rows pruned) this long after the last one; it is longer
    # than any delay, so a wait never outlives the failures it comes from.
    forget_after: timedelta = timedelta(hours=1)

    def delay(self, failures: int) -> timedelta:
        """How long after the last of `failures` failures the next attempt must wait."""
        beyond = failures - self.free_failures
        if beyond < 0:
            return timedelta(0)
        # In float seconds, which do not overflow where a timedelta would; then capped.
        seconds = self.first_delay.total_seconds() * 2.0 ** min(beyond, 1000)
        return min(timedelta(seconds=min(seconds, 1e9)), self.max_delay)

    def wait(self, failures: SignInFailures, now: datetime) -> timedelta:
        """How much longer the next attempt must wait: zero when it may go ahead."""
        if failures.count == 0 or failures.last_failed_at is None:
            return timedelta(0)
        return max(timedelta(0), failures.last_failed_at + self.delay(failures.count) - now)
