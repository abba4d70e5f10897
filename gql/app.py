"""create_app(settings): the Starlette application with GraphQL at /graphql."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from gql.auth import TokenCodec
from gql.context import Context, ContextGetter, make_context_getter, password_hashing
from gql.schema import build_schema
from gql.settings import Settings
from persistence.database import make_engine, make_session_factory


class GraphQLView(GraphQL[Context, None]):
    """Strawberry's ASGI view with the context built by the composition root."""

    def __init__(self, context_getter: ContextGetter, *, graphiql: bool) -> None:
        super().__init__(build_schema(), graphql_ide="graphiql" if graphiql else None)
        self._context_getter = context_getter

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        return await self._context_getter(request, response)


async def healthz(_request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


def create_app(settings: Settings, *, context_getter: ContextGetter | None = None) -> Starlette:
    """Build the app; raises ConfigurationError for settings it cannot start with.

    Tests may pass their own context getter, as the app would build it, to swap storage.
    """
    tokens = TokenCodec(settings.signing_key(), timedelta(seconds=settings.token_ttl_seconds))
    engine = make_engine(settings.database_url)
    getter = context_getter or make_context_getter(
        make_session_factory(engine), tokens, password_hashing(settings)
    )

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        await engine.dispose()

    view = GraphQLView(getter, graphiql=settings.graphiql)
    app = Starlette(
        routes=[Route("/healthz", healthz, methods=["GET"]), Route("/graphql", view)],
        lifespan=lifespan,
    )
    app.state.engine = engine
    app.state.tokens = tokens
    return app
