"""Input values built with what each input type's fields need, worked out once.

For every input object of every request, strawberry converts each field's GraphQL name,
resolves the field's annotation and walks the field's type, to pass scalars and enums on
as graphql-core parsed them: 130 µs for ``submitOrder``'s input of three lines, a
twentieth of the request (``benchmarks/graphql_inputs.py``). ``build_inputs_once`` works
the names and types out when the schema is built and gives every input type the same
conversion through strawberry's ``from_input`` hook, so only the fields that need
converting (nested inputs, lists of them, ``Maybe``, global ids) go through strawberry's
conversion (32 µs).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import MISSING
from typing import Any

import strawberry
from strawberry.relay import GlobalID
from strawberry.scalars import is_scalar
from strawberry.types.arguments import InputContext
from strawberry.types.base import StrawberryMaybe, StrawberryObjectDefinition, StrawberryOptional
from strawberry.types.enum import StrawberryEnumDefinition, has_enum_definition


def input_definitions(schema: strawberry.Schema) -> list[StrawberryObjectDefinition]:
    """The definitions of every input type of ``schema``."""
    return [
        concrete.definition
        for concrete in schema.schema_converter.type_map.values()
        if isinstance(concrete.definition, StrawberryObjectDefinition)
        and concrete.definition.is_input
    ]


def build_inputs_once(schema: strawberry.Schema) -> None:
    """Give every input type of ``schema`` that builds itself the strawberry way a
    ``from_input`` with its fields' names and types resolved once."""
    registry = schema.schema_converter.scalar_registry
    for definition in input_definitions(schema):
        if definition.from_input is None:
            definition.from_input = _builder(definition, schema, registry)


def _builder(
    definition: StrawberryObjectDefinition, schema: strawberry.Schema, registry: Mapping
) -> Callable[[type, Mapping[str, Any], InputContext], Any]:
    names = schema.config.name_converter
    # (GraphQL name, Python name, type, whether the value is passed on as it is)
    fields = []
    for field in definition.fields:
        type_ = field.resolve_type(type_definition=definition)
        as_parsed = _as_parsed(type_, registry)
        fields.append((names.from_field(field), field.python_name, type_, as_parsed))
    # As strawberry does: fields without a default are None unless given.
    nulls = {
        field.python_name: None
        for field in definition.fields
        if field.default_value is MISSING and field.default_factory is MISSING
    }

    def from_input(cls: type, value: Mapping[str, Any], context: InputContext) -> Any:
        kwargs = dict(nulls)
        for graphql_name, python_name, type_, as_parsed in fields:
            if graphql_name in value:
                given = value[graphql_name]
                if not as_parsed:
                    given = context.convert(given, type_, graphql_name)
                kwargs[python_name] = given
        return cls(**kwargs)

    return from_input


def _as_parsed(type_: Any, registry: Mapping) -> bool:
    """Whether strawberry would pass a value of ``type_`` on as graphql-core parsed it:
    a scalar (a global id aside) or an enum, or null or one of those."""
    if isinstance(type_, StrawberryMaybe):
        return False  # wrapped in Some
    if isinstance(type_, StrawberryOptional):
        type_ = type_.of_type
    if type_ is GlobalID:
        return False
    return (
        is_scalar(type_, registry)
        or isinstance(type_, StrawberryEnumDefinition)
        or has_enum_definition(type_)
    )
