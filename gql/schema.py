"""The Strawberry schema: types, caches, and the line between shown and masked errors."""

from __future__ import annotations

import logging
from collections.abc import Callable

import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaskErrors, ParserCache, SchemaExtension, ValidationCache
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from gql import errors
from gql.mutations import Mutation
from gql.queries import Query
from gql.scalars import SCALARS
from gql.types import Account, LedgerEntry, Transaction, User

logger = logging.getLogger("bankql.errors")
INTERNAL_ERROR = "Internal server error"
CACHE_SIZE = 512


def is_unexpected(error: GraphQLError) -> bool:
    """A fault inside a resolver, as opposed to a request the client got wrong."""
    original = error.original_error
    return (
        error.path is not None and original is not None and not isinstance(original, GraphQLError)
    )


class BankSchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # Client mistakes are answered, not logged; faults are logged once with their traceback.
        for error in errors:
            if is_unexpected(error):
                logger.error(
                    "unexpected error in %s",
                    ".".join(map(str, error.path or ())),
                    exc_info=error.original_error,
                )


def build_schema(*, caches: bool = True) -> strawberry.Schema:
    """The bankql schema with masked unexpected errors and, unless told not to, the caches."""
    extensions: list[Callable[[], SchemaExtension]] = [
        lambda: MaskErrors(should_mask_error=is_unexpected, error_message=INTERNAL_ERROR)
    ]
    if caches:
        # Validating a document otherwise costs more than running it; the caches are bounded.
        extensions += [
            lambda: ParserCache(maxsize=CACHE_SIZE),
            lambda: ValidationCache(maxsize=CACHE_SIZE),
        ]
    return BankSchema(
        query=Query,
        mutation=Mutation,
        types=[Account, Transaction, LedgerEntry, User, *ERROR_TYPES],
        config=StrawberryConfig(scalar_map=dict(SCALARS)),
        extensions=extensions,
    )


ERROR_TYPES = [
    errors.ValidationError,
    errors.AccountNotFound,
    errors.AccountClosed,
    errors.AccountNotEmpty,
    errors.InsufficientFunds,
    errors.CurrencyMismatch,
    errors.IdempotencyConflict,
    errors.EmailAlreadyRegistered,
    errors.InvalidCredentials,
]
