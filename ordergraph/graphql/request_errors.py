"""Errors of a GraphQL request as a whole, raised before any field runs, and their codes.

These codes are not in ``core.errors.ErrorCode``: that enum is the schema's type of
payload error codes, and no payload carries these. docs/graphql.md lists them with the
HTTP status each gets.
"""

from __future__ import annotations

from enum import StrEnum

from graphql import GraphQLError, GraphQLSyntaxError
from strawberry.exceptions import MissingQueryError
from strawberry.schema.exceptions import CannotGetOperationTypeError


class RequestErrorCode(StrEnum):
    """Stable codes of request errors. New codes may be added; none is renamed.

    The GraphQL ones are the names Apollo Server gives the same errors, which clients
    already know.
    """

    # The HTTP request is not a GraphQL request: its body is not JSON, a parameter has
    # the wrong type, or there is no query.
    BAD_REQUEST = "BAD_REQUEST"
    # A POST body that is not ``application/json`` (``application/graphql`` included).
    UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"
    # A method other than GET and POST, or a mutation sent with GET.
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    # A JSON array of requests: send one request per operation.
    BATCHING_NOT_SUPPORTED = "BATCHING_NOT_SUPPORTED"
    # The document is not GraphQL, or has more tokens than the limit.
    GRAPHQL_PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
    # The document does not fit the schema or the depth and alias limits.
    GRAPHQL_VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
    # A variable's value does not fit its type.
    BAD_USER_INPUT = "BAD_USER_INPUT"
    # No operation of the document has the operationName sent, or the document has
    # several and no operationName says which to run.
    OPERATION_RESOLUTION_FAILURE = "OPERATION_RESOLUTION_FAILURE"


def with_code(error: GraphQLError, code: RequestErrorCode) -> GraphQLError:
    """``error`` with ``extensions.code`` set to ``code`` unless it has a code already."""
    extensions = error.extensions or {}
    if "code" not in extensions:
        error.extensions = {**extensions, "code": code.value}
    return error


def code_before_execution(error: GraphQLError) -> RequestErrorCode | None:
    """The code of an error raised before execution that has none yet, else None.

    Validation errors get theirs where validation runs (``schema.CodeRequestErrors``);
    what else points into the document without a path (no field ran) is graphql-core's
    refusal of a variable's value.
    """
    if (error.extensions or {}).get("code"):
        return None
    if isinstance(error, GraphQLSyntaxError):
        return RequestErrorCode.GRAPHQL_PARSE_FAILED
    cause = error.original_error
    if isinstance(cause, CannotGetOperationTypeError):
        return RequestErrorCode.OPERATION_RESOLUTION_FAILURE
    if isinstance(cause, MissingQueryError):
        return RequestErrorCode.BAD_REQUEST
    if error.nodes and error.path is None:
        return RequestErrorCode.BAD_USER_INPUT
    return None


def is_request_error(error: GraphQLError) -> bool:
    """Whether ``error`` carries one of the codes above."""
    return (error.extensions or {}).get("code") in RequestErrorCode.__members__
