"""The per-request context and the composition root that wires services to storage."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import cached_property

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from domain.limits import MoneyLimits
from domain.model import Actor, SessionId, UserId
from domain.ports import EntryNews, PasswordHasher, UnitOfWork, UnitOfWorkFactory
from domain.services import (
    AccountService,
    AuditService,
    EntryWatch,
    HoldService,
    MovementService,
    SessionService,
    SessionWatch,
    UserService,
)
from domain.services.accounts import DEFAULT_LONGEST_STATEMENT_DAYS
from domain.services.holds import DEFAULT_LONGEST_HOLD_SECONDS
from domain.services.watch import DEFAULT_QUEUE_LIMIT
from domain.throttle import SignInThrottle
from gql.schema.loaders import Loaders
from gql.schema.top_level_errors import Unauthenticated
from gql.server.auth import SignedIn, TokenCodec, bearer_token
from gql.server.settings import (
    DEFAULT_SAFETY_LOOK_MS,
    DEFAULT_SUBSCRIPTION_CONNECTIONS,
    DEFAULT_SUBSCRIPTION_POLL_MS,
    Settings,
)
from persistence.database import is_sqlite
from persistence.notifications import PostgresEntryNews
from persistence.passwords import PasswordHashing
from persistence.replicas import ReadRouter
from persistence.snapshot import OpenRead, ReadSnapshot
from persistence.unit_of_work import SharedOut, SqlUnitOfWork

# The longest a stream signed in with an ended session goes on.
SESSION_LOOK_S = 0.5
# How long the viewer one subscription looked up serves the others of its connection.
VIEWER_SHARED_S = 1.0


# Told a movement's kind (DEPOSIT, TRANSFER...) and its currency's code.
MovementObserver = Callable[[str, str], None]


@dataclass
class Context:
    """What every resolver may use: the services, the token codec, and who is signed in."""

    accounts: AccountService
    movements: MovementService
    users: UserService
    sessions: SessionService
    audit: AuditService
    holds: HoldService
    tokens: TokenCodec
    # Shared by every context of the process: one look for new lines serves them all, and
    # one look for ended sessions.
    entry_watch: EntryWatch
    session_watch: SessionWatch
    signed_in: SignedIn | None = None
    # The User-Agent header of the request (or of the WebSocket upgrade), for new sessions.
    user_agent: str | None = None
    # What a WebSocket client sent in connection_init (Strawberry fills it in).
    connection_params: dict[str, object] | None = None
    # A WebSocket connection's client address as the server sees it: connections without a
    # sign-in are counted per address.
    client_address: str | None = None
    # How long one operation, or one event of a subscription, may run; None: no bound.
    operation_timeout_s: float | None = None
    # Told each committed movement's kind and currency (never its amount nor whose it
    # is), when metrics are on.
    on_movement: MovementObserver | None = None
    _viewer: Actor | None = field(default=None, repr=False)
    # A subscription's: the connection whose one lookup of the viewer it shares.
    _connection: Context | None = field(default=None, repr=False)
    # A connection's: its latest lookup of the viewer, when it began, and for whom.
    _lookup: tuple[float, tuple[UserId, SessionId], asyncio.Future[Actor | None]] | None = field(
        default=None, repr=False
    )
    # A WebSocket connection's: a read snapshot, and a context on it, for each of its
    # queries and mutations.
    fresh_reads: Callable[[SignedIn | None], tuple[ReadSnapshot, Context]] | None = field(
        default=None, repr=False
    )
    # A subscription's: tells its connection that the stream's start is over (its resolver
    # runs, or it sends its first message), so that its place among the process's starting
    # streams (see TransportWSHandler) is free again.
    stream_started: Callable[[], None] = field(default=lambda: None, repr=False)

    @cached_property
    def loaders(self) -> Loaders:
        return Loaders(self.accounts, self.users, self.actor, self.holds)

    def forget_loaded(self) -> None:
        """Drop what the loaders hold, for a context that outlives one result."""
        self.__dict__.pop("loaders", None)

    @asynccontextmanager
    async def operation(self, *, subscription: bool) -> AsyncIterator[Context]:
        """The context of one operation on this WebSocket connection, as fresh as an HTTP
        request's: its own loaders and viewer lookup and, for a query or a mutation, its own
        read snapshot. A subscription reads without one, or it would never see a new line."""
        if subscription:
            yield replace(self, _viewer=None, _connection=self, _lookup=None)
            return
        if self.fresh_reads is None:
            yield replace(self, _viewer=None)
            return
        snapshot, context = self.fresh_reads(self.signed_in)
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
        """The signed-in user, looked up once per request with their session in the same
        query; None without a valid token, once the token has expired (a WebSocket
        connection outlives it), and once its session has ended."""
        if self.signed_in is None or self.signed_in.expires_at <= datetime.now(UTC):
            return None
        if self._viewer is None:
            user_id, session_id = self.signed_in.user_id, self.signed_in.session_id
            if self._connection is not None:
                self._viewer = await self._connection._shared_lookup(user_id, session_id)
            else:
                self._viewer = await self.users.actor(user_id, session_id)
        return self._viewer

    async def _shared_lookup(self, user_id: UserId, session_id: SessionId) -> Actor | None:
        """The viewer as a lookup begun at most VIEWER_SHARED_S ago found them: a client
        that starts twenty subscriptions at once costs one lookup, not twenty."""
        now = asyncio.get_running_loop().time()
        lookup = self._lookup
        if (
            lookup is None
            or lookup[1] != (user_id, session_id)
            or now - lookup[0] > VIEWER_SHARED_S
            or (lookup[2].done() and lookup[2].exception() is not None)
        ):
            found = asyncio.ensure_future(self.users.actor(user_id, session_id))
            lookup = (now, (user_id, session_id), found)
            self._lookup = lookup
        return await asyncio.shield(lookup[2])

    async def actor(self) -> Actor:
        """The signed-in user, or an UNAUTHENTICATED error."""
        viewer = await self.viewer()
        if viewer is None:
            raise Unauthenticated("Sign in to do this: send Authorization: Bearer <token>.")
        return viewer


@dataclass(frozen=True)
class LedgerBounds:
    """How long a hold may last, and how long a period one statement may cover."""

    longest_hold_s: int = DEFAULT_LONGEST_HOLD_SECONDS
    longest_statement_days: int = DEFAULT_LONGEST_STATEMENT_DAYS


def ledger_bounds(settings: Settings) -> LedgerBounds:
    return LedgerBounds(settings.max_hold_seconds, settings.max_statement_days)


ContextGetter = Callable[[Request | WebSocket, Response | WebSocket], Awaitable[Context]]


def build_context(
    uow: UnitOfWorkFactory,
    tokens: TokenCodec,
    signed_in: SignedIn | None = None,
    entry_watch: EntryWatch | None = None,
    limits: MoneyLimits | None = None,
    operation_timeout_s: float | None = None,
    *,
    passwords: PasswordHasher | None = None,
    throttle: SignInThrottle | None = None,
    session_watch: SessionWatch | None = None,
    user_agent: str | None = None,
    ledger: LedgerBounds | None = None,
    on_movement: MovementObserver | None = None,
) -> Context:
    sessions = SessionService(uow, tokens.refresh_ttl)
    bounds = ledger or LedgerBounds()
    return Context(
        accounts=AccountService(uow, limits, longest_statement_days=bounds.longest_statement_days),
        movements=MovementService(uow, limits),
        users=UserService(
            uow, passwords or PasswordHashing(), throttle, refresh_ttl=tokens.refresh_ttl
        ),
        sessions=sessions,
        audit=AuditService(uow),
        holds=HoldService(uow, limits, longest_hold_s=bounds.longest_hold_s),
        tokens=tokens,
        entry_watch=entry_watch or EntryWatch(uow, DEFAULT_SUBSCRIPTION_POLL_MS / 1000),
        session_watch=session_watch or session_watch_on(sessions, DEFAULT_SUBSCRIPTION_POLL_MS),
        signed_in=signed_in,
        user_agent=user_agent,
        operation_timeout_s=operation_timeout_s,
        on_movement=on_movement,
    )


def session_watch_on(sessions: SessionService, poll_ms: int) -> SessionWatch:
    """A look for ended sessions as often as for new lines, and at least once a second."""
    return SessionWatch(sessions.live, min(poll_ms / 1000, SESSION_LOOK_S))


def password_hashing(settings: Settings) -> PasswordHashing:
    """The process's one hasher: its bound on concurrent hashes holds for every request."""
    return PasswordHashing(
        time_cost=settings.password_time_cost,
        memory_cost_kib=settings.password_memory_kib,
        parallelism=settings.password_parallelism,
        max_concurrent=settings.hash_concurrency,
        wait_s=settings.hash_wait_ms / 1000,
    )


