"""The Strawberry schema: types, caches, limits, and the line between shown and masked errors."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import strawberry
from graphql import GraphQLError, ValueNode
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.exceptions import MissingQueryError
from strawberry.extensions import (
    MaskErrors,
    MaxAliasesLimiter,
    QueryDepthLimiter,
    SchemaExtension,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.schema.schema import DEFAULT_ALLOWED_OPERATION_TYPES
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.graphql import OperationType

from domain.errors import StoreUnavailable
from gql.schema import errors_as_data
from gql.schema.checks import DocumentChecks
from gql.schema.documents import BUDGET_BYTES, Documents
from gql.schema.execution import BoundedExecution
from gql.schema.mutations import Mutation
from gql.schema.queries import Query
from gql.schema.scalars import SCALARS
from gql.schema.subscriptions import Subscription
from gql.schema.types import Account, Hold, LedgerEntry, Transaction, User
from gql.schema.validation import (
    ExecutorWithoutSuggestions,
    OneSignInPerOperation,
    validator,
)
from gql.server.logs import operation, request_id
from gql.server.settings import Settings

logger = logging.getLogger("bankql.errors")
INTERNAL_ERROR = "Internal server error"
UNAVAILABLE = "UNAVAILABLE"
# Seconds a client waits before sending again a request refused as UNAVAILABLE.
UNAVAILABLE_RETRY_AFTER_S = 1
UNAVAILABLE_MESSAGE = (
    "The database is unavailable (it may be switching to a new primary). Send the request "
    "again shortly; a mutation may or may not have been applied: send it with the same "
    "idempotencyKey, and it is applied at most once."
)


@dataclass(frozen=True)
class Limits:
    """What one document may ask for; each overrun is a top-level error, never a 500."""

    max_depth: int
    max_aliases: int
    max_tokens: int
    max_cost: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            settings.max_query_depth,
            settings.max_aliases,
            settings.max_tokens,
            settings.max_query_cost,
        )


# What Strawberry raises for a request it cannot run; over WebSocket it arrives as an error.
_REQUEST_ERRORS = (
    GraphQLError,
    MissingQueryError,
    CannotGetOperationTypeError,
    InvalidOperationTypeError,
)


def is_unexpected(error: GraphQLError) -> bool:
    """A fault inside a resolver or a subscription's stream, as opposed to a request the
    client got wrong: any exception that is not a GraphQL error of its own, except where a
    scalar refused a literal of the document (a Decimal written as a number, an Int of 5,000
    digits), which validation reports at that literal."""
    original = error.original_error
    if original is None or isinstance(original, _REQUEST_ERRORS):
        return False
    return not (error.nodes and all(isinstance(node, ValueNode) for node in error.nodes))


def driver_message(error: BaseException) -> str:
    """The first line of what the driver said, without the statement or its parameters."""
    cause = error.__cause__
    driver = getattr(cause, "orig", None) or cause
    if driver is None:
        return type(error).__name__
    lines = str(driver).strip().splitlines()
    return f"{type(driver).__name__}: {lines[0] if lines else ''}"


class MaskUnexpectedErrors(MaskErrors):
    """Masks faults as "Internal server error" with the request id, so support can find them;
    a database out of reach (or failing over) is told as UNAVAILABLE, with when to retry."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=is_unexpected, error_message=INTERNAL_ERROR)

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        unavailable = isinstance(error.original_error, StoreUnavailable)
        masked = super().anonymise_error(error)
        masked.extensions = {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id.get()}
        if unavailable:
            masked.message = UNAVAILABLE_MESSAGE
            masked.extensions = masked.extensions | {
                "code": UNAVAILABLE,
                "retryAfter": UNAVAILABLE_RETRY_AFTER_S,
            }
        return masked


# Told of each operation as it ends: its type ("query", "mutation", "subscription", or None
# when it never got that far), the name the client gave it, its outcome ("ok", or the code
# of its first error) and how long it took in seconds, a subscription its whole stream.
OperationObserver = Callable[[str | None, str | None, str, float], None]
# The outcome of an error that carries no code of its own (one in the document, say).
UNCODED_ERROR = "GRAPHQL_ERROR"


def outcome_of(errors: list[GraphQLError]) -> str:
    """ "ok", or the code of the first error: INTERNAL_SERVER_ERROR for a fault."""
    if not errors:
        return "ok"
    first = errors[0]
    if is_unexpected(first):
        return "INTERNAL_SERVER_ERROR"
    code = (first.extensions or {}).get("code")
    return code if isinstance(code, str) else UNCODED_ERROR


