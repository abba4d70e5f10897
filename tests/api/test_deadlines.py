"""A request's work stops at its deadline or when its client leaves, and leaves nothing behind.

The slow request here is a realistic one: a movement waiting for a lock the test holds (a
row lock on PostgreSQL, the write lock on SQLite), so nothing is timed but the server.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from domain.model import Actor
from domain.money import Currency, Money
from domain.services import (
    AccountService,
    EntryWatch,
    MovementService,
    SessionService,
    UserService,
)
from gql.context import build_context
from gql.schema.ids import to_global_id
from gql.schema.schema import build_schema
from gql.server.app import create_app
from gql.server.auth import TokenCodec
from persistence.database import make_engine
from tests.api.graphql import OPEN, GraphQLClient
from tests.api.subscriber import SUBSCRIBE
from tests.conftest import TEST_SECRET_KEY, settings_for
from tests.fakes import FakePasswordHasher, FakeTransactionRepository, FakeUnitOfWorkFactory
from tests.servers import Server, environment

EUR = Currency.of("EUR")

TINY_TIMEOUT_S = 0.5
# Far longer than any wait below: what ends the work there is the client leaving.
LONG_TIMEOUT_S = 300
GENEROUS_S = 30
ACCOUNTS = "{ accounts { edges { node { name balance { amount } } } } }"


def libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def movements_blocked(database_url: str) -> Iterator[int | None]:
    """Holds what the next movement in EUR must wait for, until the block ends; on
    PostgreSQL yields the holding session's pid.

    PostgreSQL: the EUR funding account's row lock, which an account opened with a deposit
    takes after it has inserted the account. SQLite: the database's write lock.
    """
    if make_url(database_url).get_backend_name() == "sqlite":
        holder = sqlite3.connect(make_url(database_url).database or "", isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")
            yield None
        finally:
            holder.rollback()
            holder.close()
        return
    with psycopg.connect(libpq(database_url)) as holder:
        holder.execute("SELECT id FROM accounts WHERE funding_currency = 'EUR' FOR UPDATE")
        yield holder.info.backend_pid
        holder.rollback()


def other_sessions(database_url: str, *excluded: int | None) -> list[tuple[Any, ...]]:
    """Every other session on the test's database: its pid, state and query."""
    with psycopg.connect(libpq(database_url), autocommit=True) as probe:
        rows = probe.execute(
            "SELECT pid, state, query FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return [row for row in rows if row[0] not in excluded]


async def eventually(check: Any, within_s: float = GENEROUS_S) -> bool:
    """Whether check() comes true within a time far longer than it should need."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if await asyncio.to_thread(check):
            return True
        await asyncio.sleep(0.1)
    return False


def is_postgres(url: str) -> bool:
    return make_url(url).get_backend_name() == "postgresql"


@asynccontextmanager
async def tight_client(database_url: str, token: str | None) -> AsyncIterator[Any]:
    """A second app on the same database whose requests have a tiny deadline."""
    app = create_app(settings_for(database_url, request_timeout_s=TINY_TIMEOUT_S))
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://bankql.test", timeout=GENEROUS_S
        ) as http:
            yield app, GraphQLClient(http, token)
    finally:
        await app.state.engine.dispose()


OPEN_HALFWAY = {"input": {"name": "Halfway", "currency": "EUR", "initialDeposit": "5"}}


async def test_a_request_past_its_deadline_gets_timeout_and_leaves_nothing(gql, database_url):
    await gql.open_account("Main", initial_deposit="10")
    async with tight_client(database_url, gql.token) as (app, tight):
        with movements_blocked(database_url) as holder_pid:
            response = await tight.http.post(
                "/graphql",
                json={"query": OPEN, "variables": OPEN_HALFWAY},
                headers=tight.headers | {"Accept": "application/graphql-response+json"},
            )
            if is_postgres(database_url):
                # While the lock is still held: the request's statement is no longer
                # waiting for it, and no session of the app sits in a transaction.
                assert await eventually(
                    lambda: all(
                        state == "idle" for _, state, _ in other_sessions(database_url, holder_pid)
                    )
                ), other_sessions(database_url, holder_pid)
        # Its connection went back to the pool.
        assert app.state.engine.pool.checkedout() == 0
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/graphql-response+json"
    body = response.json()
    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == "TIMEOUT"
    assert error["extensions"]["requestId"] == response.headers["x-request-id"]
    # The account it had inserted before waiting was rolled back with the rest.
    names = [edge["node"]["name"] for edge in (await gql.data(ACCOUNTS))["accounts"]["edges"]]
    assert names == ["Main"]
    # The same request, unhindered, goes through: the deadline is not what refused it.
    async with tight_client(database_url, gql.token) as (_app, tight):
        opened = (await tight.data(OPEN, **OPEN_HALFWAY))["openAccount"]
    assert opened["__typename"] == "AccountPayload"


async def test_postgres_sessions_carry_the_statement_and_idle_in_transaction_timeouts(
    database_url,
):
    if not is_postgres(database_url):
        pytest.skip("PostgreSQL's own session settings")
    app = create_app(settings_for(database_url, request_timeout_s=TINY_TIMEOUT_S))
    plain = make_engine(database_url)  # as migrations use it: no timeouts
    try:
        async with app.state.engine.connect() as connection:
            statement = (await connection.execute(text("SHOW statement_timeout"))).scalar()
            idle = await connection.execute(text("SHOW idle_in_transaction_session_timeout"))
            idle_timeout = idle.scalar()
        async with plain.connect() as connection:
            unbounded = (await connection.execute(text("SHOW statement_timeout"))).scalar()
        # The backstop at work: a session left idle in its transaction is ended by the server.
        async with app.state.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
            pid = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar()
            assert await eventually(
                lambda: not any(row[0] == pid for row in other_sessions(database_url))
            )
            await connection.invalidate()
    finally:
        await app.state.engine.dispose()
        await plain.dispose()
    assert (statement, idle_timeout, unbounded) == ("500ms", "1500ms", "0")


async def test_a_statement_past_the_statement_timeout_is_cancelled_by_the_server(database_url):
    if not is_postgres(database_url):
        pytest.skip("PostgreSQL's statement_timeout")
    engine = make_engine(database_url, statement_timeout_s=TINY_TIMEOUT_S)
    try:
        async with engine.connect() as connection:
            with pytest.raises(Exception, match="statement timeout"):
                await connection.execute(text("SELECT pg_sleep(60)"))
    finally:
        await engine.dispose()


@pytest.fixture
def patient_server(database_url) -> Iterator[Server]:
    server = Server(environment(database_url, BANKQL_REQUEST_TIMEOUT_S=str(LONG_TIMEOUT_S)))
    server.env["BANKQL_LOG_LEVEL"] = "INFO"  # the request lines say how each one ended
    yield server.start()
    server.stop()


def request_lines(server: Server) -> list[dict[str, Any]]:
    lines = []
    for line in server.output().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("message") == "request":
            lines.append(record)
    return lines


async def test_a_request_whose_client_leaves_stops_long_before_its_deadline(
    patient_server, database_url
):
    async with httpx.AsyncClient(base_url=patient_server.url, timeout=GENEROUS_S) as http:
        alice = await GraphQLClient(http).signed_up("alice@example.com")
        await alice.open_account("Main", initial_deposit="10")
    with movements_blocked(database_url) as holder_pid:
        async with httpx.AsyncClient(base_url=patient_server.url, timeout=1) as impatient:
            with pytest.raises(httpx.ReadTimeout):
                await impatient.post(
                    "/graphql",
                    json={"query": OPEN, "variables": OPEN_HALFWAY},
                    headers={"Authorization": f"Bearer {alice.token}", "X-Request-ID": "gone"},
                )
        # The client has closed its connection; its request's work ends well within the
        # deadline, while the lock it waited for is still held.
        assert await eventually(
            lambda: any(line["request_id"] == "gone" for line in request_lines(patient_server))
        ), patient_server.output()
        if is_postgres(database_url):
            assert all(
                state == "idle" for _, state, _ in other_sessions(database_url, holder_pid)
            ), other_sessions(database_url, holder_pid)
    [line] = [line for line in request_lines(patient_server) if line["request_id"] == "gone"]
    assert (line["outcome"], line["status"]) == ("disconnected", 499)
    assert line["duration_ms"] < LONG_TIMEOUT_S * 1000
    async with httpx.AsyncClient(base_url=patient_server.url, timeout=GENEROUS_S) as http:
        names = [
            edge["node"]["name"]
            for edge in (await GraphQLClient(http, alice.token).data(ACCOUNTS))["accounts"]["edges"]
        ]
    assert names == ["Main"]


class SubscribedStream:
    """accountEntries run in process on in-memory storage, each event with a tiny deadline."""

    def __init__(self) -> None:
        self.storage = FakeUnitOfWorkFactory()
        self.tokens = TokenCodec(TEST_SECRET_KEY, timedelta(hours=1))

    async def start(self) -> Any:
        user = await UserService(self.storage, FakePasswordHasher()).register(
            email="stream@example.com", password="long enough password"
        )
        self.actor = Actor(user.id, user.role)
        self.account = await AccountService(self.storage).open_account(
            actor=self.actor, name="Main", currency=EUR
        )
        started = await SessionService(self.storage).start(user, user_agent=None)
        context = build_context(
            self.storage,
            self.tokens,
            self.tokens.verify(self.tokens.issue(user.id, started.session.id).token),
            EntryWatch(self.storage, 0.01),
            operation_timeout_s=TINY_TIMEOUT_S,
        )
        stream = await build_schema().subscribe(
            SUBSCRIBE,
            variable_values={"id": to_global_id("Account", self.account.id)},
            context_value=context,
        )
        self.stream = stream
        # Live once a first line comes through; deposits before it may go unseen, and every
        # one after it is delivered, so their distinct amounts tell what is still to come.
        next_result = asyncio.ensure_future(anext(stream))
        made = 0
        while not next_result.done():
            made += 1
            await self.deposit(made)
            await asyncio.wait([next_result], timeout=0.1)
        first = self.minor_units(next_result.result())
        for expected in range(first + 1, made + 1):
            assert self.minor_units(await self.next_answer()) == expected
        return stream

    @staticmethod
    def minor_units(result: Any) -> int:
        assert not result.errors, result
        return round(Decimal(result.data["accountEntries"]["amount"]["amount"]) * 100)

    async def deposit(self, minor_units: int = 1) -> None:
        await MovementService(self.storage).deposit(
            actor=self.actor, account_id=self.account.id, amount=Money(minor_units, EUR)
        )

    async def next_answer(self) -> Any:
        return await asyncio.wait_for(anext(self.stream), GENEROUS_S)


async def never_answer(*_args: Any, **_kwargs: Any) -> Any:
    await asyncio.Event().wait()


@pytest.mark.parametrize(
    "slow_step",
    [
        # Resolving a line's fields. (New lines are read once for every stream of an account,
        # by the watch, under a deadline of its own: see tests/unit/test_watch.py.)
        "get_many",
    ],
)
async def test_a_subscription_event_past_its_deadline_ends_the_stream_with_timeout(
    monkeypatch, slow_step
):
    subscribed = SubscribedStream()
    stream = await subscribed.start()
    monkeypatch.setattr(FakeTransactionRepository, slow_step, never_answer)
    await subscribed.deposit()
    ended = await subscribed.next_answer()
    assert [error.extensions["code"] for error in ended.errors] == ["TIMEOUT"]
    with pytest.raises(StopAsyncIteration):
        await subscribed.next_answer()
    await stream.aclose()


async def test_waiting_for_news_has_no_deadline(monkeypatch):
    subscribed = SubscribedStream()
    stream = await subscribed.start()
    # Several deadlines pass with nothing new: the stream just goes on waiting.
    quiet = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(TINY_TIMEOUT_S * 4)
    assert not quiet.done()
    await subscribed.deposit()
    assert SubscribedStream.minor_units(await asyncio.wait_for(quiet, GENEROUS_S)) == 1
    await stream.aclose()


async def test_a_sqlite_statement_past_the_statement_timeout_is_interrupted(tmp_path):
    # SQLite runs a statement on the driver's thread, out of reach of a cancelled task.
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'slow.db'}", statement_timeout_s=0.2)
    endless = (
        "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 100000000)"
        " SELECT count(*) FROM n"
    )
    try:
        async with engine.connect() as connection:
            with pytest.raises(Exception, match="interrupted"):
                await connection.execute(text(endless))
            # The connection goes on serving statements that finish in time.
            assert (await connection.execute(text("SELECT 1"))).scalar() == 1
    finally:
        await engine.dispose()