def money_limits(settings: Settings) -> MoneyLimits:
    return MoneyLimits(
        max_movement=settings.max_movement_amount, max_balance=settings.max_account_balance
    )


def sign_in_throttle(settings: Settings) -> SignInThrottle:
    return SignInThrottle(
        free_failures=settings.sign_in_free_failures,
        max_delay=timedelta(seconds=settings.sign_in_max_delay_seconds),
    )


def entry_news(settings: Settings) -> EntryNews | None:
    """Pushed announcements of new lines on PostgreSQL; none on SQLite, which is looked at."""
    if is_sqlite(settings.database_url):
        return None
    return PostgresEntryNews(settings.listen_database_url or settings.database_url)


def sql_unit_of_work(session_factory: async_sessionmaker[AsyncSession]) -> UnitOfWorkFactory:
    def unit_of_work(*, read_only: bool = False) -> UnitOfWork:
        return SqlUnitOfWork(session_factory, read_only=read_only)

    return unit_of_work


async def _reads_only(request: Request, open_read: OpenRead) -> OpenRead | None:
    """`open_read` for a request that may only read; None for one that may write (it says
    "mutation" anywhere), whose reads, the viewer's lookup first, go to the primary rather
    than wait for a standby. Starlette keeps the body it read for the view to read again."""
    document = request.query_params.get("query", "").encode()
    if request.method == "POST":
        document = await request.body()
    return None if b"mutation" in document else open_read


