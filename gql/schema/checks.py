"""Every check a document passes before anything of it runs, as one schema extension.

Strawberry prepares a hook of every extension for every stage of every operation (a
subscription's included, and kept for as long as it streams), so the checks share one
extension instead of one each:

- a document of more than `max_tokens` tokens stops being parsed (Strawberry's own parse is
  held to the same limit);
- with a parse cache, each distinct document is parsed once. One that does not parse is
  left unparsed here: Strawberry parses it again in its own step, whose syntax error answers
  the request as the client's (HTTP 400; close 4400 over WebSocket). Raised from this hook,
  the error would escape a WebSocket operation as a fault, logged with its traceback and the
  client told only `complete`. A document that fails is never cached, so the second parse
  costs what the first did, within the same token limit;
- the document is validated with the bank's rules (`validation.py`), once per distinct
  document with a validation cache. Strawberry skips its own validation once this has run;
- a document of several operations sent without `operationName` is refused, as the GraphQL
  specification asks: Strawberry would otherwise run its first operation, while what the
  server read of the document beforehand (is it a subscription, is it a mutation sent by
  GET) found none, so a subscription would run as a query, holding a connection of its own
  for as long as it streamed;
- a valid operation that would cost more than `max_cost` (`cost.py`) is refused before any
  resolver runs; one that runs reports its cost in the response's extensions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from graphql import DocumentNode, GraphQLError, OperationDefinitionNode
from strawberry.extensions import SchemaExtension

from gql.schema.cost import QueryTooCostly, estimate_cost
from gql.schema.validation import Rules, Validate

Parse = Callable[..., DocumentNode]

# graphql-core's own words for it, which it says only once execution has begun.
NAME_THE_OPERATION = "Must provide operation name if query contains multiple operations."


def operations_in(document: DocumentNode) -> int:
    return sum(
        isinstance(definition, OperationDefinitionNode) for definition in document.definitions
    )


class DocumentChecks(SchemaExtension):
    def __init__(
        self,
        *,
        max_tokens: int,
        rules: Rules,
        validate: Validate,
        max_cost: int,
        parse: Parse | None = None,
    ) -> None:
        super().__init__()
        self.max_tokens = max_tokens
        self.rules = rules
        self.validate = validate
        self.max_cost = max_cost
        self.parse = parse
        self.cost: int | None = None

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        context.parse_options["max_tokens"] = self.max_tokens
        if self.parse is not None:
            try:
                context.graphql_document = self.parse(context.query, **context.parse_options)
            except GraphQLError:
                context.graphql_document = None
        yield

    def on_validate(self) -> Iterator[None]:
        # Errors set here, before the yield, stop the operation.
        context = self.execution_context
        document = context.graphql_document
        if document is None:
            yield
            return
        schema = context.schema._schema
        rules = context.validation_rules + self.rules
        context.pre_execution_errors = self.validate(schema, document, rules)
        # The name as sent: Strawberry's `operation_name` falls back to the first operation's.
        named = context._provided_operation_name is not None
        if context.pre_execution_errors == [] and not named and operations_in(document) > 1:
            context.pre_execution_errors = [GraphQLError(NAME_THE_OPERATION)]
        if context.pre_execution_errors == []:  # only a valid document has a cost
            cost = estimate_cost(schema, document, context.operation_name, context.variables)
            if cost is not None and cost > self.max_cost:
                # A new list: the empty one validation gave may be shared through its cache.
                context.pre_execution_errors = [QueryTooCostly(cost, self.max_cost)]
            else:
                self.cost = cost
        yield

    def get_results(self) -> dict[str, Any]:
        if self.cost is None:
            return {}
        return {"cost": {"requestedQueryCost": self.cost, "maxQueryCost": self.max_cost}}
