"""Figures for Prometheus at GET /metrics, when BANKQL_METRICS is on.

What is counted: GraphQL operations by type, name and outcome, and how long they took; HTTP
requests by route and status, how long they took and how many database round trips each
made; the database pool's connections in use, idle, and waited for; open WebSocket
connections and subscriptions; rate-limit refusals; and committed money movements by kind
and currency. A label never holds a token, an email address, an amount, a user's id or
anything else a client sent, except an operation name of a safe shape, and only so many of
those per process.

With several server processes on one port, each writes its figures to files in
PROMETHEUS_MULTIPROC_DIR (which `bankql serve` makes for them), and whichever process
answers a scrape sums every process's.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gql.server.middleware import CLIENT_CLOSED_REQUEST
from persistence.round_trips import count_round_trips

MULTIPROCESS_DIRECTORY = "PROMETHEUS_MULTIPROC_DIR"
# Operation names as code writes them; an email address, a token or a sentence does not fit.
SAFE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,39}")
SAFE_CODE = re.compile(r"[A-Z][A-Z0-9_]{0,39}")
OTHER = "other"
ANONYMOUS = "anonymous"
UNKNOWN = "unknown"
SECONDS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
ROUND_TRIPS = (0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64, 128)
# How often each process writes its pool's state for the others' scrapes.
POOL_LOOK_S = 1.0
OPERATION_TYPES = frozenset({"query", "mutation", "subscription"})

# The round trips of the HTTP request being served, when metrics are on.
_round_trips: ContextVar[list[int] | None] = ContextVar("round_trips", default=None)


def multiprocess_directory() -> str | None:
    return os.environ.get(MULTIPROCESS_DIRECTORY) or None


class OperationNames:
    """The label for a client's operation name: the name itself if it has a safe shape and
    is among the first `most` such names this process saw, else "other"."""

    def __init__(self, most: int) -> None:
        self.most = most
        self._known: set[str] = set()

    def label(self, name: object) -> str:
        if name is None or name == "":
            return ANONYMOUS
        if not isinstance(name, str):  # {"operationName": 1}: the request is refused anyway
            return OTHER
        if name in self._known:
            return name
        if len(self._known) >= self.most or not SAFE_NAME.fullmatch(name):
            return OTHER
        self._known.add(name)
        return name


def route_of(path: str) -> str:
    """The route a path belongs to, never the path itself (an account id is in some)."""
    if path == "/graphql":
        return path
    if path.startswith("/accounts/") and path.endswith("/statement.csv"):
        return "/accounts/{id}/statement.csv"
    if path in ("/healthz", "/readyz", "/metrics"):
        return path
    if path.startswith("/graphiql/"):
        return "/graphiql/{name}"
    return OTHER


def pool_state(engine: AsyncEngine) -> tuple[int, int, int]:
    """Connections of the engine's pool in use, idle, and requests waiting for one."""
    pool = engine.sync_engine.pool
    if not isinstance(pool, QueuePool):
        return 0, 0, 0
    # The pool says nothing of its waiters: they wait on its asyncio queue, made on first
    # use. A newer SQLAlchemy that keeps them elsewhere shows 0 here, never an error.
    queue = getattr(pool, "_pool", None)
    waiters = getattr(getattr(queue, "__dict__", {}).get("_queue"), "_getters", ())
    waiting = sum(1 for waiter in waiters if not waiter.done())
    return pool.checkedout(), pool.checkedin(), waiting