def viewer_of(connection: HTTPConnection, tokens: TokenCodec) -> SignedIn | None:
    """Who the request's bearer token names; read once per request, then kept on it."""
    if hasattr(connection.state, "signed_in"):
        signed_in: SignedIn | None = connection.state.signed_in
        return signed_in
    token = bearer_token(connection.headers.get("authorization"))
    return tokens.verify(token) if token is not None else None


def make_context_getter(
    session_factory: async_sessionmaker[AsyncSession],
    tokens: TokenCodec,
    passwords: PasswordHasher,
    subscription_poll_ms: int,
    limits: MoneyLimits | None = None,
    operation_timeout_s: float | None = None,
    throttle: SignInThrottle | None = None,
    subscription_connections: int = DEFAULT_SUBSCRIPTION_CONNECTIONS,
    ledger: LedgerBounds | None = None,
    *,
    news: EntryNews | None = None,
    safety_look_ms: int = DEFAULT_SAFETY_LOOK_MS,
    queue_limit: int = DEFAULT_QUEUE_LIMIT,
    max_streams: int | None = None,
    on_movement: MovementObserver | None = None,
    reads: ReadRouter | None = None,
) -> ContextGetter:
    """The context getter for the app: each request (or WebSocket connection) gets fresh
    services on this database, and all share one watch for new statement lines and one
    password hasher. Subscriptions read through a bounded share of the pool, so that no
    number of streams can take the connections requests need. With `news` (PostgreSQL's
    announcements) lines are pushed, and the look at every account is the slow safety one.
    With `reads` (standbys), the reads of a request or of a WebSocket query may be served by
    a standby that has caught up with them; subscriptions read the primary."""
    unit_of_work = SharedOut(sql_unit_of_work(session_factory), subscription_connections)
    interval_ms = safety_look_ms if news is not None else subscription_poll_ms
    watch = EntryWatch(
        unit_of_work,
        interval_ms / 1000,
        news=news,
        queue_limit=queue_limit,
        read_timeout_s=operation_timeout_s,
        max_streams=max_streams,
    )
    sessions = session_watch_on(
        SessionService(unit_of_work, tokens.refresh_ttl), subscription_poll_ms
    )

    open_read = reads.open_read if reads is not None else None

    async def get_context(request: Request | WebSocket, _response: Response | WebSocket) -> Context:
        viewer = viewer_of(request, tokens)
        user_agent = request.headers.get("user-agent")
        if isinstance(request, WebSocket):
            # A connection lives on; one snapshot for it would never see anything new, so
            # each of its operations gets its own (see Context.operation), and the deadline
            # an HTTP request gets from the middleware.
            def fresh_reads(signed_in: SignedIn | None) -> tuple[ReadSnapshot, Context]:
                snapshot = ReadSnapshot(session_factory, open_read)
                return snapshot, on(snapshot.unit_of_work, signed_in)

            def on(uow: UnitOfWorkFactory, signed_in: SignedIn | None) -> Context:
                return build_context(
                    uow,
                    tokens,
                    signed_in,
                    watch,
                    limits,
                    operation_timeout_s,
                    passwords=passwords,
                    throttle=throttle,
                    session_watch=sessions,
                    user_agent=user_agent,
                    ledger=ledger,
                    on_movement=on_movement,
                )

            connection = on(unit_of_work, viewer)
            connection.fresh_reads = fresh_reads
            return connection
        # All the reads of one request from one snapshot; the view closes it at the end.
        snapshot = ReadSnapshot(
            session_factory, open_read and await _reads_only(request, open_read)
        )
        request.state.read_snapshot = snapshot
        return build_context(
            snapshot.unit_of_work,
            tokens,
            viewer,
            watch,
            limits,
            passwords=passwords,
            throttle=throttle,
            session_watch=sessions,
            user_agent=user_agent,
            ledger=ledger,
            on_movement=on_movement,
        )

    return get_context
