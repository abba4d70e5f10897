"""create_app(settings): the Starlette application with GraphQL at /graphql."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from gql.auth import TokenCodec
from gql.context import Context, ContextGetter, make_context_getter, password_hashing
from gql.middleware import RequestMiddleware
from gql.schema import Limits, build_schema
from gql.settings import Settings
from persistence.database import make_engine, make_session_factory
from persistence.migrate import current_revision, head_revision

READINESS_TIMEOUT_S = 5


class GraphQLView(GraphQL[Context, None]):
    """Strawberry's ASGI view with the context built by the composition root."""

    def __init__(self, context_getter: ContextGetter, settings: Settings) -> None:
        schema = build_schema(
            limits=Limits(settings.max_query_depth, settings.max_aliases, settings.max_tokens),
            introspection=settings.introspection_enabled,
        )
        super().__init__(schema, graphql_ide="graphiql" if settings.graphiql_enabled else None)
        self._context_getter = context_getter

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        return await self._context_getter(request, response)


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
        make_session_factory(engine), tokens, password_hashing(settings)
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

    app = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/graphql", GraphQLView(getter, settings)),
        ],
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
