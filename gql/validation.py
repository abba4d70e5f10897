"""Validating documents: once per distinct document, and with no "Did you mean" when the
schema is not public.

With introspection off, a suggestion in an error ("Cannot query field 'ledgerAudi' on type
'Query'. Did you mean 'ledgerAudit'?") would hand out the schema a field at a time, so
graphql-core is asked to leave suggestions out both when it validates a document and when
it coerces the variables of one it runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import lru_cache, partial
from typing import Any

from graphql import ASTValidationRule, DocumentNode, GraphQLError, GraphQLSchema, validate
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule

Rules = tuple[type[ASTValidationRule], ...]
Validate = Callable[[GraphQLSchema, DocumentNode, Rules], list[GraphQLError]]

# The rules Strawberry adds to every validation for its own input types.
_STRAWBERRY_RULES: Rules = (MaybeNullValidationRule, OneOfInputValidationRule)


def _validate(
    schema: GraphQLSchema, document: DocumentNode, rules: Rules, *, hide_suggestions: bool
) -> list[GraphQLError]:
    return validate(
        schema, document, (*rules, *_STRAWBERRY_RULES), hide_suggestions=hide_suggestions
    )


def validator(*, hide_suggestions: bool, cache_size: int | None) -> Validate:
    """Validation for one schema; with a cache size, each distinct document validates once."""
    run: Validate = partial(_validate, hide_suggestions=hide_suggestions)
    return lru_cache(maxsize=cache_size)(run) if cache_size else run


class Validation(SchemaExtension):
    """Validates before the hooks of later extensions, which then see the errors found
    (Strawberry skips its own validation once an extension has done it)."""

    def __init__(self, run: Validate) -> None:
        super().__init__()
        self.run = run

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        if context.graphql_document is not None:
            context.pre_execution_errors = self.run(
                context.schema._schema, context.graphql_document, context.validation_rules
            )
        yield


class ExecutorWithoutSuggestions(StrawberryGraphQLCoreExecutionContext):
    """Coerces variables without suggesting enum values or input fields in its errors."""

    @classmethod
    def build(cls, *args: Any, **kwargs: Any) -> Any:
        return super().build(*args, **(kwargs | {"hide_suggestions": True}))
