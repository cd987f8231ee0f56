"""The ASGI application: GraphQL (HTTP and websockets), health, and plugin routes."""

from __future__ import annotations

import contextlib
import gc
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

from cross_web import HTTPException
from starlette.applications import Starlette
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import Message, Receive, Scope, Send
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLRequestData
from strawberry.http.temporal_response import TemporalResponse
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from ordergraph.core import assembly, db
from ordergraph.core.errors import ErrorCode
from ordergraph.core.runtime import Runtime
from ordergraph.core.settings import Settings
from ordergraph.graphql.context import ApiError, Context, principal_for
from ordergraph.graphql.schema import build_schema
from ordergraph.web import analytics, fulfilment, graphiql, settlement, tracking
from ordergraph.web.entry import BodyTooLarge, read_body


class GraphQLApp(GraphQL):
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
        it to strawberry, which reads bodies whole."""
        if scope["type"] == "http" and scope["method"] == "POST":
            limit = self.rt.settings.max_graphql_body_bytes
            try:
                body = await read_body(Request(scope, receive), limit)
            except BodyTooLarge as exc:
                error = {"message": str(exc), "extensions": {"code": ErrorCode.TOO_LARGE.value}}
                refusal = JSONResponse(
                    {"errors": [error]},
                    status_code=413,
                    headers={"Connection": "close"},
                )
                await refusal(scope, receive, send)
                return
            receive = _replay(body, receive)
        await super().__call__(scope, receive, send)

    async def render_graphql_ide(self, request: Request) -> Response:
        """The GraphiQL page whose files this service serves itself, not a CDN."""
        return graphiql.page()

    def decode_json(self, data: str | bytes) -> object:
        """A body Python's JSON decoder refuses (an integer of thousands of digits, nesting
        deeper than its recursion limit) is malformed JSON: strawberry answers it with 400."""
        try:
            return json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise json.JSONDecodeError(str(exc), "", 0) from exc

    async def execute_single(
        self,
        request: Request,
        request_adapter: Any,
        sub_response: TemporalResponse,
        context: Context,
        root_value: Any,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        """Answer a subscription sent over HTTP with a GraphQL error that says where
        subscriptions go, in JSON as every other answer (strawberry answers it in plain
        text, which a client such as GraphiQL cannot read)."""
        try:
            return await super().execute_single(
                request=request,
                request_adapter=request_adapter,
                sub_response=sub_response,
                context=context,
                root_value=root_value,
                request_data=request_data,
            )
        except HTTPException as exc:
            refused = exc.__cause__
            if not (
                isinstance(refused, InvalidOperationTypeError)
                and refused.operation_type == OperationType.SUBSCRIPTION
            ):
                raise
        websocket = request.url.replace(
            scheme="wss" if request.url.scheme == "https" else "ws", query=""
        )
        sub_response.status_code = 400
        error = ApiError(
            ErrorCode.USE_WEBSOCKET,
            f"Subscriptions are not served over HTTP: open a websocket to {websocket} with "
            "the graphql-transport-ws protocol, and send the Authorization header in "
            "connection_init's payload.",
        )
        return ExecutionResult(data=None, errors=[error])

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
        Route("/graphql", graphql, methods=["GET", "POST"]),
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
