"""create_app(settings): the Starlette application with GraphQL at /graphql."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from cross_web import HTTPException
from graphql import GraphQLError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import ASGIWebSocketAdapter, GraphQL
from strawberry.extensions import SchemaExtension
from strawberry.http import GraphQLHTTPResponse
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage,
    SubscribeMessage,
)
from strawberry.types import ExecutionResult
from strawberry.types.unset import UnsetType

from gql.context import (
    Context,
    ContextGetter,
    entry_news,
    ledger_bounds,
    make_context_getter,
    money_limits,
    password_hashing,
    sign_in_throttle,
    viewer_of,
)
from gql.schema.documents import parse_charge
from gql.schema.schema import UNAVAILABLE, UNAVAILABLE_RETRY_AFTER_S, Limits, build_schema
from gql.server.auth import TokenCodec
from gql.server.foreground import Foreground
from gql.server.graphiql import GraphiQLAssets
from gql.server.http import (
    GRAPHQL_RESPONSE,
    JSON,
    close_reason,
    encodable,
    is_request_error,
    mutation_over_get,
    negotiate,
    not_acceptable,
    read_json,
    unsupported_media_type,
)
from gql.server.logs import configure_logging
from gql.server.metrics import Metrics, MetricsMiddleware
from gql.server.middleware import RequestMiddleware
from gql.server.rate_limits import (
    ADDRESS_CONNECTIONS_CLOSE,
    OPENING_CONNECTIONS_CLOSE,
    PROCESS_CONNECTIONS_CLOSE,
    USER_CONNECTIONS_CLOSE,
    ConnectionLimits,
    ConnectionRefused,
    RateLimiter,
    RequestLimits,
    retry_after_of,
    too_many_requests,
)
from gql.server.settings import ConfigurationError, Settings, load_settings
from gql.server.statement_csv import statement_csv
from gql.server.websocket import TransportWSHandler
from persistence.database import is_sqlite, make_engine, make_session_factory
from persistence.migrate import current_revision, head_revision
from persistence.replicas import read_router

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

READINESS_TIMEOUT_S = 5


class BoundedCloseWebSocket(ASGIWebSocketAdapter):
    """Closes with a reason its frame can carry, whatever the reason quotes of the client."""

    async def close(self, code: int, reason: str) -> None:
        await super().close(code, close_reason(reason))


class LimitedTransportWS(TransportWSHandler):
    """graphql-transport-ws with the view's limits: connections per user, and the request
    rate for each operation a connection starts."""

    view: GraphQLView

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        self.context.client_address = self.client_address()
        # It now counts as whoever it signs in as, or for its address without a sign-in.
        socket = self.socket()
        if socket is not None:
            self.view.connections.release(socket.scope)
        try:
            await super().handle_connection_init(message)
        except ConnectionRefused as refusal:
            await self.websocket.close(code=refusal.code, reason=refusal.reason)

    def socket(self) -> WebSocket | None:
        """Starlette's WebSocket under Strawberry's adapter (its scope, its client)."""
        return getattr(self.websocket, "ws", None)

    def client_address(self) -> str | None:
        socket = self.socket()
        return socket.client.host if socket is not None and socket.client else None

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        if self.connection_acknowledged and message.get("id") not in self.operations:
            signed_in = self.context.signed_in
            user_id = signed_in.user_id if signed_in else None
            address = self.client_address()
            refusal = self.view.limits.refusal(user_id, address)
            # The operation's task, made from here, charges its new document to this client.
            parse_charge.set(partial(self.view.limits.charge, user_id, address))
            if refusal is not None:
                payload = [refusal.formatted]
                await self.send_message({"id": message["id"], "type": "error", "payload": payload})
                return
        await super().handle_subscribe(message)

    def start_slots(self) -> asyncio.Semaphore:
        return self.view.stream_starts

    async def turn(self) -> None:
        await self.view.foreground.turn()

    async def shutdown(self) -> None:
        try:
            await super().shutdown()
        finally:
            self.view.connections.release(self.context)

    def subscriptions_changed(self, delta: int) -> None:
        if self.view.metrics is not None:
            self.view.metrics.subscriptions_changed(delta)


class GraphQLView(GraphQL[Context, None]):
    """Strawberry's ASGI view with the context built by the composition root."""

    graphql_transport_ws_handler_class = LimitedTransportWS
    websocket_adapter_class = BoundedCloseWebSocket

    def __init__(
        self,
        context_getter: ContextGetter,
        settings: Settings,
        graphiql: GraphiQLAssets,
        tokens: TokenCodec,
        *,
        metrics: Metrics | None = None,
        tracing: Callable[[], SchemaExtension] | None = None,
        foreground: Foreground,
    ) -> None:
        schema = build_schema(
            limits=Limits.from_settings(settings),
            introspection=settings.introspection_enabled,
            observe=metrics.operation_ended if metrics is not None else None,
            tracing=tracing,
        )
        super().__init__(
            schema,
            graphql_ide="graphiql" if settings.graphiql_enabled else None,
            # The protocol of today's clients; its predecessor is no longer maintained.
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            max_subscriptions_per_connection=settings.max_subscriptions_per_connection,
            # A connection that sends no connection_init is closed (4408) as soon as a slow
            # sender would be: it holds a place among the process's connections meanwhile.
            connection_init_wait_timeout=timedelta(seconds=settings.receive_timeout_s),
        )
        self._context_getter = context_getter
        self._graphiql = graphiql
        self._tokens = tokens
        self.metrics = metrics
        self.limits = RequestLimits(
            RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst),
            RateLimiter(
                settings.anonymous_rate_limit_per_second, settings.anonymous_rate_limit_burst
            ),
            on_refusal=metrics.refused_for_rate if metrics is not None else None,
        )
        self.connections = ConnectionLimits(
            per_user=settings.max_ws_connections_per_user,
            per_process=settings.max_ws_connections,
        )
        self.stream_starts = asyncio.Semaphore(settings.subscription_starts)
        self.documents = schema.documents
        # Shared with the request middleware, which counts the requests in flight.
        self.foreground = foreground

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
        signed_in = context.signed_in
        user_id = signed_in.user_id if signed_in is not None else None
        if not self.connections.admit(user_id, context.client_address, context):
            raise ConnectionRefused(
                *(USER_CONNECTIONS_CLOSE if user_id is not None else ADDRESS_CONNECTIONS_CLOSE)
            )
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
        sub_response = request.state.sub_response
        if sub_response.media_type == GRAPHQL_RESPONSE and is_request_error(result):
            processed.pop("data", None)
            sub_response.status_code = 400
        retry_after = retry_after_of(result.errors)
        if retry_after is not None:
            sub_response.status_code = 429
            sub_response.headers["Retry-After"] = str(retry_after)
        elif unavailable(result.errors):
            sub_response.status_code = 503
            sub_response.headers["Retry-After"] = str(UNAVAILABLE_RETRY_AFTER_S)
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
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
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
        if refusal is None:
            # Before the document is read: a client over its rate costs no parse.
            refusal = self.over_rate(request, media or JSON)
        if refusal is None and request.method == "GET":
            refusal = mutation_over_get(
                self.documents.operation_type(
                    request.query_params.get("query"), request.query_params.get("operationName")
                )
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
                {"errors": [{"message": encodable(error.reason)}]}, status_code=error.status_code
            )
        finally:
            snapshot = getattr(request.state, "read_snapshot", None)
            if snapshot is not None:
                await snapshot.end()
        await response(scope, receive, send)

    def over_rate(self, request: Request, media: str = JSON) -> Response | None:
        signed_in = viewer_of(request, self._tokens)
        # The context getter takes it from here: one signature check per request.
        request.state.signed_in = signed_in
        address = request.client.host if request.client else None
        user_id = signed_in.user_id if signed_in else None
        refusal = self.limits.refusal(user_id, address)
        if refusal is not None:
            return too_many_requests(refusal, media)
        # A document new to the process costs the request's bucket more (rate_limits.py).
        parse_charge.set(partial(self.limits.charge, user_id, address))
        return None

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Counts the process's connections; past its limit, a new one is accepted only to
        be closed at once with 1013 (try again later), which clients retry."""
        if not self.connections.enter():
            await _close_at_once(scope, receive, send, *PROCESS_CONNECTIONS_CLOSE)
            return
        # Until its connection_init says who it is, a connection counts among those opening
        # from its address: else one client could open every connection of the process and
        # never send it.
        client = scope.get("client")
        if not self.connections.admit(None, client[0] if client else None, scope, opening=True):
            self.connections.leave()
            await _close_at_once(scope, receive, send, *OPENING_CONNECTIONS_CLOSE)
            return
        foreground = self.foreground

        async def in_turn() -> Message:
            # Each message the client sends (its connection_init, each subscribe) is
            # handled when its turn comes: while HTTP requests are in flight, they go first.
            # The connection's opening and its end do not wait: a client that has left
            # must free its place in the connection limits at once.
            message = await receive()
            if message["type"] == "websocket.receive":
                await foreground.turn()
            return message

        try:
            await super().__call__(scope, in_turn, send)
        finally:
            self.connections.release(scope)
            self.connections.leave()


async def _close_at_once(
    scope: Scope, receive: Receive, send: Send, code: int, reason: str
) -> None:
    """Accept a WebSocket (a close code only reaches the client after that) and close it."""
    websocket = WebSocket(scope, receive, send)
    offered = scope.get("subprotocols") or []
    subprotocol = (
        GRAPHQL_TRANSPORT_WS_PROTOCOL if GRAPHQL_TRANSPORT_WS_PROTOCOL in offered else None
    )
    await websocket.accept(subprotocol=subprotocol)
    await websocket.close(code=code, reason=reason)


def unavailable(errors: list[GraphQLError] | None) -> bool:
    """Whether a result failed for want of a reachable, writable database."""
    return any((error.extensions or {}).get("code") == UNAVAILABLE for error in errors or ())


async def healthz(_request: Request) -> JSONResponse:
    """The process is up."""
    return JSONResponse({"status": "ok"})


async def readiness_problem(engine: AsyncEngine) -> str | None:
    """Why the database cannot serve yet, or None when it answers, takes writes (on
    PostgreSQL: a primary, not a standby) and is at the newest schema."""
    try:
        async with engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                read_only = await connection.execute(text("SHOW transaction_read_only"))
                if read_only.scalar() == "on":
                    # A server that turned standby: the pool opens new connections, which
                    # target_session_attrs=read-write sends to the writable one, if any.
                    await connection.invalidate()
                    return "the database takes no writes: no writable primary is reachable"
            else:
                await connection.execute(text("SELECT 1"))
        revision = await current_revision(engine)
    except Exception as error:  # any failure to reach it means "not ready"
        return f"the database does not answer: {type(error).__name__}"
    if revision != head_revision():
        return f"the database schema is at {revision}, not at {head_revision()}: run migrations"
    return None


def create_app(
    settings: Settings,
    *,
    context_getter: ContextGetter | None = None,
    tracer_provider: TracerProvider | None = None,
) -> Starlette:
    """Build the app; raises ConfigurationError for settings it cannot start with.

    Tests may pass their own context getter, as the app would build it, to swap storage,
    and, with tracing on, their own tracer provider instead of the one sending to the
    collector.
    """
    # Every refusal at once, so that one start names all that must change.
    problems: list[str] = []
    try:
        settings.check_database()
    except ConfigurationError as problem:
        problems.append(str(problem))
    try:
        key = settings.signing_key()
    except ConfigurationError as problem:
        problems.append(str(problem))
    if (
        not settings.database_url.startswith("sqlite")
        and settings.subscription_connections >= settings.db_pool_size
    ):
        problems.append(
            f"BANKQL_SUBSCRIPTION_CONNECTIONS ({settings.subscription_connections}) must be "
            f"less than BANKQL_DB_POOL_SIZE ({settings.db_pool_size}), or subscriptions could "
            "hold every connection requests need."
        )
    if settings.replica_database_urls and is_sqlite(settings.database_url):
        problems.append(
            "BANKQL_REPLICA_DATABASE_URLS: standbys replay a PostgreSQL primary; "
            "BANKQL_DATABASE_URL is SQLite, so leave the replicas out."
        )
    if problems:
        raise ConfigurationError(" ".join(problems))
    tokens = TokenCodec(
        key,
        timedelta(seconds=settings.token_ttl_seconds),
        timedelta(seconds=settings.refresh_token_ttl_seconds),
    )
    # No statement outlives the request that runs it; see gql/server/deadline.py.
    engine = make_engine(
        settings.database_url,
        statement_timeout_s=settings.request_timeout_s,
        pool_size=settings.db_pool_size,
        prepared_statements=settings.prepared_statements,
    )
    sessions = make_session_factory(engine)
    reads = None
    if settings.replica_database_urls:
        reads = read_router(
            engine,
            sessions,
            settings.replica_database_urls,
            statement_timeout_s=settings.request_timeout_s,
            prepared_statements=settings.prepared_statements,
        )
    metrics = None
    if settings.metrics_enabled:
        metrics = Metrics(max_operation_names=settings.metrics_max_operation_names)
        metrics.watch(engine)
    provider = None
    operation_spans: Callable[[], SchemaExtension] | None = None
    if settings.tracing:
        # Imported only now: with tracing off, none of it is loaded.
        from gql.server import tracing

        provider = tracer_provider or tracing.tracer_provider(settings)
        tracing.trace_sql(engine, provider)
        operation_spans = tracing.operation_spans(provider)
    getter = context_getter or make_context_getter(
        sessions,
        tokens,
        password_hashing(settings),
        settings.subscription_poll_ms,
        money_limits(settings),
        settings.request_timeout_s,
        sign_in_throttle(settings),
        settings.subscription_connections,
        ledger_bounds(settings),
        news=entry_news(settings),
        safety_look_ms=settings.subscription_safety_look_ms,
        queue_limit=settings.subscription_queue_limit,
        max_streams=settings.max_subscriptions,
        on_movement=metrics.movement if metrics is not None else None,
        reads=reads,
    )

    async def readyz(_request: Request) -> JSONResponse:
        problem = await readiness_problem(engine)
        if problem is not None:
            return JSONResponse({"status": "unavailable", "reason": problem}, status_code=503)
        return JSONResponse({"status": "ready"})

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        try:
            if metrics is None:
                yield
            else:
                async with metrics.pool_looks():
                    yield
        finally:
            await engine.dispose()
            if reads is not None:
                await reads.dispose()
            if provider is not None:
                provider.shutdown()  # sends the spans still batched

    graphiql = GraphiQLAssets(settings.graphiql_assets)
    foreground = Foreground()
    view = GraphQLView(
        getter,
        settings,
        graphiql,
        tokens,
        metrics=metrics,
        tracing=operation_spans,
        foreground=foreground,
    )
    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/graphql", view),
        WebSocketRoute("/graphql", view),  # subscriptions, over graphql-transport-ws
        Route(
            "/accounts/{account_id}/statement.csv",
            statement_csv(getter, view.over_rate),
            methods=["GET"],
        ),
    ]
    if settings.graphiql_enabled:
        routes.append(Route("/graphiql/{name}", graphiql.asset, methods=["GET"]))
    if metrics is not None:
        routes.append(Route("/metrics", metrics.endpoint, methods=["GET"]))
    app = Starlette(
        routes=routes,
        middleware=[
            # Outermost, to see every answer, refusals of the request middleware included.
            *([Middleware(MetricsMiddleware, metrics=metrics)] if metrics is not None else []),
            Middleware(
                RequestMiddleware,
                max_body_bytes=settings.max_body_bytes,
                request_timeout_s=settings.request_timeout_s,
                receive_timeout_s=settings.receive_timeout_s,
                foreground=foreground,
            ),
            # Inside the request middleware, so that the request id is known.
            *(
                [Middleware(tracing.RequestSpans, provider=provider)]
                if provider is not None
                else []
            ),
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
    app.state.reads = reads
    app.state.tokens = tokens
    app.state.metrics = metrics
    return app


def app_from_environment() -> Starlette:
    """The app with settings from the environment and .env, for `uvicorn --factory
    gql.server.app:app_from_environment`, process managers, and `bankql serve --reload`."""
    settings = load_settings()
    configure_logging(settings.log_level)
    return create_app(settings)
