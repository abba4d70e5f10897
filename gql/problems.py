"""Top-level GraphQL errors that are the client's to fix, shown as they are, with a code."""

from __future__ import annotations

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
