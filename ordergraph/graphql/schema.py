"""Assembling the one schema from the core's fields and the plugins' fields."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.extensions import (
    SchemaExtension as StrawberryExtension,
)
from strawberry.schema.name_converter import NameConverter
from strawberry.types import ExecutionContext
from strawberry.types.base import has_object_definition

from ordergraph.core.runtime import Runtime
from ordergraph.graphql.alerts import AlertMutation, AlertQuery, AlertSubscription
from ordergraph.graphql.context import ApiError
from ordergraph.graphql.fulfilment import (
    FulfilmentMutation,
    FulfilmentQuery,
    FulfilmentSubscription,
)
from ordergraph.graphql.inbox import InboxMutation, InboxQuery
from ordergraph.graphql.mutations import Mutation
from ordergraph.graphql.queries import Query
from ordergraph.graphql.review import ReviewMutation, ReviewQuery
from ordergraph.graphql.subscriptions import Subscription
from ordergraph.graphql.tracking import TrackingMutation, TrackingQuery

MAX_DEPTH = 10
MAX_TOKENS = 2000
MAX_ALIASES = 30
CACHED_DOCUMENTS = 500
# The names the schema gives fields (snake_case to camelCase), to find clashes before it does.
_NAMES = NameConverter()


class SchemaConflict(ValueError):
    """Two contributions define the same field; raised at start-up."""


@dataclass(frozen=True)
class SchemaExtension:
    """What a plugin's ``graphql_schema`` hook returns: strawberry types to merge."""

    query: tuple[type, ...] = ()
    mutation: tuple[type, ...] = ()
    subscription: tuple[type, ...] = ()
    types: tuple[type, ...] = field(default=())


def merge(name: str, parts: list[tuple[str, type]]) -> type:
    """One strawberry type with every part's fields; a field defined twice is an error.

    Both names must be unique: the GraphQL name is what clients query (a second
    ``loyaltyPoints`` would silently shadow the first), the Python name is what the
    merged class inherits (a second ``orders`` attribute would hide the core's field).
    """
    graphql_owners: dict[str, str] = {}
    python_owners: dict[str, str] = {}
    for owner, part in parts:
        if not has_object_definition(part):
            raise SchemaConflict(f"{owner}: {part!r} is not a strawberry type")
        for f in part.__strawberry_definition__.fields:
            graphql_name = _NAMES.get_graphql_name(f)
            first = graphql_owners.get(graphql_name) or python_owners.get(f.python_name)
            if first is not None:
                raise SchemaConflict(
                    f"{name}.{graphql_name} is defined by both {first} and {owner}"
                )
            graphql_owners[graphql_name] = owner
            python_owners[f.python_name] = owner
    # The first base wins on a name clash, which cannot happen after the check above.
    return strawberry.type(type(name, tuple(part for _, part in parts), {}))


def _should_mask(error: GraphQLError) -> bool:
    return not isinstance(error.original_error, ApiError) and not isinstance(error, ApiError)


class Schema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Log unexpected errors only; ``ApiError`` is an answer, not a fault."""
        unexpected = [e for e in errors if not isinstance(e.original_error, ApiError)]
        if unexpected:
            super().process_errors(unexpected, execution_context)


def build_schema(rt: Runtime) -> strawberry.Schema:
    parts: dict[str, list[tuple[str, type]]] = {
        "Query": [
            ("core", Query),
            ("core", ReviewQuery),
            ("core", InboxQuery),
            ("core", FulfilmentQuery),
            ("core", TrackingQuery),
            ("core", AlertQuery),
        ],
        "Mutation": [
            ("core", Mutation),
            ("core", ReviewMutation),
            ("core", InboxMutation),
            ("core", FulfilmentMutation),
            ("core", TrackingMutation),
            ("core", AlertMutation),
        ],
        "Subscription": [
            ("core", Subscription),
            ("core", FulfilmentSubscription),
            ("core", AlertSubscription),
        ],
    }
    extra_types: list[type] = []
    for plugin, ext in rt.plugins.call_sync("graphql_schema").results:
        if not isinstance(ext, SchemaExtension):
            raise SchemaConflict(f"plugin {plugin}: graphql_schema must return a SchemaExtension")
        parts["Query"] += [(plugin, t) for t in ext.query]
        parts["Mutation"] += [(plugin, t) for t in ext.mutation]
        parts["Subscription"] += [(plugin, t) for t in ext.subscription]
        extra_types += ext.types
    # The limit rules are built once: ValidationCache keys on the rule classes, and
    # QueryDepthLimiter and MaxAliasesLimiter build new classes for every instance.
    limit_rules = [
        *QueryDepthLimiter(max_depth=MAX_DEPTH).validation_rules,
        *MaxAliasesLimiter(max_alias_count=MAX_ALIASES).validation_rules,
    ]
    extensions: list[Callable[[], StrawberryExtension]] = [
        lambda: AddValidationRules(limit_rules),
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        # Clients send the same few documents again and again: parse and validate each once.
        lambda: ParserCache(maxsize=CACHED_DOCUMENTS),
        lambda: ValidationCache(maxsize=CACHED_DOCUMENTS),
    ]
    if rt.settings.production:
        extensions.append(lambda: MaskErrors(should_mask_error=_should_mask))
    return Schema(
        query=merge("Query", parts["Query"]),
        mutation=merge("Mutation", parts["Mutation"]),
        subscription=merge("Subscription", parts["Subscription"]),
        types=extra_types,
        extensions=extensions,
    )
