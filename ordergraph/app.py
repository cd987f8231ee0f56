"""The ASGI application: GraphQL (HTTP and websockets), health, and plugin routes."""

from __future__ import annotations

import contextlib
import gc
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson
from cross_web import AsyncHTTPRequestAdapter, HTTPException
from graphql import GraphQLError
from starlette.applications import Starlette
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import Message, Receive, Scope, Send
from strawberry.asgi import ASGIWebSocketAdapter, GraphQL
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.http.parse_content_type import parse_content_type
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from ordergraph.core import assembly, db
from ordergraph.core.errors import ErrorCode
from ordergraph.core.runtime import Runtime
from ordergraph.core.settings import Settings
from ordergraph.graphql.context import Context, principal_for
from ordergraph.graphql.http import (
    CORS,
    JSON,
    RequestRefused,
    graphql_request,
    json_parameter,
    operation_not_found,
    refusal,
    response_media_type,
    status_of,
    unsupported_media_type,
    without_data_unless_executed,
)
from ordergraph.graphql.request_errors import RequestErrorCode
from ordergraph.graphql.schema import build_schema
from ordergraph.web import analytics, fulfilment, graphiql, settlement, tracking
from ordergraph.web.entry import BodyTooLarge, read_body


class TransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws as its protocol says: an operation refused before it runs (a
    syntax error, an unknown operationName) gets an ``error`` message with its code, and
    the connection stays open for the client's other operations; strawberry closes it
    (4400) on these two."""

    @staticmethod
    def _get_pre_execution_close_reason(error: GraphQLError) -> str | None:
        return None


# A close frame's reason holds 123 bytes of UTF-8 (RFC 6455, 5.5).
CLOSE_REASON_BYTES = 123


class WebSocketAdapter(ASGIWebSocketAdapter):
    """Close reasons cut to what a close frame holds: a longer one (an operation id of a
    few hundred characters in "Subscriber for ... already exists") failed the close with
    a server traceback and left the client without a close code."""

    async def close(self, code: int, reason: str) -> None:
        encoded = reason.encode()
        if len(encoded) > CLOSE_REASON_BYTES:
            reason = encoded[: CLOSE_REASON_BYTES - 3].decode(errors="ignore") + "…"
        await super().close(code, reason)


class GraphQLApp(GraphQL):
    """Strawberry's ASGI view, answering every request with a GraphQL response in JSON
    (``graphql.http`` holds the rules) and subscriptions over graphql-transport-ws."""

    graphql_transport_ws_handler_class = TransportWSHandler
    websocket_adapter_class = WebSocketAdapter

    def __init__(self, rt: Runtime) -> None:
        super().__init__(
            build_schema(rt),
            graphql_ide=None if rt.settings.production else "graphiql",
            allowed_origins=rt.settings.allowed_origins,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
        )
        self.rt = rt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Read a POST body only up to ``[ordergraph] max_graphql_body_bytes``, then hand
        it to strawberry, which reads bodies whole; answer a refused request with a
        GraphQL error in JSON, where strawberry answers plain text."""
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            if scope["method"] == "POST":
                limit = self.rt.settings.max_graphql_body_bytes
                try:
                    body = await read_body(request, limit)
                except BodyTooLarge as exc:
                    raise RequestRefused(
                        413, ErrorCode.TOO_LARGE, str(exc), headers={"Connection": "close"}
                    ) from None
                request = Request(scope, _replay(body, receive))
            response = await self.run(request)
        except HTTPException as exc:
            response = refusal(exc, response_media_type(request.headers.get("accept", "")))
        await response(scope, receive, send)

    async def render_graphql_ide(self, request: Request) -> Response:
        """The GraphiQL page whose files this service serves itself, not a CDN."""
        return graphiql.page()

    def encode_json(self, data: object) -> str:
        """Answers in orjson, several times faster than the standard library's encoder;
        as text, which websockets send as text frames. What orjson refuses (an integer
        beyond 64 bits) goes to the standard encoder, as before."""
        try:
            return orjson.dumps(data).decode()
        except orjson.JSONEncodeError:
            return json.dumps(data, separators=(",", ":"))

    def decode_json(self, data: str | bytes) -> object:
        """A body Python's JSON decoder refuses (an integer of thousands of digits, nesting
        deeper than its recursion limit) is malformed JSON, answered with 400."""
        try:
            return json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise json.JSONDecodeError(str(exc), "", 0) from exc

    async def parse_http_body(self, request: AsyncHTTPRequestAdapter) -> GraphQLRequestData:
        """The one GraphQL request of a GET's query string or of a POST's JSON body;
        anything else is refused with its code (``graphql.http``)."""
        if request.method == "GET":
            query_string: dict[str, Any] = dict(request.query_params)
            for name in ("variables", "extensions"):
                query_string[name] = json_parameter(query_string.get(name), name, self.decode_json)
            return graphql_request(query_string)
        content_type, _ = parse_content_type(request.content_type or "")
        if content_type != JSON:
            raise unsupported_media_type(content_type)
        try:
            body = self.decode_json(await request.get_body())
        except json.JSONDecodeError:
            raise RequestRefused(
                400, RequestErrorCode.BAD_REQUEST, "The body is not JSON."
            ) from None
        return graphql_request(body)

    async def execute_single(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        sub_response: Response,
        context: Context,
        root_value: Any,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        """Run the request's operation: GET runs queries only, and subscriptions go over
        the websocket; an operationName the document lacks is a request error."""
        allowed = OperationType.from_http(request_adapter.method)
        try:
            return await self.schema.execute(
                request_data.query,
                variable_values=request_data.variables,
                context_value=context,
                root_value=root_value,
                operation_name=request_data.operation_name,
                allowed_operation_types=allowed,
                operation_extensions=request_data.extensions,
            )
        except CannotGetOperationTypeError as exc:
            return operation_not_found(exc.as_http_error_reason())
        except InvalidOperationTypeError as exc:
            if exc.operation_type != OperationType.SUBSCRIPTION:
                raise RequestRefused(
                    405,
                    RequestErrorCode.METHOD_NOT_ALLOWED,
                    "A mutation is sent with POST: GET runs queries only.",
                    headers={"Allow": "POST"},
                ) from None
        websocket = request.url.replace(
            scheme="wss" if request.url.scheme == "https" else "ws", query=""
        )
        raise RequestRefused(
            400,
            ErrorCode.USE_WEBSOCKET,
            f"Subscriptions are not served over HTTP: open a websocket to {websocket} with "
            "the graphql-transport-ws protocol, and send the Authorization header in "
            "connection_init's payload.",
        )

    async def get_sub_response(self, request: Request) -> Response:
        """The response under way, with the media type the client asked for."""
        sub_response = await super().get_sub_response(request)
        sub_response.media_type = response_media_type(request.headers.get("accept", ""))
        return sub_response

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        """The response body; without ``data`` when no field ran."""
        response = await super().process_result(request, result)
        return without_data_unless_executed(response, result)

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: Response,
    ) -> Response:
        """The answer in the media type the client asked for, with the status the
        GraphQL-over-HTTP spec gives it (batches are refused, so there is one result)."""
        assert isinstance(response_data, dict)
        response = super().create_response(response_data, sub_response)
        media_type = sub_response.media_type or JSON
        response.headers["content-type"] = media_type
        if not sub_response.status_code:
            response.status_code = status_of(response_data, media_type)
        return response

    async def get_context(self, request: HTTPConnection, response: Any = None) -> Context:
        principal = await principal_for(request.headers.get("authorization"))
        return Context(request=request, response=response, rt=self.rt, principal=principal)

    async def on_ws_connect(self, context: Context) -> None:
        """Authenticate a websocket from ``connection_init``'s payload (or its headers).

        A connection without a valid token is acknowledged all the same: each operation
        on it is then answered with an ``UNAUTHENTICATED`` error, which a client shows,
        where closing the socket (4403) leaves GraphiQL retrying without a word.
        """
        params = context.connection_params or {}
        authorization = params.get("Authorization") or params.get("authorization")
        if authorization:
            context.principal = await principal_for(str(authorization))


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` as one message, then the client's own messages
    (its disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


async def health(request: Request) -> JSONResponse:
    """Liveness: the process answers and its database too; ``degraded`` (still 200)
    while Redis cannot be reached."""
    rt: Runtime = request.app.state.rt
    await db.raw("SELECT 1")
    redis_problem = await rt.bus.unreachable()
    return JSONResponse(
        {
            "status": "degraded" if redis_problem else "ok",
            "database": "sqlite" if db.current().is_sqlite else "postgresql",
            "jobs": "workers" if rt.settings.redis_url else "embedded",
            **_redis_state(rt, redis_problem),
        }
    )


async def home(request: Request) -> RedirectResponse:
    """``/`` leads to what a visitor can use: GraphiQL, at ``/graphql``."""
    return RedirectResponse("/graphql")


# A parcel, drawn small: browsers ask every page's site for an icon.
FAVICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">'
    '<rect x="1.5" y="3.5" width="13" height="10" rx="1" fill="#c8a165" stroke="#6b4f2a"/>'
    '<path d="M1.5 7h13M8 3.5v3.5" stroke="#6b4f2a"/></svg>'
)


async def favicon(request: Request) -> Response:
    return Response(FAVICON, media_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"})


async def ready(request: Request) -> JSONResponse:
    """Readiness: 200 when the database and Redis (if configured) both answer, 503
    naming what does not."""
    rt: Runtime = request.app.state.rt
    try:
        await db.raw("SELECT 1")
        database = "ok"
    except Exception as exc:
        database = f"unreachable: {type(exc).__name__}"
    redis_problem = await rt.bus.unreachable()
    ok = database == "ok" and redis_problem is None
    return JSONResponse(
        {
            "status": "ready" if ok else "unready",
            "database": database,
            **_redis_state(rt, redis_problem),
        },
        status_code=200 if ok else 503,
    )


def _redis_state(rt: Runtime, problem: str | None) -> dict[str, str]:
    """``{"redis": "ok"}`` or why it is unreachable; nothing without ``REDIS_URL``."""
    return {"redis": problem or "ok"} if rt.settings.redis_url else {}


def _freeze_startup_objects() -> None:
    """Put what start-up built (modules, the schema, the plugins: most of the process's
    objects) out of the cycle collector's reach until shutdown.

    A page of orders allocates enough that a full collection runs every few dozen
    requests; scanning every object of the process, it held that request up for 100 ms
    and more. Frozen, those objects are not scanned again; what requests allocate is.
    """
    gc.freeze()


def create_app(
    settings: Settings | None = None,
    *,
    installed_plugins: Mapping[str, Any] | None = None,
    run_jobs: bool = True,
    on_startup: list[Any] | None = None,
) -> Starlette:
    """Build the app; plugins, the status graph and the schema are checked here, at once.

    The database, the event bus and the job runner start with the app's lifespan.
    """
    settings = settings or Settings.from_env()
    rt = assembly.build(settings, installed_plugins)
    graphql = GraphQLApp(rt)
    routes: list[BaseRoute] = [
        Route("/", home),
        Route("/favicon.ico", favicon),
        Route("/health", health),
        Route("/ready", ready),
        # Every method reaches the view, which answers those it does not serve in JSON.
        Route("/graphql", CORS(graphql, graphql.allowed_origins)),
        WebSocketRoute("/graphql", graphql),
        *settlement.ROUTES,
        *fulfilment.ROUTES,
        *analytics.ROUTES,
        *tracking.ROUTES,
    ]
    if not settings.production:
        routes += graphiql.routes
    for _, plugin_routes in rt.plugins.call_sync("http_routes").results:
        routes += plugin_routes

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await rt.open(run_jobs=run_jobs)
        try:
            for hook in on_startup or []:
                await hook(rt)
            _freeze_startup_objects()
            yield
        finally:
            gc.unfreeze()
            await rt.close()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.rt = rt
    return app
