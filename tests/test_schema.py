"""The schema as clients read it: every element described, the SDL snapshot in
docs/schema.graphql current, and no breaking change without a note in docs/changelog.md.

``make schema`` (``UPDATE_SCHEMA_SNAPSHOT=1 pytest tests/test_schema.py``) writes the
snapshot again; it refuses while a breaking change is missing from the changelog.
"""

from __future__ import annotations

import logging
import os
import re
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
import strawberry
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    build_schema,
    find_breaking_changes,
)
from graphql.type.introspection import introspection_types
from graphql.type.scalars import specified_scalar_types

from ordergraph.core import assembly
from ordergraph.core.plugins import ENTRY_POINT_GROUP
from ordergraph.core.settings import Settings
from ordergraph.graphql import schema as assembled
from ordergraph.plugin_api import PluginInfo, SchemaExtension, hookimpl

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOT = ROOT / "docs" / "schema.graphql"
CHANGELOG = ROOT / "docs" / "changelog.md"
UPDATE = os.environ.get("UPDATE_SCHEMA_SNAPSHOT") == "1"
HOW_TO_UPDATE = (
    "Run `make schema` (UPDATE_SCHEMA_SNAPSHOT=1 pytest tests/test_schema.py) to write "
    "docs/schema.graphql again, and commit it with the change."
)
# Values for the built-in plugins' required settings, only so that each can be enabled.
REQUIRED_SETTINGS = {"iban": "DE89370400440532013000"}


def builtin_plugins() -> dict[str, Any]:
    """The plugins ordergraph itself ships (not the example plugin the tests install)."""
    return {
        ep.name: ep.load()
        for ep in entry_points(group=ENTRY_POINT_GROUP)
        if ep.value.startswith("plugins.")
    }


def full_schema() -> strawberry.Schema:
    """The schema with every built-in plugin enabled: the one the snapshot records."""
    installed = builtin_plugins()
    config = {
        name: {
            "enabled": True,
            **{
                s.name: REQUIRED_SETTINGS.get(s.name, "stand-in")
                for s in module.plugin_info().settings
                if s.required
            },
        }
        for name, module in installed.items()
    }
    rt = assembly.build(Settings(database_url="sqlite:///unused.db", plugins=config), installed)
    return assembled.build_schema(rt)


def undescribed(schema: GraphQLSchema) -> list[str]:
    """Every type, field, argument, input field and enum value without a description."""
    built_in = {*introspection_types, *specified_scalar_types}
    missing = []
    for name, type_ in sorted(schema.type_map.items()):
        if name in built_in:
            continue
        if not (type_.description or "").strip():
            missing.append(name)
        if isinstance(type_, GraphQLObjectType | GraphQLInterfaceType):
            for field_name, field in type_.fields.items():
                if not (field.description or "").strip():
                    missing.append(f"{name}.{field_name}")
                missing += [
                    f"{name}.{field_name}({arg_name}:)"
                    for arg_name, arg in field.args.items()
                    if not (arg.description or "").strip()
                ]
        elif isinstance(type_, GraphQLInputObjectType):
            missing += [
                f"{name}.{field_name}"
                for field_name, field in type_.fields.items()
                if not (field.description or "").strip()
            ]
        elif isinstance(type_, GraphQLEnumType):
            missing += [
                f"{name}.{value_name}"
                for value_name, value in type_.values.items()
                if not (value.description or "").strip()
            ]
    return missing


_COORDINATE = re.compile(r"\b[A-Z_a-z]\w*\.\w+(?:\(\w+:\))?")
_TYPE = re.compile(r"\b[A-Z]\w*\b")
_NOT_TYPES = {"A", "Argument", "Description", "Enum", "Field", "Standard"}


def coordinate(description: str) -> str:
    """The schema coordinate a breaking change is about: ``Task.state``,
    ``Query.orders(first:)``, or a type's name."""
    found = _COORDINATE.search(description)
    if found:
        return found.group()
    return next(t for t in _TYPE.findall(description) if t not in _NOT_TYPES)


