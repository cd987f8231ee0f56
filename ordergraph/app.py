"""The ASGI application: GraphQL (HTTP and websockets), health, and plugin routes."""

from __future__ import annotations

import contextlib
import gc
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import Message, Receive, Scope, Send
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from ordergraph.core import assembly, db
from ordergraph.core.errors import ErrorCode
from ordergraph.core.runtime import Runtime
from ordergraph.core.settings import Settings
from ordergraph.graphql.context import Context, principal_for
from ordergraph.graphql.schema import build_schema
from ordergraph.web import fulfilment, graphiql, settlement, tracking
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

    async def get_context(self, request: HTTPConnection, response: Any = None) -> Context:
        principal = await principal_for(request.headers.get("authorization"))
        return Context(request=request, response=response, rt=self.rt, principal=principal)

    async def on_ws_connect(self, context: Context) -> None:
        """Authenticate a websocket from ``connection_init``'s payload (or its headers)."""
        params = context.connection_params or {}
        authorization = params.get("Authorization") or params.get("authorization")
        if authorization:
            context.principal = await principal_for(str(authorization))
        if context.principal is None:
            raise ConnectionRejectionError({"message": "Authentication required."})


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
    rt: Runtime = request.app.state.rt
    await db.raw("SELECT 1")
    return JSONResponse(
        {
            "status": "ok",
            "database": "sqlite" if db.current().is_sqlite else "postgresql",
            "jobs": "workers" if rt.settings.redis_url else "embedded",
        }
    )


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
        Route("/health", health),
        Route("/graphql", graphql, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", graphql),
        *settlement.ROUTES,
        *fulfilment.ROUTES,
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
