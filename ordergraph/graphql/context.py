"""Per-request context, authentication, and the checks every resolver makes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from graphql import GraphQLError
from starlette.requests import HTTPConnection
from strawberry.types import Info as StrawberryInfo

from ordergraph.core.auth import Principal, Role, authenticate
from ordergraph.core.errors import DomainError, ErrorCode
from ordergraph.core.limits import DEFAULT_PAGE, TextLimit, page_problem, parse_id
from ordergraph.core.runtime import Runtime
from ordergraph.graphql.loaders import Loaders


class ApiError(GraphQLError):
    """An expected error raised from a resolver; shown to clients even in production.

    ``field`` names the argument at fault, as payload errors do.
    """

    def __init__(self, code: ErrorCode, message: str, field: str | None = None) -> None:
        extensions = {"code": code.value} if field is None else {"code": code.value, "field": field}
        super().__init__(message, extensions=extensions)


@dataclass
class Context:
    request: HTTPConnection
    response: Any
    rt: Runtime
    principal: Principal | None
    loaders: Loaders = field(default_factory=Loaders)
    connection_params: dict[str, Any] | None = None


Info = StrawberryInfo[Context, None]


def bearer_token(value: str | None) -> str | None:
    if not value:
        return None
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def principal_for(authorization: str | None) -> Principal | None:
    token = bearer_token(authorization)
    return await authenticate(token) if token else None


def _authentication_required(context: Context) -> str:
    """What to do about a request without a principal, over HTTP or a websocket."""
    websocket = context.connection_params is not None
    sent = context.request.headers.get("authorization")
    if websocket:
        params = context.connection_params or {}
        sent = sent or params.get("Authorization") or params.get("authorization")
    if sent:
        return (
            "Authentication required: the token sent is not one that works "
            "(unknown, revoked or expired)."
        )
    if websocket:
        return (
            'Authentication required: send {"Authorization": "Bearer <token>"} as the '
            "payload of connection_init (GraphiQL sends its Headers pane)."
        )
    return "Authentication required: send the header Authorization: Bearer <token>."


def require(info: Info, *roles: Role) -> Principal:
    """The caller, who must be authenticated and, when ``roles`` are given, hold one of them."""
    principal = info.context.principal
    if principal is None:
        raise ApiError(ErrorCode.UNAUTHENTICATED, _authentication_required(info.context))
    if roles and principal.role not in roles:
        raise ApiError(
            ErrorCode.FORBIDDEN,
            f"The {principal.role} role may not read or change {info.field_name}.",
        )
    return principal


def row_id(
    value: str, what: str, *, field: str = "id", code: ErrorCode = ErrorCode.NOT_FOUND
) -> int:
    """The row id an ``ID`` argument names.

    An ID no row can have (not a number, or beyond what the column holds) raises
    ``DomainError``, the answer an unknown id gets, rather than reaching the database
    as a query it cannot run. ``what`` names the row in the message ("There is no order x.").
    """
    found = parse_id(value)
    if found is not None:
        return found
    raise DomainError.of(code, f"There is no {what} {value}.", field)


def checked(limit: TextLimit, value: str, field: str) -> str:
    """``value`` when it keeps to ``limit``; otherwise an ``ApiError`` naming the argument,
    for the fields that have no payload to carry errors."""
    problem = limit.problem(value, field)
    if problem is not None:
        raise ApiError(problem.code, problem.message, field)
    return value


def page_size(first: int | None, field: str = "first", default: int = DEFAULT_PAGE) -> int:
    """How many items a page holds: ``first`` (``default`` when null), or an
    ``OUT_OF_RANGE`` error naming the argument when it is outside 1 to ``MAX_PAGE``."""
    if first is None:
        return default
    problem = page_problem(first, field)
    if problem is not None:
        raise ApiError(problem.code, problem.message, field)
    return first


OPERATORS = (Role.ADMIN, Role.STAFF)
READERS = (Role.ADMIN, Role.STAFF, Role.CUSTOMER)