def unexplained_breaking_changes(
    old: GraphQLSchema, new: GraphQLSchema, changelog: str
) -> list[str]:
    """The breaking changes from ``old`` to ``new`` whose coordinate the changelog does
    not name in backticks (`Task.state`)."""
    named = set(re.findall(r"`([^`]+)`", changelog))
    return [
        change.description
        for change in find_breaking_changes(old, new)
        if coordinate(change.description) not in named
    ]


def test_every_element_of_the_schema_is_described() -> None:
    missing = undescribed(full_schema()._schema)
    assert not missing, (
        f"{len(missing)} elements of the schema have no description (say what it is, in the "
        "user's words: units, time zone, who may read it, the codes it answers):\n"
        + "\n".join(missing)
    )


def test_the_snapshot_is_the_schema_and_breaks_nothing_unannounced() -> None:
    printed = full_schema().as_str() + "\n"
    recorded = SNAPSHOT.read_text() if SNAPSHOT.exists() else ""
    unexplained = (
        unexplained_breaking_changes(
            build_schema(recorded), build_schema(printed), CHANGELOG.read_text()
        )
        if recorded
        else []
    )
    assert not unexplained, (
        "These breaking changes have no entry in docs/changelog.md; name each coordinate "
        "in backticks there, with what clients must do:\n" + "\n".join(unexplained)
    )
    if UPDATE and printed != recorded:
        SNAPSHOT.write_text(printed)
        recorded = printed
    assert printed == recorded, f"The schema differs from docs/schema.graphql. {HOW_TO_UPDATE}"


OLD = """
type Query { tasks: [Task!]! }
type Task { id: ID! state: String! kind: String! }
enum Colour { RED GREEN }
input TaskFilter { state: String colour: Colour }
type Mutation { start(id: ID!, filter: TaskFilter): Task }
"""


@pytest.mark.parametrize(
    ("new", "coordinates"),
    [
        (OLD.replace("kind: String!", ""), ["Task.kind"]),
        (
            OLD.replace(
                "state: String! kind: String! }",
                "state: TaskState! kind: String! } enum TaskState { OPEN }",
            ),
            ["Task.state"],
        ),
        (OLD.replace("RED GREEN", "RED"), ["Colour.GREEN"]),
        (OLD.replace("state: String colour", "state: String! colour"), ["TaskFilter.state"]),
        (OLD.replace("filter: TaskFilter", "filter: TaskFilter!"), ["Mutation.start(filter:)"]),
    ],
)
def test_a_breaking_change_needs_its_coordinate_in_the_changelog(
    new: str, coordinates: list[str]
) -> None:
    old_schema, new_schema = build_schema(OLD), build_schema(new)
    unexplained = unexplained_breaking_changes(old_schema, new_schema, "Nothing yet.")
    assert [coordinate(change) for change in unexplained] == coordinates
    note = "## Unreleased\n\n" + "".join(f"- `{c}`: see the guide.\n" for c in coordinates)
    assert unexplained_breaking_changes(old_schema, new_schema, note) == []


def test_adding_to_the_schema_needs_no_changelog_entry() -> None:
    grown = OLD.replace("kind: String!", "kind: String! dueAt: String")
    assert unexplained_breaking_changes(build_schema(OLD), build_schema(grown), "") == []


@strawberry.type
class BareQuery:
    @strawberry.field
    def bare_points(self, customer: str) -> int:
        return 0


class BarePlugin:
    """A plugin whose field says nothing about itself."""

    @hookimpl
    def plugin_info(self) -> PluginInfo:
        return PluginInfo(category="other", description="A field without a description.")

    @hookimpl
    def graphql_schema(self) -> SchemaExtension:
        return SchemaExtension(query=(BareQuery,))


def test_a_plugin_field_without_a_description_is_named_at_start_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = Settings(database_url="sqlite:///unused.db", plugins={"bare": {"enabled": True}})
    rt = assembly.build(settings, {"bare": BarePlugin()})
    with caplog.at_level(logging.WARNING, logger=assembled.__name__):
        assembled.build_schema(rt)
    assert [r.getMessage() for r in caplog.records] == [
        "plugin bare: Query.barePoints has no description for the field, argument "
        "customer; GraphiQL and generated clients show it bare"
    ]
