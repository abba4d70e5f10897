"""The Decimal scalar: exact numbers travel as strings, never as floats."""

from __future__ import annotations

from typing import NewType

import strawberry
from graphql import IntValueNode, StringValueNode, ValueNode
from strawberry.types.scalar import ScalarDefinition

DecimalText = NewType("DecimalText", str)


def _parse_value(value: object) -> DecimalText:
    if isinstance(value, str):
        return DecimalText(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return DecimalText(str(value))
    raise ValueError('Decimal values are sent as strings, such as "12.50".')


def _parse_literal(node: ValueNode, _variables: object = None) -> DecimalText:
    if isinstance(node, StringValueNode | IntValueNode):
        return DecimalText(node.value)
    raise ValueError('Decimal values are sent as strings, such as "12.50".')


DECIMAL = strawberry.scalar(
    name="Decimal",
    description='An exact decimal number, sent and received as a string such as "12.50".',
    serialize=str,
    parse_value=_parse_value,
    parse_literal=_parse_literal,
)

SCALARS: dict[object, ScalarDefinition] = {DecimalText: DECIMAL}