class Metrics:
    """The process's figures, in a registry of their own."""

    def __init__(self, *, max_operation_names: int) -> None:
        self.registry = CollectorRegistry()
        self.names = OperationNames(max_operation_names)
        registry = self.registry
        self.operations = Counter(
            "bankql_graphql_operations",
            "GraphQL operations ended, by type, name (as the client gave it when of a safe "
            'shape, else "other") and outcome ("ok", or the code of the first error); a '
            "subscription is counted when it ends",
            ["type", "name", "outcome"],
            registry=registry,
        )
        self.operation_seconds = Histogram(
            "bankql_graphql_operation_duration_seconds",
            "How long queries and mutations took, parsing to result",
            ["type", "name"],
            buckets=SECONDS,
            registry=registry,
        )
        self.requests = Counter(
            "bankql_http_requests",
            "HTTP requests answered, by route and status",
            ["route", "status"],
            registry=registry,
        )
        self.request_seconds = Histogram(
            "bankql_http_request_duration_seconds",
            "How long HTTP requests took, first byte in to last byte out",
            ["route"],
            buckets=SECONDS,
            registry=registry,
        )
        self.round_trips = Histogram(
            "bankql_http_request_database_round_trips",
            "Statements each HTTP request sent to the database, BEGIN and COMMIT included",
            buckets=ROUND_TRIPS,
            registry=registry,
        )
        self.pool = Gauge(
            "bankql_db_pool_connections",
            "Database connections of the pool in use and idle, and requests waiting for one",
            ["state"],
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.websockets = Gauge(
            "bankql_websocket_connections",
            "Open WebSocket connections",
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.subscriptions = Gauge(
            "bankql_subscriptions",
            "Open subscriptions",
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.rate_limited = Counter(
            "bankql_rate_limit_refusals",
            'Requests and operations refused for their rate, by whose limit ("user" for a '
            "signed-in user's, \"address\" for a client address's)",
            ["limit"],
            registry=registry,
        )
        self.movements = Counter(
            "bankql_money_movements",
            "Money movements committed, by kind and currency: counts, never amounts",
            ["kind", "currency"],
            registry=registry,
        )
        self._in_use, self._idle, self._waiting = (
            self.pool.labels(state) for state in ("in_use", "idle", "waiting")
        )
        # Children by label values: a dictionary look-up costs less than labels() does.
        self._children: dict[tuple[Any, ...], Any] = {}
        self._engine: AsyncEngine | None = None

    def _child(self, metric: Any, *values: str) -> Any:
        key = (id(metric), *values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def operation_ended(
        self, kind: str | None, name: str | None, outcome: str, seconds: float
    ) -> None:
        kind = kind if kind in OPERATION_TYPES else UNKNOWN
        label = self.names.label(name)
        outcome = outcome if outcome == "ok" or SAFE_CODE.fullmatch(outcome) else OTHER
        self._child(self.operations, kind, label, outcome).inc()
        if kind != "subscription":  # a stream's life is no latency
            self._child(self.operation_seconds, kind, label).observe(seconds)

    def request_ended(self, path: str, status: int, seconds: float, round_trips: int) -> None:
        route = route_of(path)
        self._child(self.requests, route, str(status)).inc()
        self._child(self.request_seconds, route).observe(seconds)
        self.round_trips.observe(round_trips)

    def refused_for_rate(self, signed_in: bool) -> None:
        self._child(self.rate_limited, "user" if signed_in else "address").inc()

    def movement(self, kind: str, currency: str) -> None:
        self._child(self.movements, kind, currency).inc()

    def subscriptions_changed(self, delta: int) -> None:
        self.subscriptions.inc(delta)

    def watch(self, engine: AsyncEngine) -> None:
        """Count the engine's round trips per request, and report its pool."""
        self._engine = engine
        count_round_trips(engine, _count_round_trip)

    def look_at_pool(self) -> None:
        if self._engine is None:
            return
        in_use, idle, waiting = pool_state(self._engine)
        self._in_use.set(in_use)
        self._idle.set(idle)
        self._waiting.set(waiting)

    @asynccontextmanager
    async def pool_looks(self) -> AsyncIterator[None]:
        """While the app runs, with several processes, its pool's state is written every
        POOL_LOOK_S, so that a scrape answered by another process sees it. A process alone
        looks at its pool when scraped."""
        if multiprocess_directory() is None:
            yield
            return

        async def look() -> None:
            while True:
                self.look_at_pool()
                await asyncio.sleep(POOL_LOOK_S)

        task = asyncio.create_task(look())
        try:
            yield
        finally:
            task.cancel()

    def exposition(self) -> bytes:
        """The text a scrape gets: this process's figures, or every process's summed."""
        self.look_at_pool()
        directory = multiprocess_directory()
        if directory is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
        return generate_latest(registry)

    async def endpoint(self, _request: Request) -> Response:
        return Response(self.exposition(), media_type=CONTENT_TYPE_LATEST)


def _count_round_trip(_kind: str, times: int) -> None:
    counted = _round_trips.get()
    if counted is not None:
        counted[0] += times


class MetricsMiddleware:
    """Times and counts each HTTP request, with its database round trips, and counts open
    WebSocket connections. Outermost, so that it sees the answers the others give."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            self.metrics.websockets.inc()
            try:
                await self.app(scope, receive, send)
            finally:
                self.metrics.websockets.dec()
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Unless an answer starts: the client left before it (the request middleware sends
        # nothing then), or, should the app raise, the server's 500.
        status = CLIENT_CLOSED_REQUEST
        counted = [0]
        token = _round_trips.set(counted)
        started = time.perf_counter()

        async def noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, noting_status)
        except Exception:
            if status == CLIENT_CLOSED_REQUEST:
                status = 500
            raise
        finally:
            _round_trips.reset(token)
            self.metrics.request_ended(
                scope["path"], status, time.perf_counter() - started, counted[0]
            )


def dead_worker(pid: int) -> None:
    """Forget a dead server process's open connections and subscriptions."""
    from prometheus_client import multiprocess

    directory = multiprocess_directory()
    if directory is not None:
        multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]