class RecordOperation(SchemaExtension):
    """Notes the operation's name, type and outcome for the request's log line, and tells
    them to the observer, when there is one."""

    def __init__(self, observe: OperationObserver | None = None) -> None:
        self._observe = observe

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter() if self._observe is not None else 0.0
        try:
            yield
        finally:
            # Also when the operation is cut short: a subscription whose client left.
            self._record(started)

    def _record(self, started: float) -> None:
        details = operation.get()
        if details is None and self._observe is None:
            return
        context = self.execution_context
        try:
            kind: str | None = context.operation_type.value
        except RuntimeError:
            kind = None
        found = context.pre_execution_errors or []
        result_errors = getattr(context.result, "errors", None) or []
        every = [*found, *result_errors]
        if self._observe is not None:
            outcome = outcome_of(every)
            self._observe(kind, context.operation_name, outcome, time.perf_counter() - started)
        if details is None:
            return
        details["type"] = kind
        details["name"] = context.operation_name
        if any(isinstance(error.original_error, StoreUnavailable) for error in every):
            details["outcome"] = "unavailable"
        elif any(is_unexpected(error) for error in every):
            details["outcome"] = "internal_error"
        elif found or result_errors:
            details["outcome"] = "error"
        else:
            details["outcome"] = "ok"


class QuietBoundedExecution(BoundedExecution, ExecutorWithoutSuggestions):
    """Within its deadline, and coercing variables without suggesting the schema's names."""


class BankSchema(strawberry.Schema):
    # Its parses, within its token limit: what the server reads of a document before
    # running it (a mutation sent by GET, a subscription) shares them.
    documents: Documents

    async def execute(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> ExecutionResult:
        # execute() gives one result, and a subscription has many: they run over WebSocket
        # (stream()), so a subscription sent here is a request error, not a fault.
        allowed = set(allowed_operation_types or DEFAULT_ALLOWED_OPERATION_TYPES)
        return await super().execute(
            query,
            variable_values,
            context_value,
            root_value,
            operation_name,
            allowed - {OperationType.SUBSCRIPTION},
            operation_extensions,
        )

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # Client mistakes are answered, not logged; faults are logged once with their traceback.
        for error in errors:
            if isinstance(error.original_error, StoreUnavailable):
                # Expected while the database restarts or fails over: one line, no traceback.
                logger.warning(
                    "database unavailable in %s: %s",
                    ".".join(map(str, error.path or ())),
                    driver_message(error.original_error),
                    extra={"request_id": request_id.get()},
                )
            elif is_unexpected(error):
                logger.error(
                    "unexpected error in %s",
                    ".".join(map(str, error.path or ())),
                    exc_info=error.original_error,
                    extra={"request_id": request_id.get()},
                )


def build_schema(
    *,
    caches: bool = True,
    limits: Limits | None = None,
    introspection: bool = True,
    observe: OperationObserver | None = None,
    tracing: Callable[[], SchemaExtension] | None = None,
) -> BankSchema:
    """The bankql schema: masked faults, document limits and, unless told not to, caches;
    each operation told to `observe`, and traced by the `tracing` extension, when given."""
    limits = limits or Limits.from_settings(Settings.model_construct())  # the defaults
    # Rule classes made once, so that validation results stay cacheable across requests.
    rules = [
        *QueryDepthLimiter(max_depth=limits.max_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=limits.max_aliases).validation_rules,
        OneSignInPerOperation,
    ]
    if not introspection:
        rules.append(NoSchemaIntrospectionCustomRule)
    # Validating a document otherwise costs more than running it; the caches are bounded
    # in bytes. Without introspection the schema is private, and errors suggest none of
    # its names.
    budget = BUDGET_BYTES if caches else 0
    validate = validator(hide_suggestions=not introspection, budget_bytes=budget)
    documents = Documents(limits.max_tokens, budget)
    extensions: list[Callable[[], SchemaExtension]] = [
        # First, so that its span holds every other step of the operation.
        *([tracing] if tracing is not None else []),
        MaskUnexpectedErrors,
        lambda: RecordOperation(observe),
        lambda: DocumentChecks(
            max_tokens=limits.max_tokens,
            rules=tuple(rules),
            validate=validate,
            max_cost=limits.max_cost,
            parse=documents.parse if caches else None,
        ),
    ]
    schema = BankSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=[Account, Transaction, LedgerEntry, User, Hold, *ERROR_TYPES],
        config=StrawberryConfig(scalar_map=dict(SCALARS)),
        extensions=extensions,
        # Each operation, and each event of a subscription, within its deadline; and with
        # introspection off, no error suggests a name the schema has.
        execution_context_class=BoundedExecution if introspection else QuietBoundedExecution,
    )
    schema.documents = documents
    return schema


ERROR_TYPES = [
    errors_as_data.ValidationError,
    errors_as_data.AccountNotFound,
    errors_as_data.AccountClosed,
    errors_as_data.AccountNotEmpty,
    errors_as_data.InsufficientFunds,
    errors_as_data.CurrencyMismatch,
    errors_as_data.IdempotencyConflict,
    errors_as_data.EmailAlreadyRegistered,
    errors_as_data.InvalidCredentials,
    errors_as_data.HoldNotFound,
    errors_as_data.HoldNotPending,
    errors_as_data.CaptureExceedsHold,
    errors_as_data.AccountHasPendingHolds,
    errors_as_data.TransactionNotFound,
    errors_as_data.TransactionNotReversible,
]
