"""What an operation costs, worked out from its document and variables before anything runs.

The model is simple enough to work out by hand. The cost is the sum, over the fields that
read the database, of each one's weight times the number of times it may run:

- A field with a resolver of its own reads the database. These are every root field
  (queries, mutations and the subscription), `Account.owner`, `Account.entries`,
  `LedgerEntry.transaction`, `User.accounts` and `User.sessions`. It weighs 1.
- A field that takes `first` returns a page of up to `first` items (20 when `first` is left
  out, never more than 100). It weighs 1 more for each item, and every field below it runs
  up to `first` times.
- Every other field costs nothing: scalars, `edges`, `node`, `pageInfo`, `totalCount`,
  `balance` and the like come with the read of their parent.

`{ accounts(first: 10) { edges { node { owner { email } entries(first: 5) { edges { node
{ transaction { kind } } } } } } } }` costs 1 + 10 (accounts and its 10 items) + 10 x 1
(owner) + 10 x (1 + 5) (entries) + 10 x 5 x 1 (transaction) = 131.

The estimate is an upper bound that no way of writing a document talks down: every alias,
fragment spread and inline fragment counts as written (all the fragments of a union count,
though at most one applies), `@skip` and `@include` are not looked at, and a variable counts
with the value sent. A subscription costs what one of its events does.

An operation that would cost more than the limit (`BANKQL_MAX_QUERY_COST`) is refused
before any resolver runs, with a QUERY_TOO_COSTLY error giving `cost` and `maxCost`; one
that runs reports `{"cost": {"requestedQueryCost": N, "maxQueryCost": M}}` in the
response's extensions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    SelectionSetNode,
    get_named_type,
    get_operation_ast,
)
from graphql.execution.values import VariableValues, get_argument_values, get_variable_values
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField

from gql.schema.ids import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

TOO_COSTLY = "QUERY_TOO_COSTLY"


class QueryTooCostly(GraphQLError):
    def __init__(self, cost: int, max_cost: int) -> None:
        super().__init__(
            f"This operation would cost {cost}, more than the limit of {max_cost}: ask for "
            "smaller pages (`first`) or fewer nested lists, or send it as several operations.",
            extensions={"code": TOO_COSTLY, "cost": cost, "maxCost": max_cost},
        )


def reads_database(definition: GraphQLField) -> bool:
    """A field with a resolver of its own; the others are attributes of a loaded object."""
    found = definition.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
    return isinstance(found, StrawberryField) and found.base_resolver is not None


@dataclass
class _Estimate:
    schema: GraphQLSchema
    fragments: dict[str, FragmentDefinitionNode]
    variables: VariableValues
    # A fragment costs the same wherever it is spread: worked out once, however often used.
    fragment_costs: dict[str, int] = field(default_factory=dict)

    def selections(self, parent: GraphQLNamedType, selection_set: SelectionSetNode | None) -> int:
        """What a selection set costs when it runs once."""
        total = 0
        for selection in selection_set.selections if selection_set else ():
            if isinstance(selection, FieldNode):
                total += self.field(parent, selection)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                on = self.schema.get_type(condition.name.value) if condition else parent
                total += self.selections(on or parent, selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                total += self.fragment(selection.name.value)
        return total

    def fragment(self, name: str) -> int:
        if name not in self.fragment_costs:
            definition = self.fragments[name]
            on = self.schema.get_type(definition.type_condition.name.value)
            self.fragment_costs[name] = self.selections(on, definition.selection_set) if on else 0
        return self.fragment_costs[name]

    def field(self, parent: GraphQLNamedType, node: FieldNode) -> int:
        # Introspection fields and __typename are not among a type's fields: they cost nothing.
        fields = (
            parent.fields if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType) else {}
        )
        definition = fields.get(node.name.value)
        if definition is None:
            return 0
        below = self.selections(get_named_type(definition.type), node.selection_set)
        items = self.page_size(definition, node)
        weight = int(reads_database(definition)) + (items or 0)
        return weight + (1 if items is None else items) * below

    def page_size(self, definition: GraphQLField, node: FieldNode) -> int | None:
        """How many items the field may return, or None when it returns no page."""
        if "first" not in definition.args:
            return None
        try:
            first = get_argument_values(definition, node, self.variables).get("first")
        except GraphQLError:
            return MAX_PAGE_SIZE  # the field will fail; until then, assume the most
        if first is None:
            return DEFAULT_PAGE_SIZE
        return min(max(int(first), 0), MAX_PAGE_SIZE)


def estimate_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: object,
) -> int | None:
    """The operation's cost, or None when there is nothing to run: no such operation, or
    variables that do not coerce (execution then answers with their errors)."""
    operation = get_operation_ast(document, operation_name)
    root = schema.get_root_type(operation.operation) if operation else None
    if operation is None or root is None or not isinstance(variables, dict | None):
        return None
    values = get_variable_values(schema, operation.variable_definitions or (), variables or {})
    if isinstance(values, list):
        return None
    fragments = {
        definition.name.value: definition
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }
    return _Estimate(schema, fragments, values).selections(root, operation.selection_set)
