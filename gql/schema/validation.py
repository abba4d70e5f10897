"""Validating documents: once per distinct document, never for longer than the document
is large, and with no "Did you mean" when the schema is not public.

With introspection off, a suggestion in an error ("Cannot query field 'ledgerAudi' on type
'Query'. Did you mean 'ledgerAudit'?") would hand out the schema a field at a time, so
graphql-core is asked to leave suggestions out both when it validates a document and when
it coerces the variables of one it runs.

The depth and alias limits walk every fragment each time it is spread, so a few hundred
tokens of fragments that each spread the next one twice would keep them busy for ever.
A document whose fragments spread into more selections than MAX_EXPANDED_SELECTIONS is
refused first, after one walk that counts each fragment once.

Checking that fields selected under the same name at the same place agree (graphql-core's
OverlappingFieldsCanBeMergedRule) compares every pair of them: `{ viewer{id} viewer{id} ... }`
400 times over, 4 KB well inside every other limit, took a second of processor time to
validate, during which the process answered no one. A document that would have more than
MAX_SAME_PLACE_PAIRS such pairs, or of fragments spread at one place (220 distinct ones,
each selecting one field, took 174 ms), is refused before validation, after a walk as long
as the document once its fragments are written out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any

from graphql import (
    ASTValidationRule,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    ValidationRule,
    validate,
)
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule

from gql.schema.documents import Budgeted, charge, cost_units, validation_weight

Rules = tuple[type[ASTValidationRule], ...]
Validate = Callable[[GraphQLSchema, DocumentNode, Rules], list[GraphQLError]]

# The rules Strawberry adds to every validation for its own input types.
_STRAWBERRY_RULES: Rules = (MaybeNullValidationRule, OneOfInputValidationRule)


# Far above any document within the token limit that spreads each fragment a few times.
MAX_EXPANDED_SELECTIONS = 10_000


def expanded_selections(document: DocumentNode) -> int:
    """How many selections the operations hold once every fragment spread is written out;
    cycles and unknown fragments count nothing here (validation reports them)."""
    fragments = {
        definition.name.value: definition
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }
    sizes: dict[str, int] = {}

    def size(selection_set: SelectionSetNode | None) -> int:
        total = 0
        for selection in selection_set.selections if selection_set else ():
            if isinstance(selection, FragmentSpreadNode):
                total += 1 + fragment(selection.name.value)
            elif isinstance(selection, FieldNode | InlineFragmentNode):
                total += 1 + size(selection.selection_set)
        return total

    def fragment(name: str) -> int:
        if name not in sizes and name in fragments:
            sizes[name] = 0  # while it is being counted: a cycle adds nothing
            sizes[name] = size(fragments[name].selection_set)
        return sizes.get(name, 0)

    return sum(
        size(definition.selection_set)
        for definition in document.definitions
        if isinstance(definition, OperationDefinitionNode)
    )


# A frontend's fragments select a field a few times at one place (each fragment its `id`):
# a few hundred pairs. This many cost graphql-core about 10 ms to compare at most.
MAX_SAME_PLACE_PAIRS = 2_000


def same_place_pairs(document: DocumentNode, limit: int = MAX_SAME_PLACE_PAIRS) -> int:
    """How many pairs of fields the operations select under one response name at one
    place, and of fragments spread at one place, counted until there are more than `limit`:
    each fragment's fields once per place, however often it is spread there (a fragment
    spread within itself included, which validation reports)."""
    fragments = {
        definition.name.value: definition
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }
    pairs = 0

    def gather(
        selection_set: SelectionSetNode | None, into: dict[str, list[FieldNode]], spread: set[str]
    ) -> None:
        for selection in selection_set.selections if selection_set else ():
            if isinstance(selection, FieldNode):
                name = selection.alias.value if selection.alias else selection.name.value
                into.setdefault(name, []).append(selection)
            elif isinstance(selection, InlineFragmentNode):
                gather(selection.selection_set, into, spread)
            elif isinstance(selection, FragmentSpreadNode):
                # graphql-core compares a fragment's fields once per place however often it
                # is spread there (and a pair of fragments once), so do its pairs here.
                name = selection.name.value
                if name in fragments and name not in spread:
                    spread.add(name)
                    gather(fragments[name].selection_set, into, spread)

    def place(selection_sets: Sequence[SelectionSetNode | None]) -> None:
        nonlocal pairs
        fields: dict[str, list[FieldNode]] = {}
        spread: set[str] = set()
        for selection_set in selection_sets:
            gather(selection_set, fields, spread)
        # And every pair of fragments spread here is compared, whatever their fields.
        pairs += len(spread) * (len(spread) - 1) // 2
        for same_name in fields.values():
            pairs += len(same_name) * (len(same_name) - 1) // 2
            if pairs > limit:
                return
            below = [field.selection_set for field in same_name if field.selection_set]
            if below:
                place(below)
                if pairs > limit:
                    return

    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode) and pairs <= limit:
            place([definition.selection_set])
    return pairs


def _validate(
    schema: GraphQLSchema, document: DocumentNode, rules: Rules, *, hide_suggestions: bool
) -> list[GraphQLError]:
    try:
        too_large = expanded_selections(document) > MAX_EXPANDED_SELECTIONS
    except RecursionError:  # fragments spread in a chain deeper than the interpreter goes
        too_large = True
    if too_large:
        return [
            GraphQLError(
                f"This document's fragments spread into more than {MAX_EXPANDED_SELECTIONS} "
                "selections: spread each fragment fewer times."
            )
        ]
    pairs = same_place_pairs(document)
    if pairs > MAX_SAME_PLACE_PAIRS:
        return [
            GraphQLError(
                "This document selects fields under one name, or spreads fragments, at one "
                "place so often that checking they agree would compare more than "
                f"{MAX_SAME_PLACE_PAIRS} pairs of them: select each field, and spread each "
                "fragment, where it is needed."
            )
        ]
    return validate(
        schema, document, (*rules, *_STRAWBERRY_RULES), hide_suggestions=hide_suggestions
    )


def charged(errors: list[GraphQLError], document: DocumentNode) -> list[GraphQLError]:
    """`errors`, once the request being served is told what validating its document cost:
    a document still parsed but no longer validated is validated at that cost again."""
    charge(cost_units(document))
    return errors


def validator(*, hide_suggestions: bool, budget_bytes: int = 0) -> Validate:
    """Validation for one schema; with a budget, each distinct document validates once for
    as long as its result is among the most recent that fit the budget."""
    run: Validate = partial(_validate, hide_suggestions=hide_suggestions)
    if not budget_bytes:
        return run
    kept: Budgeted[tuple[GraphQLSchema, object, Rules], list[GraphQLError]] = Budgeted(budget_bytes)

    def validate(schema: GraphQLSchema, document: DocumentNode, rules: Rules) -> list[GraphQLError]:
        # Known by its text, whose hash Python keeps: a document's own hash walks every node,
        # a millisecond for one near the token limit, each time the cache looks it up.
        source: object = document.loc.source.body if document.loc else document
        return kept.get(
            (schema, source, rules),
            lambda: charged(run(schema, document, rules), document),
            lambda errors: validation_weight(document, errors),
        )

    return validate


class ExecutorWithoutSuggestions(StrawberryGraphQLCoreExecutionContext):
    """Coerces variables without suggesting enum values or input fields in its errors."""

    @classmethod
    def build(cls, *args: Any, **kwargs: Any) -> Any:
        return super().build(*args, **(kwargs | {"hide_suggestions": True}))


# Each checks or hashes a password (changePassword both).
SIGN_IN_FIELDS = frozenset({"register", "login", "changePassword"})


def _root_fields(
    selections: SelectionSetNode, fragments: dict[str, FragmentDefinitionNode], seen: set[str]
) -> Iterator[FieldNode]:
    for selection in selections.selections:
        if isinstance(selection, FieldNode):
            yield selection
        elif isinstance(selection, InlineFragmentNode):
            yield from _root_fields(selection.selection_set, fragments, seen)
        elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in seen:
            seen.add(selection.name.value)
            fragment = fragments.get(selection.name.value)
            if fragment is not None:
                yield from _root_fields(fragment.selection_set, fragments, seen)


class OneSignInPerOperation(ValidationRule):
    """At most one register, login or changePassword field per operation: each costs a
    password hash, and aliases would otherwise let one request ask for many."""

    def enter_operation_definition(self, node: OperationDefinitionNode, *_args: object) -> None:
        if node.operation is not OperationType.MUTATION:
            return
        fragments = {
            definition.name.value: definition
            for definition in self.context.document.definitions
            if isinstance(definition, FragmentDefinitionNode)
        }
        sign_ins = [
            field
            for field in _root_fields(node.selection_set, fragments, set())
            if field.name.value in SIGN_IN_FIELDS
        ]
        if len(sign_ins) > 1:
            self.report_error(
                GraphQLError(
                    "An operation may hold at most one register, login or changePassword field.",
                    sign_ins,
                    extensions={"code": "BAD_USER_INPUT"},
                )
            )
