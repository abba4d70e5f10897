"""Sign-ins that cannot starve others: no connection held while hashing, bounded hashing,
one sign-in per request, growing delays shared by every process, and request rates."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from domain.model import Role, User
from domain.ports import PasswordHasher
from domain.services import SessionService, UserService
from gql.context import make_context_getter, password_hashing, sql_unit_of_work
from gql.server.app import create_app
from gql.server.auth import TokenCodec
from gql.server.settings import Settings
from persistence.database import make_engine, make_session_factory
from persistence.passwords import PasswordHashing
from persistence.tables import SignInFailureRow
from tests.api.graphql import ACCOUNTS, LOGIN, GraphQLClient
from tests.conftest import settings_for

PASSWORD = "correct horse battery"
WRONG = "wrong horse battery"
GRAPHQL_RESPONSE = "application/graphql-response+json"
WAIT_FOR_S = 30  # how long a test waits for something that should happen at once


@asynccontextmanager
async def served(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://bankql.test") as http:
        yield http


async def until(condition: Callable[[], bool]) -> None:
    # Polled, since some conditions are met on a hashing thread, outside the event loop.
    async with asyncio.timeout(WAIT_FOR_S):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


def app_checking_with(hasher: PasswordHasher, settings: Settings, engine: AsyncEngine) -> Starlette:
    """The app, with passwords hashed by this hasher on this engine."""
    tokens = TokenCodec(settings.signing_key(), timedelta(seconds=settings.token_ttl_seconds))
    getter = make_context_getter(
        make_session_factory(engine), tokens, hasher, settings.subscription_poll_ms
    )
    return create_app(settings, context_getter=getter)


async def new_user(engine: AsyncEngine, settings: Settings, email: str) -> User:
    users = UserService(sql_unit_of_work(make_session_factory(engine)), password_hashing(settings))
    return await users.register(email=email, password=PASSWORD, role=Role.CUSTOMER)


async def token_for(app: Starlette, user: User) -> str:
    """An access token of a new session of the user, as signing in would give."""
    sessions = SessionService(sql_unit_of_work(make_session_factory(app.state.engine)))
    started = await sessions.start(user, user_agent=None)
    return str(app.state.tokens.issue(user.id, started.session.id).token)


async def login(http: httpx.AsyncClient, email: str, password: str, **headers: str):
    body = {"query": LOGIN, "variables": {"input": {"email": email, "password": password}}}
    return await http.post("/graphql", json=body, headers=headers)


def rate_limited(response: httpx.Response) -> int:
    """The wait a refusal asks for, after checking that every part of it says the same."""
    assert response.status_code == 429, response.text
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    retry_after: int = error["extensions"]["retryAfter"]
    assert response.headers["retry-after"] == str(retry_after)
    return retry_after


class ParkedChecks:
    """A hasher whose password checks wait at a gate the test opens."""

    def __init__(self, inner: PasswordHashing) -> None:
        self.inner = inner
        self.parked = 0
        self.gate = asyncio.Event()

    def turn(self) -> AbstractAsyncContextManager[None]:
        return nullcontext()

    async def hash(self, password: str) -> str:
        return await self.inner.hash(password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        self.parked += 1
        await self.gate.wait()
        return await self.inner.verify(password_hash, password)


async def idle_in_transaction(engine: AsyncEngine) -> int:
    """Sessions on this database inside a transaction and waiting for their client."""
    if engine.dialect.name != "postgresql":
        return 0
    async with engine.connect() as connection:
        found = await connection.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND state LIKE 'idle in transaction%'"
            )
        )
        return int(found.scalar_one())


async def test_no_connection_waits_on_password_checks_and_others_are_served_meanwhile(
    database_url,
):
    settings = settings_for(database_url)
    engine = make_engine(database_url)
    watcher = make_engine(database_url)
    hasher = ParkedChecks(password_hashing(settings))
    app = app_checking_with(hasher, settings, engine)
    alice = await new_user(engine, settings, "alice@example.com")
    try:
        async with served(app) as http:
            # More sign-ins than the pool has connections (5, and 10 more on demand).
            logins = [
                asyncio.create_task(login(http, f"guess-{n}@example.com", WRONG)) for n in range(20)
            ]
            await until(lambda: hasher.parked == 20)
            assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
            assert await idle_in_transaction(watcher) == 0
            reader = GraphQLClient(http, await token_for(app, alice))
            async with asyncio.timeout(WAIT_FOR_S):
                page = (await reader.data(ACCOUNTS))["accounts"]
            assert page["totalCount"] == 0
            hasher.gate.set()
            answers = await asyncio.gather(*logins)
        kinds = {answer.json()["data"]["login"]["__typename"] for answer in answers}
        assert kinds == {"InvalidCredentials"}
    finally:
        hasher.gate.set()
        await app.state.engine.dispose()
        await engine.dispose()
        await watcher.dispose()


async def test_the_check_itself_sees_a_connection_held_across_a_hash(database_url):
    """The probes above are able to fail: a transaction left open shows in both."""
    engine = make_engine(database_url)
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))  # begins, then waits for the client
            assert engine.pool.checkedout() == 1  # type: ignore[attr-defined]
            if engine.dialect.name == "postgresql":
                assert await idle_in_transaction(engine) == 1
    finally:
        await engine.dispose()


class HeldCheck(PasswordHashing):
    """Real hashing, one at a time, no waiting for a turn; the first check holds its turn
    until the test lets go."""

    def __init__(self) -> None:
        super().__init__(1, 64, 1, max_concurrent=1, wait_s=0)
        self.started = threading.Event()
        self.release = threading.Event()

    def _verify(self, password_hash: str | None, password: str) -> bool:
        self.started.set()
        self.release.wait(WAIT_FOR_S)
        return super()._verify(password_hash, password)


async def test_past_the_bound_on_hashes_a_sign_in_is_refused_as_rate_limited(database_url):
    settings = settings_for(database_url)
    hasher = HeldCheck()
    engine = make_engine(database_url)
    app = app_checking_with(hasher, settings, engine)
    try:
        async with served(app) as http:
            first = asyncio.create_task(login(http, "a@example.com", WRONG))
            await until(hasher.started.is_set)
            second = await login(http, "b@example.com", WRONG)
            registering = await http.post(
                "/graphql",
                json={
                    "query": "mutation($i: RegisterInput!) { register(input: $i) { __typename } }",
                    "variables": {"i": {"email": "c@example.com", "password": PASSWORD}},
                },
            )
            hasher.release.set()
            assert (await first).json()["data"]["login"]["__typename"] == "InvalidCredentials"
            # Its turn is free again, and the refused attempt did not count as a failure.
            third = await login(http, "b@example.com", WRONG)
    finally:
        hasher.release.set()
        await app.state.engine.dispose()
        await engine.dispose()
    assert rate_limited(second) == 1
    assert second.json()["data"] is None
    assert rate_limited(registering) == 1
    assert third.json()["data"]["login"]["__typename"] == "InvalidCredentials"


def test_the_bound_on_hashes_comes_from_the_settings():
    settings = settings_for("sqlite+aiosqlite:///unused.db", max_concurrent_hashes=3)
    assert password_hashing(settings)._turns._value == 3
    assert password_hashing(settings).wait_s == 2.0
    everyone = password_hashing(settings_for("sqlite+aiosqlite:///unused.db"))
    assert everyone._turns._value == max(1, (os.cpu_count() or 1) // 2)


SIGN_INS = {
    "two aliased logins": """mutation {
        a: login(input: {email: "a@example.com", password: "wrong horse battery"}) { __typename }
        b: login(input: {email: "a@example.com", password: "other horse battery"}) { __typename }
    }""",
    "a register and a login": """mutation {
        register(input: {email: "a@example.com", password: "correct horse battery"}) { __typename }
        login(input: {email: "a@example.com", password: "correct horse battery"}) { __typename }
    }""",
    "two aliased password changes": """mutation {
        a: changePassword(input: {currentPassword: "wrong horse battery",
          newPassword: "a brand new passphrase"}) { __typename }
        b: changePassword(input: {currentPassword: "other horse battery",
          newPassword: "a brand new passphrase"}) { __typename }
    }""",
    "a login and a password change": """mutation {
        login(input: {email: "a@example.com", password: "wrong horse battery"}) { __typename }
        changePassword(input: {currentPassword: "other horse battery",
          newPassword: "a brand new passphrase"}) { __typename }
    }""",
    "logins in fragments": """mutation { ...One ... on Mutation { ...Two } }
        fragment One on Mutation {
          a: login(input: {email: "a@example.com", password: "wrong horse battery"}) {
            __typename } }
        fragment Two on Mutation {
          b: login(input: {email: "a@example.com", password: "other horse battery"}) {
            __typename } }
    """,
}


@pytest.mark.parametrize("document", SIGN_INS.values(), ids=SIGN_INS.keys())
async def test_one_operation_may_sign_in_once(client, app, document):
    response = await client.post(
        "/graphql", json={"query": document}, headers={"Accept": GRAPHQL_RESPONSE}
    )
    assert response.status_code == 400
    body = response.json()
    assert "data" not in body
    assert body["errors"][0]["message"] == (
        "An operation may hold at most one register, login or changePassword field."
    )
    legacy = await client.post("/graphql", json={"query": document})
    assert legacy.status_code == 200 and legacy.json()["errors"]
    async with app.state.engine.connect() as connection:
        users = await connection.execute(text("SELECT count(*) FROM users"))
        attempts = await connection.execute(text("SELECT count(*) FROM sign_in_failures"))
        assert (users.scalar_one(), attempts.scalar_one()) == (0, 0)


async def test_one_sign_in_among_other_fields_still_runs(client):
    document = """mutation {
        login(input: {email: "a@example.com", password: "wrong horse battery"}) { __typename }
        __typename }"""
    response = await client.post("/graphql", json={"query": document})
    assert response.json()["data"]["login"]["__typename"] == "InvalidCredentials"


async def test_failed_sign_ins_on_one_instance_delay_the_next_on_another(database_url):
    settings = settings_for(database_url, sign_in_free_failures=2)
    first, second = create_app(settings), create_app(settings)
    engine = first.state.engine

    async def failures(**change: Any) -> list[tuple[str, int]]:
        async with engine.begin() as connection:
            if change:
                await connection.execute(update(SignInFailureRow).values(**change))
            rows = await connection.execute(text("SELECT email, failures FROM sign_in_failures"))
            return [(email, count) for email, count in rows]

    try:
        await new_user(engine, settings, "alice@example.com")
        async with served(first) as one, served(second) as other:
            for http in (one, other):
                wrong = await login(http, "alice@example.com", WRONG)
                assert wrong.json()["data"]["login"]["__typename"] == "InvalidCredentials"
            assert await failures() == [("alice@example.com", 2)]
            # Eleven failures, the last one now: the next attempt waits the longest delay.
            # (Set in the database rather than waited for, so that a slow machine cannot
            # outlast a short delay before the refusal is asked for.)
            await failures(failures=11, last_failed_at=datetime.now(UTC))
            refused = await login(one, "ALICE@example.com", PASSWORD, accept=GRAPHQL_RESPONSE)
            also_refused = await login(other, "alice@example.com", PASSWORD)
            assert 50 <= rate_limited(refused) <= 60
            assert 50 <= rate_limited(also_refused) <= 60
            assert refused.headers["content-type"].startswith(GRAPHQL_RESPONSE)
            assert refused.json()["errors"][0]["path"] == ["login"]
            assert refused.json()["data"] is None
            # The wait is over (the last failure a minute ago): the right password works.
            await failures(last_failed_at=datetime.now(UTC) - timedelta(seconds=61))
            signed_in = await login(other, "alice@example.com", PASSWORD)
            assert signed_in.json()["data"]["login"]["__typename"] == "AuthPayload"
            # Success forgot the failures: two more wrong passwords go through undelayed.
            assert await failures() == []
            for http in (one, other):
                wrong = await login(http, "alice@example.com", WRONG)
                assert wrong.json()["data"]["login"]["__typename"] == "InvalidCredentials"
    finally:
        await first.state.engine.dispose()
        await second.state.engine.dispose()


async def requests_until_refused(send: Callable[[], Awaitable[httpx.Response]]) -> list[Any]:
    answers = []
    for _ in range(5):
        answers.append(await send())
        if answers[-1].status_code == 429:
            break
    return answers


async def test_each_user_and_each_anonymous_address_has_a_request_rate(database_url):
    # A token every 1000 s: a refusal asks for (nearly) all of that.
    settings = settings_for(
        database_url,
        rate_limit_per_second=0.001,
        rate_limit_burst=3,
        anonymous_rate_limit_per_second=0.001,
        anonymous_rate_limit_burst=2,
    )
    app = create_app(settings)
    try:
        alice = await new_user(app.state.engine, settings, "alice@example.com")
        bob = await new_user(app.state.engine, settings, "bob@example.com")
        async with served(app) as http:
            as_alice = GraphQLClient(http, await token_for(app, alice))
            as_bob = GraphQLClient(http, await token_for(app, bob))
            query = {"query": "{ viewer { email } }"}

            def send(client: GraphQLClient, **headers: str) -> Any:
                return lambda: http.post("/graphql", json=query, headers=client.headers | headers)

            alices = await requests_until_refused(send(as_alice))
            bobs = await requests_until_refused(send(as_bob, accept=GRAPHQL_RESPONSE))
            anonymous = await requests_until_refused(send(GraphQLClient(http)))
    finally:
        await app.state.engine.dispose()
    assert [r.status_code for r in alices] == [200, 200, 200, 429]
    assert [r.status_code for r in bobs] == [200, 200, 200, 429]
    assert [r.status_code for r in anonymous] == [200, 200, 429]
    for refused in (alices[-1], bobs[-1], anonymous[-1]):
        assert 990 <= rate_limited(refused) <= 1000
        assert "data" not in refused.json()
    assert alices[-1].headers["content-type"].startswith("application/json")
    assert bobs[-1].headers["content-type"].startswith(GRAPHQL_RESPONSE)


async def test_the_default_rates_let_a_busy_frontend_through(client, gql):
    for _ in range(150):
        assert (await gql.data("{ viewer { email } }"))["viewer"]["email"] == "alice@example.com"
