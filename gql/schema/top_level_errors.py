"""Top-level GraphQL errors that are the client's to fix, shown as they are, with a code."""

from __future__ import annotations

import math

from graphql import GraphQLError


class ClientProblem(GraphQLError):
    code = "BAD_REQUEST"

    def __init__(self, message: str) -> None:
        super().__init__(message, extensions={"code": self.code})


class BadUserInput(ClientProblem):
    """Arguments the server cannot work with: a page size, a cursor or an ID it did not issue."""

    code = "BAD_USER_INPUT"


class Unauthenticated(ClientProblem):
    code = "UNAUTHENTICATED"


class Forbidden(ClientProblem):
    code = "FORBIDDEN"


class NotFound(ClientProblem):
    """Something that does not exist, or that the viewer may not see: the two look alike."""

    code = "NOT_FOUND"


class SlowConsumer(ClientProblem):
    """A stream whose client took its lines too slowly; it ends, and may be resumed."""

    code = "SLOW_CONSUMER"


class TooManyStreams(ClientProblem):
    """A server process that holds as many subscriptions as it may."""

    code = "TOO_MANY_STREAMS"


class RateLimited(ClientProblem):
    """Too many requests, sign-ins or hashes for now; `retryAfter` says how many seconds to
    wait, and over HTTP the status is 429 with a Retry-After header saying the same."""

    code = "RATE_LIMITED"

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after_seconds(retry_after_s)
        self.extensions = {"code": self.code, "retryAfter": self.retry_after}


def retry_after_seconds(wait_s: float) -> int:
    """Whole seconds, rounded up, and at least one: what Retry-After may carry."""
    return max(1, math.ceil(wait_s))
