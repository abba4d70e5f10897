"""The per-request context and the composition root that wires services to storage."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cached_property, partial

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from domain.model import Actor
from domain.ports import UnitOfWork, UnitOfWorkFactory
from domain.services import (
    AccountService,
    AuditService,
    EntryWatch,
    MovementService,
    UserService,
)
from gql.auth import SignedIn, TokenCodec, bearer_token
from gql.loaders import Loaders
from gql.problems import Unauthenticated
from gql.settings import DEFAULT_SUBSCRIPTION_POLL_MS, Settings
from persistence.passwords import PasswordHashing
from persistence.snapshot import ReadSnapshot
from persistence.unit_of_work import SqlUnitOfWork


@dataclass
class Context:
    """What every resolver may use: the services, the token codec, and who is signed in."""

    accounts: AccountService
    movements: MovementService
    users: UserService
    audit: AuditService
    tokens: TokenCodec
    # Shared by every context of the process: one look for new lines serves them all.
    entry_watch: EntryWatch
    signed_in: SignedIn | None = None
    # What a WebSocket client sent in connection_init (Strawberry fills it in).
    connection_params: dict[str, object] | None = None
    _viewer: Actor | None = field(default=None, repr=False)
    # A WebSocket connection's: a read snapshot for each of its queries and mutations.
    read_snapshot: Callable[[], ReadSnapshot] | None = field(default=None, repr=False)

    @cached_property
    def loaders(self) -> Loaders:
        return Loaders(self.accounts, self.users, self.actor)

    def forget_loaded(self) -> None:
        """Drop what the loaders hold, for a context that outlives one result."""
        self.__dict__.pop("loaders", None)

    @asynccontextmanager
    async def operation(self, *, subscription: bool) -> AsyncIterator[Context]:
        """The context of one operation on this WebSocket connection, as fresh as an HTTP
        request's: its own loaders and viewer lookup and, for a query or a mutation, its own
        read snapshot. A subscription reads without one, or it would never see a new line."""
        if subscription or self.read_snapshot is None:
            yield replace(self, _viewer=None)
            return
        snapshot = self.read_snapshot()
        context = build_context(
            snapshot.unit_of_work, self.tokens, self.signed_in, self.entry_watch
        )
        context.connection_params = self.connection_params
        try:
            yield context
        finally:
            await snapshot.close()

    def sign_in_from_connection_params(self) -> None:
        """Take the viewer from connection_init's Authorization, as browsers cannot send
        headers with a WebSocket; without one, the upgrade request's header stands."""
        params = self.connection_params or {}
        header = params.get("Authorization", params.get("authorization"))
        if header is None:
            return
        token = bearer_token(header) if isinstance(header, str) else None
        self.signed_in = self.tokens.verify(token) if token is not None else None
        self._viewer = None

    async def viewer(self) -> Actor | None:
        """The signed-in user, looked up once per request; None without a valid token, and
        once the token has expired (a WebSocket connection outlives it)."""
        if self.signed_in is None or self.signed_in.expires_at <= datetime.now(UTC):
            return None
        if self._viewer is None:
            self._viewer = await self.users.actor(self.signed_in.user_id)
        return self._viewer

    async def actor(self) -> Actor:
        """The signed-in user, or an UNAUTHENTICATED error."""
        viewer = await self.viewer()
        if viewer is None:
            raise Unauthenticated("Sign in to do this: send Authorization: Bearer <token>.")
        return viewer


ContextGetter = Callable[[Request | WebSocket, Response | WebSocket], Awaitable[Context]]


def build_context(
    uow: UnitOfWorkFactory,
    tokens: TokenCodec,
    signed_in: SignedIn | None = None,
    entry_watch: EntryWatch | None = None,
) -> Context:
    return Context(
        accounts=AccountService(uow),
        movements=MovementService(uow),
        users=UserService(uow),
        audit=AuditService(uow),
        tokens=tokens,
        entry_watch=entry_watch or EntryWatch(uow, DEFAULT_SUBSCRIPTION_POLL_MS / 1000),
        signed_in=signed_in,
    )


def password_hashing(settings: Settings) -> PasswordHashing:
    return PasswordHashing(
        time_cost=settings.password_time_cost,
        memory_cost_kib=settings.password_memory_kib,
        parallelism=settings.password_parallelism,
    )


def sql_unit_of_work(
    session_factory: async_sessionmaker[AsyncSession], passwords: PasswordHashing
) -> UnitOfWorkFactory:
    def unit_of_work(*, read_only: bool = False) -> UnitOfWork:
        return SqlUnitOfWork(session_factory, passwords, read_only=read_only)

    return unit_of_work


def viewer_of(connection: HTTPConnection, tokens: TokenCodec) -> SignedIn | None:
    token = bearer_token(connection.headers.get("authorization"))
    return tokens.verify(token) if token is not None else None


def make_context_getter(
    session_factory: async_sessionmaker[AsyncSession],
    tokens: TokenCodec,
    passwords: PasswordHashing,
    subscription_poll_ms: int,
) -> ContextGetter:
    """The context getter for the app: each request (or WebSocket connection) gets fresh
    services on this database, and all share one watch for new statement lines."""
    unit_of_work = sql_unit_of_work(session_factory, passwords)
    watch = EntryWatch(unit_of_work, subscription_poll_ms / 1000)

    async def get_context(request: Request | WebSocket, _response: Response | WebSocket) -> Context:
        viewer = viewer_of(request, tokens)
        if isinstance(request, WebSocket):
            # A connection lives on; one snapshot for it would never see anything new, so
            # each of its operations gets its own (see Context.operation).
            connection = build_context(unit_of_work, tokens, viewer, watch)
            connection.read_snapshot = partial(ReadSnapshot, session_factory, passwords)
            return connection
        # All the reads of one request from one snapshot; the view closes it at the end.
        snapshot = ReadSnapshot(session_factory, passwords)
        request.state.read_snapshot = snapshot
        return build_context(snapshot.unit_of_work, tokens, viewer, watch)

    return get_context
