"""create_app(settings): the Starlette application with GraphQL at /graphql."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from cross_web import HTTPException
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import ExecutionResult
from strawberry.types.unset import UnsetType

from gql.auth import TokenCodec
from gql.context import Context, ContextGetter, make_context_getter, password_hashing
from gql.graphiql import GraphiQLAssets
from gql.http import (
    GRAPHQL_RESPONSE,
    JSON,
    is_request_error,
    mutation_over_get,
    negotiate,
    not_acceptable,
    read_json,
    unsupported_media_type,
)
from gql.middleware import RequestMiddleware
from gql.schema import Limits, build_schema
from gql.settings import Settings
from gql.websocket import TransportWSHandler
from persistence.database import make_engine, make_session_factory
from persistence.migrate import current_revision, head_revision

READINESS_TIMEOUT_S = 5


class GraphQLView(GraphQL[Context, None]):
    """Strawberry's ASGI view with the context built by the composition root."""

    graphql_transport_ws_handler_class = TransportWSHandler

    def __init__(
        self, context_getter: ContextGetter, settings: Settings, graphiql: GraphiQLAssets
    ) -> None:
        schema = build_schema(
            limits=Limits.from_settings(settings),
            introspection=settings.introspection_enabled,
        )
        super().__init__(
            schema,
            graphql_ide="graphiql" if settings.graphiql_enabled else None,
            # The protocol of today's clients; its predecessor is no longer maintained.
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            max_subscriptions_per_connection=settings.max_subscriptions_per_connection,
        )
        self._context_getter = context_getter
        self._graphiql = graphiql

    def decode_json(self, data: str | bytes) -> object:
        return read_json(data)

    def parse_json(self, data: str | bytes) -> Any:
        try:
            value = read_json(data)
        except json.JSONDecodeError as error:
            message = f"The request is not JSON that can be read: {error.msg}."
            raise HTTPException(400, message) from None
        # The body arrives as bytes (query parameters as text); an array is a batch, which
        # Strawberry refuses on its own.
        if isinstance(data, bytes) and not isinstance(value, dict | list):
            raise HTTPException(400, "The request body must be a JSON object.")
        return value

    async def render_graphql_ide(self, request: Request) -> Response:
        return self._graphiql.page()

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        return await self._context_getter(request, response)

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        context.sign_in_from_connection_params()
        return await super().on_ws_connect(context)

    async def get_sub_response(self, request: Request | WebSocket) -> Response:
        # Carries the negotiated media type to create_response, and lets process_result set
        # the status code: the two hooks Strawberry gives a result on its way out.
        sub_response = await super().get_sub_response(request)
        sub_response.media_type = getattr(request.state, "media", JSON)
        request.state.sub_response = sub_response
        return sub_response

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        processed = await super().process_result(request, result)
        if request.state.sub_response.media_type == GRAPHQL_RESPONSE and is_request_error(result):
            processed.pop("data", None)
            request.state.sub_response.status_code = 400
        return processed

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: Response,
    ) -> Response:
        response = super().create_response(response_data, sub_response)
        response.headers["content-type"] = sub_response.media_type or JSON
        return response

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope=scope, receive=receive)
        media = negotiate(request.headers.get("accept"))
        wants_page = request.method == "GET" and "text/html" in request.headers.get("accept", "")
        refusal = None
        if media is None and not wants_page:
            refusal = not_acceptable()
        elif request.method == "POST":
            refusal = unsupported_media_type(request.headers.get("content-type"))
        elif request.method == "GET":
            refusal = mutation_over_get(
                request.query_params.get("query"), request.query_params.get("operationName")
            )
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        request.state.media = media
        try:
            response = await self.run(request)
        except HTTPException as error:
            # Malformed requests get the specification's status code with a JSON body.
            response = JSONResponse(
                {"errors": [{"message": error.reason}]}, status_code=error.status_code
            )
        finally:
            snapshot = getattr(request.state, "read_snapshot", None)
            if snapshot is not None:
                await snapshot.close()
        await response(scope, receive, send)


async def healthz(_request: Request) -> JSONResponse:
    """The process is up."""
    return JSONResponse({"status": "ok"})


async def readiness_problem(engine: AsyncEngine) -> str | None:
    """Why the database cannot serve yet, or None when it answers and is at the newest schema."""
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        revision = await current_revision(engine)
    except Exception as error:  # any failure to reach it means "not ready"
        return f"the database does not answer: {type(error).__name__}"
    if revision != head_revision():
        return f"the database schema is at {revision}, not at {head_revision()}: run migrations"
    return None


def create_app(settings: Settings, *, context_getter: ContextGetter | None = None) -> Starlette:
    """Build the app; raises ConfigurationError for settings it cannot start with.

    Tests may pass their own context getter, as the app would build it, to swap storage.
    """
    settings.check_database()
    tokens = TokenCodec(settings.signing_key(), timedelta(seconds=settings.token_ttl_seconds))
    engine = make_engine(settings.database_url)
    getter = context_getter or make_context_getter(
        make_session_factory(engine),
        tokens,
        password_hashing(settings),
        settings.subscription_poll_ms,
    )

    async def readyz(_request: Request) -> JSONResponse:
        problem = await readiness_problem(engine)
        if problem is not None:
            return JSONResponse({"status": "unavailable", "reason": problem}, status_code=503)
        return JSONResponse({"status": "ready"})

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        await engine.dispose()

    graphiql = GraphiQLAssets(settings.graphiql_assets)
    view = GraphQLView(getter, settings, graphiql)
    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/graphql", view),
        WebSocketRoute("/graphql", view),  # subscriptions, over graphql-transport-ws
    ]
    if settings.graphiql_enabled:
        routes.append(Route("/graphiql/{name}", graphiql.asset, methods=["GET"]))
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(RequestMiddleware, max_body_bytes=settings.max_body_bytes),
            # Tokens travel in the Authorization header, never in cookies: no credentials mode.
            Middleware(
                CORSMiddleware,
                allow_origins=settings.cors_origins,
                allow_methods=["GET", "POST", "OPTIONS"],
                allow_headers=["Authorization", "Content-Type", "Accept", "X-Request-ID"],
                expose_headers=["X-Request-ID"],
                max_age=600,
            ),
        ],
        lifespan=lifespan,
    )
    app.state.engine = engine
    app.state.tokens = tokens
    return app
