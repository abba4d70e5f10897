"""The Strawberry schema: types, caches, and the line between shown and masked errors."""

from __future__ import annotations

import logging
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaskErrors, ParserCache, ValidationCache
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


def build_schema(**options: Any) -> strawberry.Schema:
    """The bankql schema with parser and validation caches and masked unexpected errors."""
    return BankSchema(
        query=Query,
        mutation=Mutation,
        types=[Account, Transaction, LedgerEntry, User, *ERROR_TYPES],
        config=StrawberryConfig(scalar_map=dict(SCALARS)),
        extensions=[
            lambda: ParserCache(maxsize=CACHE_SIZE),
            lambda: ValidationCache(maxsize=CACHE_SIZE),
            lambda: MaskErrors(should_mask_error=is_unexpected, error_message=INTERNAL_ERROR),
        ],
        **options,
    )


ERROR_TYPES = [
    errors.ValidationError,
    errors.AccountNotFound,
    errors.AccountClosed,
    errors.AccountNotEmpty,
    errors.InsufficientFunds,
    errors.CurrencyMismatch,
    errors.IdempotencyConflict,
]
