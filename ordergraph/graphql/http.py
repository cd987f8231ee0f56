"""GraphQL over HTTP: what a well-formed request is, the media type of the answer, and
the status code each answer gets (the GraphQL-over-HTTP spec; docs/graphql.md).

Every answer is a GraphQL response in JSON, a refused request included:
``{"errors": [{"message": ..., "extensions": {"code": ...}}]}``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from cross_web import HTTPException
from graphql import GraphQLError
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.types import ExecutionResult

from ordergraph.core.errors import ErrorCode
from ordergraph.graphql.request_errors import RequestErrorCode

# How long a browser may keep a preflight's answer (Chromium keeps it 2 hours at most).
PREFLIGHT_MAX_AGE_SECONDS = 3600
JSON = "application/json"
GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"


class RequestRefused(HTTPException):
    """A request that is not one GraphQL request this service runs; answered with
    ``status_code`` and a GraphQL error carrying ``code``."""

    def __init__(
        self,
        status_code: int,
        code: RequestErrorCode | ErrorCode,
        message: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status_code, message)
        self.code = code
        self.headers = dict(headers or {})


# Methods a GraphQL request may use, for the Allow header of a 405.
ALLOWED_METHODS = "GET, POST"


def response_media_type(accept: str) -> str:
    """``application/graphql-response+json`` when the ``Accept`` header ranks it at least
    as high as ``application/json``; else ``application/json``, which clients that send
    no ``Accept`` (or ``*/*``) have always had."""
    ranks: dict[str, float] = {}
    for entry in accept.split(","):
        media_type, *parameters = (part.strip() for part in entry.split(";"))
        quality = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        media_type = media_type.lower()
        ranks[media_type] = max(quality, ranks.get(media_type, 0.0))
    wanted = ranks.get(GRAPHQL_RESPONSE_JSON, 0.0)
    return GRAPHQL_RESPONSE_JSON if wanted > 0 and wanted >= ranks.get(JSON, 0.0) else JSON


def refusal(exc: HTTPException, media_type: str) -> JSONResponse:
    """The GraphQL error response to a refused request."""
    if isinstance(exc, RequestRefused):
        code, headers = exc.code, exc.headers
    elif exc.status_code == 405:  # strawberry's view refuses methods other than GET and POST
        code, headers = RequestErrorCode.METHOD_NOT_ALLOWED, {"Allow": ALLOWED_METHODS}
    elif exc.status_code == 404:  # and, in production, a browser's GET for GraphiQL
        code, headers = ErrorCode.NOT_FOUND, {}
    else:
        code, headers = RequestErrorCode.BAD_REQUEST, {}
    error = {"message": exc.reason, "extensions": {"code": code.value}}
    return JSONResponse(
        {"errors": [error]}, status_code=exc.status_code, headers=headers, media_type=media_type
    )


def json_parameter(value: Any, name: str, decode: Any) -> Any:
    """A GET request's ``variables`` or ``extensions``: JSON in the query string."""
    if not value:
        return None
    try:
        return decode(value)
    except ValueError:
        raise RequestRefused(
            400, RequestErrorCode.BAD_REQUEST, f"The {name} parameter is not JSON."
        ) from None


def graphql_request(params: object) -> GraphQLRequestData:
    """The request's parameters, checked: one JSON object with a ``query`` string and,
    when present, ``variables`` and ``extensions`` objects and an ``operationName``.

    A JSON array (a batch) is refused: each operation is a request of its own
    (docs/graphql.md says why).
    """
    if isinstance(params, list):
        raise RequestRefused(
            400,
            RequestErrorCode.BATCHING_NOT_SUPPORTED,
            "Batched requests (a JSON array) are not served: send each operation in a "
            "request of its own.",
        )
    if not isinstance(params, dict):
        raise RequestRefused(
            400,
            RequestErrorCode.BAD_REQUEST,
            'The request is a JSON object: {"query": "...", "variables": {...}, '
            '"operationName": "..."}.',
        )
    query = params.get("query")
    if query is None or query == "":
        raise RequestRefused(
            400,
            RequestErrorCode.BAD_REQUEST,
            "The query parameter is missing: send a GraphQL document.",
        )
    if not isinstance(query, str):
        raise RequestRefused(
            400, RequestErrorCode.BAD_REQUEST, "The query parameter must be a string."
        )
    for name, kind, described in (
        ("variables", dict, "an object"),
        ("extensions", dict, "an object"),
        ("operationName", str, "a string"),
    ):
        value = params.get(name)
        if value is not None and not isinstance(value, kind):
            raise RequestRefused(
                400,
                RequestErrorCode.BAD_REQUEST,
                f"The {name} parameter must be {described} or null.",
            )
    return GraphQLRequestData(
        query=query,
        variables=params.get("variables"),
        operation_name=params.get("operationName"),
        extensions=params.get("extensions"),
    )


def unsupported_media_type(content_type: str) -> RequestRefused:
    return RequestRefused(
        415,
        RequestErrorCode.UNSUPPORTED_MEDIA_TYPE,
        f"A POST body is JSON: send Content-Type: {JSON} with "
        f'{{"query": "..."}} (this request sent {content_type or "no Content-Type"}).',
    )


def operation_not_found(reason: str) -> ExecutionResult:
    """The answer when the request's operationName names no operation of the document."""
    error = GraphQLError(
        reason, extensions={"code": RequestErrorCode.OPERATION_RESOLUTION_FAILURE.value}
    )
    return ExecutionResult(data=None, errors=[error])


def without_data_unless_executed(
    response: GraphQLHTTPResponse, result: ExecutionResult
) -> GraphQLHTTPResponse:
    """``response`` without its ``data`` entry when no field ran: the document did not
    parse or validate, or its variables or operation were refused (the spec's "request
    error"). A field error keeps ``data``, null or not."""
    if result.data is None and result.errors and all(e.path is None for e in result.errors):
        del response["data"]
    return response


def status_of(response: GraphQLHTTPResponse, media_type: str) -> int:
    """The status of an answered request: 200 in ``application/json``, as clients of that
    media type expect whatever the errors; in ``application/graphql-response+json``, a
    request error (no ``data``) is 400, or 500 when the service failed."""
    if media_type == JSON or "data" in response:
        return 200
    codes = {(e.get("extensions") or {}).get("code") for e in response.get("errors") or ()}  # type: ignore[union-attr]
    return 500 if ErrorCode.INTERNAL_ERROR.value in codes else 400


class CORS(CORSMiddleware):
    """Starlette's CORS for the browser origins in ``ORDERGRAPH_ALLOWED_ORIGINS``: without
    credentials (the API takes a bearer token, never a cookie), for GET and POST, with the
    headers a GraphQL client sends. A preflight from another origin is refused with no
    ``Access-Control-*`` header at all, where Starlette's would still list the methods
    and headers."""

    def __init__(self, app: ASGIApp, origins: Collection[str]) -> None:
        super().__init__(
            app,
            allow_origins=tuple(origins),
            allow_methods=("GET", "POST"),
            allow_headers=("Authorization", "Content-Type", "Accept"),
            allow_credentials=False,
            max_age=PREFLIGHT_MAX_AGE_SECONDS,
        )

    def preflight_response(self, request_headers: Headers) -> Response:
        if self.is_allowed_origin(request_headers["origin"]):
            return super().preflight_response(request_headers)
        return PlainTextResponse(
            "Disallowed CORS origin", status_code=400, headers={"Vary": "Origin"}
        )
