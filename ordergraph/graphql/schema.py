"""Assembling the one schema from the core's fields and the plugins' fields."""

from __future__ import annotations

import contextlib
import functools
import logging
import secrets
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import strawberry
from graphql import ASTValidationRule, GraphQLError, OperationDefinitionNode, ValidationRule, parse
from graphql.language import SKIP, DocumentNode
from strawberry.extensions import MaskErrors, MaxAliasesLimiter, QueryDepthLimiter
from strawberry.extensions import (
    SchemaExtension as StrawberryExtension,
)
from strawberry.schema.name_converter import NameConverter
from strawberry.schema.schema import validate_document
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.base import has_object_definition
from strawberry.types.field import StrawberryField
from strawberry.types.graphql import OperationType

from ordergraph.core.errors import ErrorCode, translate
from ordergraph.core.runtime import Runtime
from ordergraph.graphql.analytics import AnalyticsQuery, AnalyticsSubscription
from ordergraph.graphql.context import ApiError
from ordergraph.graphql.entry import InboxMutation, InboxQuery
from ordergraph.graphql.fulfilment import (
    FulfilmentMutation,
    FulfilmentQuery,
    FulfilmentSubscription,
)
from ordergraph.graphql.inputs import build_inputs_once
from ordergraph.graphql.mutations import Mutation
from ordergraph.graphql.queries import Query
from ordergraph.graphql.request_errors import (
    RequestErrorCode,
    code_before_execution,
    is_request_error,
    with_code,
)
from ordergraph.graphql.review import ReviewMutation, ReviewQuery
from ordergraph.graphql.settlement.promotions import PromotionMutation, PromotionQuery
from ordergraph.graphql.settlement.statements import SettlementMutation, SettlementQuery
from ordergraph.graphql.subscriptions import Subscription
from ordergraph.graphql.tracking.alerts import AlertMutation, AlertQuery, AlertSubscription
from ordergraph.graphql.tracking.shipments import TrackingMutation, TrackingQuery

MAX_DEPTH = 10
MAX_TOKENS = 2000
MAX_ALIASES = 30
CACHED_DOCUMENTS = 500
log = logging.getLogger(__name__)
# The names the schema gives fields (snake_case to camelCase), to find clashes before it does.
_NAMES = NameConverter()


ROOT_DESCRIPTIONS = {
    "Query": "What a client may read. A field that needs a token answers UNAUTHENTICATED "
    "without one and FORBIDDEN to a role that may not read it.",
    "Mutation": "What a client may change. Expected failures come back in each payload's "
    "errors, with field and code; UNAUTHENTICATED and FORBIDDEN come as GraphQL errors.",
    "Subscription": "Live feeds over the graphql-transport-ws websocket protocol at "
    "/graphql; sent over HTTP, a subscription is refused (USE_WEBSOCKET).",
}


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
            if owner != "core":
                _warn_if_undescribed(owner, f"{name}.{graphql_name}", f)
    # The first base wins on a name clash, which cannot happen after the check above.
    merged = type(name, tuple(part for _, part in parts), {})
    return strawberry.type(merged, description=ROOT_DESCRIPTIONS[name])


def _warn_if_undescribed(plugin: str, coordinate: str, f: StrawberryField) -> None:
    """A plugin's field or argument without a description is shown bare in GraphiQL and
    generated clients: say so at start-up (the core's own are checked by the tests)."""
    bare = [] if f.description else ["the field"]
    bare += [f"argument {_NAMES.from_argument(a)}" for a in f.arguments if not a.description]
    if bare:
        log.warning(
            "plugin %s: %s has no description for %s; GraphiQL and generated clients show it bare",
            plugin,
            coordinate,
            ", ".join(bare),
        )


def is_unexpected(error: GraphQLError) -> bool:
    """Whether ``error`` is a failure of the service rather than an answer to the client.

    Syntax, validation and variable errors (an unknown field, a wrong argument type,
    too many aliases) come before execution and are the client's to fix; so is an
    ``ApiError``. What else fails while a field resolves (it has a ``path``), or escapes
    the executor with an exception, is unexpected.
    """
    if isinstance(error, ApiError) or isinstance(error.original_error, ApiError):
        return False
    if is_request_error(error):
        return False
    if error.path is not None:
        return True
    return error.original_error is not None and not error.nodes


def reference_of(error: GraphQLError) -> str:
    """The short reference of an unexpected error, logged once with its traceback.

    It goes into the error's ``extensions`` (and, in production, its masked message),
    so an operator finds the traceback from what the client saw.
    """
    extensions = error.extensions or {}
    if "reference" in extensions:
        return extensions["reference"]
    reference = secrets.token_hex(4)
    error.extensions = {
        **extensions,
        "code": ErrorCode.INTERNAL_ERROR.value,
        "reference": reference,
    }
    cause = error.original_error
    if cause is not None:
        # Some drivers' exceptions have a ``message`` of None, which graphql-core would
        # show as the text "None".
        error.message = f"{type(cause).__name__}: {cause}"
    log.error(
        "Unexpected error %s in %s: %s",
        reference,
        ".".join(map(str, error.path or ())) or "the operation",
        error.message,
        exc_info=cause,
    )
    return reference


def answered(error: GraphQLError) -> GraphQLError:
    """``error`` as an answer when the database refused a value (too long, a NUL, out of
    range) that no check caught: the client's to fix, with its code (``core.errors``)."""
    refusal = translate(error.original_error) if error.original_error is not None else None
    if refusal is None:
        return error
    answer = ApiError(refusal.code, refusal.problems[0].message)
    answer.path, answer.locations = error.path, error.locations
    return answer


