"""Limits that keep one client from slowing the bank for everyone else.

Request rates are token buckets per signed-in user, and per client address for requests
without a valid token. A request takes one token, and more for each parse and validation of
a document it causes (gql/schema/documents.py): a large new document costs a process far
more than a request for one it remembers. They live in each process's memory: a bucket in
the database would
cost every request a round trip. WebSocket connections are counted per user and per process.
Failed sign-ins per email address are the exception: they are kept in the database (see
domain/throttle.py), so that every process applies the same delay.
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from graphql import (
    GraphQLError,
)
from starlette.responses import JSONResponse, Response

from domain.model import UserId
from gql.schema.top_level_errors import RateLimited, retry_after_seconds

# Buckets one process remembers per kind of key; the least recently seen goes first, so
# memory stays bounded however many addresses a client sprays from. A forgotten key starts
# again with a full bucket, which is what a new address would get anyway.
MAX_TRACKED_KEYS = 100_000
RATE_LIMITED_MESSAGE = "Too many requests: slow down and try again after retryAfter seconds."
USER_CONNECTIONS_CLOSE = (4429, "too many connections for this user")
ADDRESS_CONNECTIONS_CLOSE = (4429, "too many connections without a sign-in from this address")
OPENING_CONNECTIONS_CLOSE = (4429, "too many connections opening from this address")
PROCESS_CONNECTIONS_CLOSE = (1013, "too many connections, try again later")


@dataclass
class TokenBucket:
    """`burst` requests at once, then `rate` a second."""

    rate: float
    burst: int
    tokens: float
    updated: float

    def take(self, now: float) -> float:
        """Zero when a request may go ahead (and uses a token), else seconds until it may."""
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate

    def charge(self, units: float) -> None:
        """Take `units` more for work a request brought beyond its own: the bucket may owe
        them, down to a whole burst, and the next requests wait until it is paid back."""
        self.tokens = max(-float(self.burst), self.tokens - units)


class RateLimiter:
    """One token bucket per key, at most `max_keys` of them."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        max_keys: int = MAX_TRACKED_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate, self.burst, self.max_keys, self._clock = rate, burst, max_keys, clock
        self._buckets: OrderedDict[object, TokenBucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: object) -> float:
        """Zero when this key's request may go ahead, else seconds until it may."""
        now = self._clock()
        bucket = self._buckets.pop(key, None)
        if bucket is None:
            bucket = TokenBucket(self.rate, self.burst, float(self.burst), now)
            while len(self._buckets) >= self.max_keys:
                self._buckets.popitem(last=False)
        self._buckets[key] = bucket
        return bucket.take(now)

    def charge(self, key: object, units: float) -> None:
        """Take `units` more from this key's bucket, if it has one."""
        bucket = self._buckets.get(key)
        if bucket is not None:
            bucket.charge(units)


class RequestLimits:
    """Each request takes a token from its user's bucket, or from its address's without one.

    `on_refusal` is told of each refusal, with whether it was a signed-in user's."""

    def __init__(
        self,
        users: RateLimiter,
        addresses: RateLimiter,
        on_refusal: Callable[[bool], None] | None = None,
    ) -> None:
        self.users = users
        self.addresses = addresses
        self.on_refusal = on_refusal

    def _bucket_of(self, user_id: UserId | None, address: str | None) -> tuple[RateLimiter, object]:
        if user_id is not None:
            return self.users, user_id
        return self.addresses, address or "unknown"

    def wait(self, user_id: UserId | None, address: str | None) -> float:
        limiter, key = self._bucket_of(user_id, address)
        return limiter.take(key)

    def charge(self, user_id: UserId | None, address: str | None, units: float) -> None:
        """Take `units` more from the bucket the request drew on."""
        limiter, key = self._bucket_of(user_id, address)
        limiter.charge(key, units)

    def refusal(self, user_id: UserId | None, address: str | None) -> RateLimited | None:
        wait = self.wait(user_id, address)
        if wait <= 0:
            return None
        if self.on_refusal is not None:
            self.on_refusal(user_id is not None)
        return RateLimited(RATE_LIMITED_MESSAGE, wait)


def too_many_requests(refusal: RateLimited, media_type: str) -> Response:
    """HTTP 429, with Retry-After and the error's retryAfter saying the same."""
    return JSONResponse(
        {"errors": [refusal.formatted]},
        status_code=429,
        headers={"Retry-After": str(refusal.retry_after)},
        media_type=media_type,
    )


def retry_after_of(errors: list[GraphQLError] | None) -> int | None:
    """The longest wait a result's RATE_LIMITED errors ask for, or None without one."""
    waits = [
        retry_after_seconds(extensions["retryAfter"])
        for extensions in (error.extensions or {} for error in errors or ())
        if extensions.get("code") == RateLimited.code
    ]
    return max(waits) if waits else None


@dataclass(frozen=True)
class Address:
    """Connections without a sign-in from one address: those that have said so in their
    connection_init, or, counted apart, those that have not sent it yet (`opening`)."""

    address: str | None
    opening: bool


Holder = UserId | Address


class ConnectionLimits:
    """Open WebSocket connections: at most `per_process` here, `per_user` for one user, and
    as many for one client address among connections without a sign-in."""

    def __init__(self, *, per_user: int, per_process: int) -> None:
        self.per_user = per_user
        self.per_process = per_process
        self.open = 0
        self._counts: Counter[Holder] = Counter()
        self._holders: dict[int, Holder] = {}

    def enter(self) -> bool:
        """Count a new connection, or refuse it when the process has as many as it may."""
        if self.open >= self.per_process:
            return False
        self.open += 1
        return True

    def leave(self) -> None:
        self.open -= 1

    def admit(
        self, user_id: UserId | None, address: str | None, holder: object, *, opening: bool = False
    ) -> bool:
        """Count a connection for a signed-in user, or without one for its address, or while
        it opens (before its connection_init) for its address apart; refuse it when they
        have enough."""
        self.release(holder)
        key: Holder = Address(address, opening)
        if user_id is not None and not opening:
            key = user_id
        if self._counts[key] >= self.per_user:
            return False
        self._counts[key] += 1
        self._holders[id(holder)] = key
        return True

    def release(self, holder: object) -> None:
        key = self._holders.pop(id(holder), None)
        if key is not None:
            self._counts[key] -= 1
            if not self._counts[key]:
                del self._counts[key]


class ConnectionRefused(Exception):
    """Close the WebSocket connection with this code and reason."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