class AnswerDatabaseRefusals(StrawberryExtension):
    """Turns the database's refusals of values into answers before errors are masked."""

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is not None and result.errors:
            result.errors = [answered(error) for error in result.errors]


class MaskUnexpectedErrors(MaskErrors):
    """In production, an unexpected error's message is replaced by its reference."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=is_unexpected)

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        reference = reference_of(error)
        return GraphQLError(
            message=f"Unexpected error (reference {reference}).",
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            extensions={"code": ErrorCode.INTERNAL_ERROR.value, "reference": reference},
        )


class OneOperationOrAName(ValidationRule):
    """A document of several operations sent without ``operationName`` is refused
    (GetOperation in the GraphQL spec); strawberry would run its first operation."""

    def enter_document(self, node: DocumentNode, *_: Any) -> object:
        operations = [d for d in node.definitions if isinstance(d, OperationDefinitionNode)]
        if len(operations) > 1:
            names = ", ".join(op.name.value for op in operations if op.name)
            self.report_error(
                GraphQLError(
                    f"The document has {len(operations)} operations: send operationName "
                    f"to say which to run ({names}).",
                    operations,
                    extensions={"code": RequestErrorCode.OPERATION_RESOLUTION_FAILURE.value},
                )
            )
        return SKIP


class CheckedDocuments(StrawberryExtension):
    """Parse each document once, with the token limit, and validate it once, with the
    depth and alias limits: clients send the same few documents again and again.
    Validation errors carry ``GRAPHQL_VALIDATION_FAILED``, and a document of several
    operations must come with the name of the one to run.

    What strawberry's ParserCache, ValidationCache, MaxTokensLimiter and
    AddValidationRules do, in one extension: strawberry sets up every extension's hooks
    on every request, and those four cost more than the cached work.
    """

    def __init__(self, rules: tuple[type[ASTValidationRule], ...]) -> None:
        self.rules = rules

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context
        context.parse_options["max_tokens"] = MAX_TOKENS
        context.validation_rules = (*context.validation_rules, *self.rules)
        # Before the document is parsed this is the operationName the request sent;
        # afterwards strawberry answers the name of the document's first operation.
        if context.operation_name is None:
            context.validation_rules = (*context.validation_rules, OneOperationOrAName)
        yield

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        # A document that cannot be parsed is left to strawberry, which parses it again
        # where syntax errors are answered. Raised from here, the error escaped a
        # subscription as a server traceback and a bare ``complete`` (strawberry#1439).
        with contextlib.suppress(GraphQLError):
            context.graphql_document = _parsed(context.query, **context.parse_options)
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        if context.graphql_document is not None:
            errors = _validated(
                context.schema._schema, context.graphql_document, context.validation_rules
            )
            for error in errors:
                with_code(error, RequestErrorCode.GRAPHQL_VALIDATION_FAILED)
            context.pre_execution_errors = errors
        yield


_parsed = functools.lru_cache(maxsize=CACHED_DOCUMENTS)(parse)
_validated = functools.lru_cache(maxsize=CACHED_DOCUMENTS)(validate_document)


class Schema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Give each error raised before execution its code, and log each unexpected
        error with its reference; a client's mistakes and ``ApiError`` are answers, not
        faults, and are not logged.

        Strawberry calls this for every result before it is answered, over HTTP and
        websockets alike."""
        for error in errors:
            code = code_before_execution(error)
            if code is not None:
                with_code(error, code)
            elif is_unexpected(error):
                reference_of(error)

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
        """Queries and mutations; a subscription sent over HTTP is refused (HTTP 400):
        subscriptions run over the websocket protocol only."""
        allowed = set(allowed_operation_types or (OperationType.QUERY, OperationType.MUTATION))
        return await super().execute(
            query,
            variable_values,
            context_value,
            root_value,
            operation_name,
            allowed - {OperationType.SUBSCRIPTION},
            operation_extensions,
        )


def build_schema(rt: Runtime) -> strawberry.Schema:
    parts: dict[str, list[tuple[str, type]]] = {
        "Query": [
            ("core", Query),
            ("core", ReviewQuery),
            ("core", InboxQuery),
            ("core", FulfilmentQuery),
            ("core", SettlementQuery),
            ("core", PromotionQuery),
            ("core", TrackingQuery),
            ("core", AlertQuery),
            ("core", AnalyticsQuery),
        ],
        "Mutation": [
            ("core", Mutation),
            ("core", ReviewMutation),
            ("core", InboxMutation),
            ("core", FulfilmentMutation),
            ("core", SettlementMutation),
            ("core", PromotionMutation),
            ("core", TrackingMutation),
            ("core", AlertMutation),
        ],
        "Subscription": [
            ("core", Subscription),
            ("core", FulfilmentSubscription),
            ("core", AlertSubscription),
            ("core", AnalyticsSubscription),
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
    # The limit rules are built once: validation is cached by the rule classes, and
    # QueryDepthLimiter and MaxAliasesLimiter build new classes for every instance.
    limit_rules = (
        *QueryDepthLimiter(max_depth=MAX_DEPTH).validation_rules,
        *MaxAliasesLimiter(max_alias_count=MAX_ALIASES).validation_rules,
    )
    extensions: list[Callable[[], StrawberryExtension]] = [lambda: CheckedDocuments(limit_rules)]
    if rt.settings.production:
        extensions.append(MaskUnexpectedErrors)
    # Last, so that it runs first once the operation is done: before masking.
    extensions.append(AnswerDatabaseRefusals)
    schema = Schema(
        query=merge("Query", parts["Query"]),
        mutation=merge("Mutation", parts["Mutation"]),
        subscription=merge("Subscription", parts["Subscription"]),
        types=extra_types,
        extensions=extensions,
    )
    build_inputs_once(schema)
    return schema
