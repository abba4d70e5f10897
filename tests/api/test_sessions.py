"""Sessions: refresh-token rotation and reuse detection, signing out, ending a session,
changing the password, expiry, and no token kept or logged in clear."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager, nullcontext
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import MetaData, select

from gql.server.app import create_app
from gql.server.logs import JsonFormatter, quiet_libraries
from persistence.database import make_engine
from persistence.passwords import PasswordHashing
from tests.api.graphql import ACCOUNTS, GraphQLClient
from tests.api.subscriber import Subscriber
from tests.api.test_sign_in_limits import app_checking_with, served
from tests.conftest import settings_for
from tests.servers import Server, environment

PASSWORD = "correct horse battery"
NEW_PASSWORD = "a brand new passphrase"
VIEWER = "{ viewer { email } }"
PAIR = """token expiresAt refreshToken refreshExpiresAt
  user { email } session { id current userAgent createdAt lastRefreshedAt expiresAt }"""
REGISTER = f"""mutation($input: RegisterInput!) {{ register(input: $input) {{ __typename
  ... on AuthPayload {{ {PAIR} }} }} }}"""
LOGIN = f"""mutation($input: LoginInput!) {{ login(input: $input) {{ __typename
  ... on AuthPayload {{ {PAIR} }} ... on Error {{ message }} }} }}"""
REFRESH = f"""mutation($input: RefreshSessionInput!) {{ refreshSession(input: $input) {{
  __typename ... on AuthPayload {{ {PAIR} }} ... on Error {{ message }} }} }}"""
SIGN_OUT = """mutation($input: SignOutInput) { signOut(input: $input) { endedSessions } }"""
END = """mutation($input: EndSessionInput!) { endSession(input: $input) { __typename
  ... on SignOutPayload { endedSessions } ... on SessionNotFound { message sessionId } } }"""
CHANGE = f"""mutation($input: ChangePasswordInput!) {{ changePassword(input: $input) {{
  __typename ... on AuthPayload {{ {PAIR} }} ... on ValidationError {{ field }}
  ... on Error {{ message }} }} }}"""
SESSIONS = """query($first: Int, $after: String) { viewer { sessions(first: $first, after: $after) {
  edges { cursor node { id current userAgent } } pageInfo { hasNextPage endCursor } } } }"""


class Device:
    """One signed-in client: its access token and refresh token, as a frontend keeps them."""

    def __init__(self, http: httpx.AsyncClient, payload: dict[str, Any]) -> None:
        self.http = http
        self.take(payload)

    def take(self, payload: dict[str, Any]) -> None:
        assert payload["__typename"] == "AuthPayload", payload
        self.payload = payload
        self.token: str = payload["token"]
        self.refresh_token: str = payload["refreshToken"]
        self.session_id: str = payload["session"]["id"]

    @property
    def gql(self) -> GraphQLClient:
        return GraphQLClient(self.http, self.token)

    async def signed_in(self) -> bool:
        """Whether the access token still opens the API: viewer and a protected field."""
        viewer = (await self.gql.data(VIEWER))["viewer"]
        body = await self.gql.request(ACCOUNTS)
        refused = "errors" in body and body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        assert (viewer is None) == refused, (viewer, body)
        return viewer is not None

    async def refresh(self, refresh_token: str | None = None) -> dict[str, Any]:
        result = await GraphQLClient(self.http).data(
            REFRESH, input={"refreshToken": refresh_token or self.refresh_token}
        )
        payload: dict[str, Any] = result["refreshSession"]
        return payload


async def register(http: httpx.AsyncClient, email: str, user_agent: str | None = None) -> Device:
    headers = {"User-Agent": user_agent} if user_agent is not None else {}
    response = await http.post(
        "/graphql",
        json={"query": REGISTER, "variables": {"input": {"email": email, "password": PASSWORD}}},
        headers=headers,
    )
    return Device(http, response.json()["data"]["register"])


async def login(
    http: httpx.AsyncClient,
    email: str,
    password: str = PASSWORD,
    user_agent: str | None = None,
) -> Device:
    payload = await login_payload(http, email, password, user_agent)
    return Device(http, payload)


async def login_payload(
    http: httpx.AsyncClient, email: str, password: str = PASSWORD, user_agent: str | None = None
) -> dict[str, Any]:
    headers = {"User-Agent": user_agent} if user_agent is not None else {}
    response = await http.post(
        "/graphql",
        json={"query": LOGIN, "variables": {"input": {"email": email, "password": password}}},
        headers=headers,
    )
    payload: dict[str, Any] = response.json()["data"]["login"]
    return payload


async def test_signing_in_starts_a_session_with_a_pair_of_tokens(client):
    phone = await register(client, "alice@example.com", user_agent="Phone/1.0")
    payload = phone.payload
    assert payload["session"]["current"] is True
    assert payload["session"]["userAgent"] == "Phone/1.0"
    assert payload["session"]["lastRefreshedAt"] is None
    now = datetime.now(UTC)
    access_left = datetime.fromisoformat(payload["expiresAt"]) - now
    refresh_left = datetime.fromisoformat(payload["refreshExpiresAt"]) - now
    assert timedelta(minutes=14) < access_left <= timedelta(minutes=15)
    assert timedelta(days=29) < refresh_left <= timedelta(days=30)
    assert payload["refreshExpiresAt"] == payload["session"]["expiresAt"]
    # Opaque and long: at least 256 bits of randomness, and not a JWT.
    assert len(phone.refresh_token) >= 43 and phone.refresh_token.count(".") == 0
    assert await phone.signed_in()
    laptop = await login(client, "alice@example.com")
    assert laptop.session_id != phone.session_id
    assert laptop.refresh_token != phone.refresh_token


async def test_a_refresh_trades_the_token_for_a_new_pair_and_the_old_one_is_refused(client):
    device = await register(client, "alice@example.com")
    first_refresh, first_token = device.refresh_token, device.token
    renewed = await device.refresh()
    assert renewed["__typename"] == "AuthPayload"
    assert renewed["refreshToken"] != first_refresh
    assert renewed["session"]["id"] == device.session_id
    assert renewed["session"]["current"] is True
    assert renewed["session"]["lastRefreshedAt"] is not None
    assert renewed["user"]["email"] == "alice@example.com"
    device.take(renewed)
    assert await device.signed_in()
    # The access token of before is the same session's: it lives on until it expires.
    assert await Device(client, renewed | {"token": first_token}).signed_in()
    # And the new refresh token trades again, once each.
    again = await device.refresh()
    assert again["__typename"] == "AuthPayload"
    device.take(again)
    assert await device.signed_in()
    refused = await device.refresh(first_refresh)
    assert refused["__typename"] == "InvalidRefreshToken"


async def test_a_reused_refresh_token_ends_the_session_for_both_holders(client):
    owner = await register(client, "alice@example.com")
    other_device = await login(client, "alice@example.com")
    stolen = owner.refresh_token
    # The thief trades it first; the owner's later try is the reuse.
    thief = Device(client, await owner.refresh(stolen))
    assert await thief.signed_in()
    reused = await owner.refresh(stolen)
    assert reused == {"__typename": "InvalidRefreshToken", "message": reused["message"]}
    assert not await thief.signed_in()
    assert not await owner.signed_in()
    assert (await thief.refresh())["__typename"] == "InvalidRefreshToken"
    # Alice's other sessions are not the stolen one's family.
    assert await other_device.signed_in()


@pytest.mark.parametrize("token", ["", "x" * 43, "x" * 5000])
async def test_unknown_refresh_tokens_are_refused(client, token):
    device = await register(client, "alice@example.com")
    assert (await device.refresh(token or " "))["__typename"] == "InvalidRefreshToken"
    assert await device.signed_in()


@pytest.mark.parametrize("token", ["\ud800", "half of a pair \udfff", "é" * 43, "\u0000"])
async def test_refresh_tokens_that_no_server_issues_are_refused_not_failed_on(client, token):
    # JSON may carry half of a surrogate pair, which UTF-8 cannot encode (nor hash).
    device = await register(client, "alice@example.com")
    body = json.dumps({"query": REFRESH, "variables": {"input": {"refreshToken": token}}})
    response = await client.post(
        "/graphql", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"]["refreshSession"]["__typename"] == "InvalidRefreshToken"
    assert await device.signed_in()
    assert (await device.refresh())["__typename"] == "AuthPayload"


async def test_simultaneous_refreshes_with_one_token_never_leave_two_live_pairs(client):
    device = await register(client, "alice@example.com")
    bystander = await login(client, "alice@example.com")
    results = await asyncio.gather(*(device.refresh() for _ in range(8)))
    winners = [r for r in results if r["__typename"] == "AuthPayload"]
    losers = [r for r in results if r["__typename"] == "InvalidRefreshToken"]
    # Exactly one rotation wins; the others are reuses of a retired token, which end the
    # session, so the winner's pair is refused too: no two pairs live on from one token.
    assert (len(winners), len(losers)) == (1, 7), results
    winner = Device(client, winners[0])
    assert not await winner.signed_in()
    assert (await winner.refresh())["__typename"] == "InvalidRefreshToken"
    assert await bystander.signed_in()


async def test_a_refresh_racing_a_sign_out_leaves_no_live_pair(client):
    await register(client, "alice@example.com")
    for _ in range(4):
        device = await login(client, "alice@example.com")
        renewed, signed_out = await asyncio.gather(device.refresh(), device.gql.data(SIGN_OUT))
        assert signed_out["signOut"]["endedSessions"] == 1
        # Whichever came first, the session is over: a pair the refresh won is refused too.
        if renewed["__typename"] == "AuthPayload":
            device.take(renewed)
        assert not await device.signed_in()
        assert (await device.refresh())["__typename"] == "InvalidRefreshToken"


async def test_signing_out_refuses_the_access_token_on_its_next_request(client):
    phone = await register(client, "alice@example.com")
    laptop = await login(client, "alice@example.com")
    assert await phone.signed_in()
    ended = await phone.gql.data(SIGN_OUT)
    assert ended == {"signOut": {"endedSessions": 1}}
    assert not await phone.signed_in()
    assert (await phone.refresh())["__typename"] == "InvalidRefreshToken"
    assert await laptop.signed_in()
    # Signing out needs a live session, like every protected field.
    again = await phone.gql.request(SIGN_OUT)
    assert again["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_signing_out_everywhere_ends_every_session_of_the_viewer_only(client):
    devices = [await register(client, "alice@example.com")]
    devices += [await login(client, "alice@example.com") for _ in range(2)]
    bob = await register(client, "bob@example.com")
    ended = await devices[0].gql.data(SIGN_OUT, input={"everywhere": True})
    assert ended == {"signOut": {"endedSessions": 3}}
    for device in devices:
        assert not await device.signed_in()
        assert (await device.refresh())["__typename"] == "InvalidRefreshToken"
    assert await bob.signed_in()


async def test_end_session_ends_one_of_the_viewers_sessions_and_no_one_elses(client):
    phone = await register(client, "alice@example.com")
    lost = await login(client, "alice@example.com")
    bob = await register(client, "bob@example.com")
    attempt = (await phone.gql.data(END, input={"sessionId": bob.session_id}))["endSession"]
    assert attempt["__typename"] == "SessionNotFound"
    assert attempt["sessionId"] == bob.session_id
    assert await bob.signed_in()
    assert (await bob.refresh())["__typename"] == "AuthPayload"
    ended = (await phone.gql.data(END, input={"sessionId": lost.session_id}))["endSession"]
    assert ended == {"__typename": "SignOutPayload", "endedSessions": 1}
    assert not await lost.signed_in()
    assert (await lost.refresh())["__typename"] == "InvalidRefreshToken"
    assert await phone.signed_in()
    # An ended session is not found a second time, nor is an ID of another kind accepted.
    twice = (await phone.gql.data(END, input={"sessionId": lost.session_id}))["endSession"]
    assert twice["__typename"] == "SessionNotFound"
    account_id = (await phone.gql.open_account())["id"]
    wrong_kind = await phone.gql.request(END, input={"sessionId": account_id})
    assert wrong_kind["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_changing_the_password_ends_the_other_sessions_and_renews_this_one(client):
    phone = await register(client, "alice@example.com", user_agent="Phone/1.0")
    laptop = await login(client, "alice@example.com")
    changed = (
        await phone.gql.data(
            CHANGE, input={"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD}
        )
    )["changePassword"]
    assert changed["__typename"] == "AuthPayload"
    assert changed["session"]["current"] is True
    # The new session is this request's: its User-Agent is the test client's own.
    assert changed["session"]["userAgent"].startswith("python-httpx/")
    assert not await laptop.signed_in()
    assert (await laptop.refresh())["__typename"] == "InvalidRefreshToken"
    # The device that changed it goes on with the new pair; its old one is spent.
    assert not await phone.signed_in()
    old_refresh = phone.refresh_token
    phone.take(changed)
    assert await phone.signed_in()
    assert (await phone.refresh(old_refresh))["__typename"] == "InvalidRefreshToken"
    assert await phone.signed_in()
    assert (await login_payload(client, "alice@example.com"))["__typename"] == (
        "InvalidCredentials"
    )
    assert await (await login(client, "alice@example.com", NEW_PASSWORD)).signed_in()


async def test_a_password_change_needs_the_current_password_and_a_good_new_one(client):
    device = await register(client, "alice@example.com")
    other = await login(client, "alice@example.com")

    async def change(current: str, new: str) -> dict[str, Any]:
        body = await device.gql.data(CHANGE, input={"currentPassword": current, "newPassword": new})
        result: dict[str, Any] = body["changePassword"]
        return result

    wrong = await change("not my password", NEW_PASSWORD)
    assert wrong["__typename"] == "InvalidCredentials"
    short = await change(PASSWORD, "short")
    assert (short["__typename"], short["field"]) == ("ValidationError", "newPassword")
    empty = await change("", NEW_PASSWORD)
    assert (empty["__typename"], empty["field"]) == ("ValidationError", "currentPassword")
    # Nothing changed: both sessions live, the old password still signs in.
    assert await device.signed_in() and await other.signed_in()
    assert (await login_payload(client, "alice@example.com"))["__typename"] == "AuthPayload"
    anonymous = await GraphQLClient(client).request(
        CHANGE, input={"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD}
    )
    assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_wrong_current_passwords_are_throttled_as_sign_ins_are(database_url):
    app = create_app(settings_for(database_url, sign_in_free_failures=1))
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://bankql.test") as http:
            device = await register(http, "alice@example.com")
            wrong = {"currentPassword": "not my password", "newPassword": NEW_PASSWORD}
            first = await device.gql.data(CHANGE, input=wrong)
            assert first["changePassword"]["__typename"] == "InvalidCredentials"
            second = await http.post(
                "/graphql",
                json={"query": CHANGE, "variables": {"input": wrong}},
                headers=device.gql.headers,
            )
            assert second.status_code == 429
            assert second.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
            # The same count as the address's sign-ins: they wait too.
            signing_in = await http.post(
                "/graphql",
                json={
                    "query": LOGIN,
                    "variables": {"input": {"email": "alice@example.com", "password": PASSWORD}},
                },
            )
            assert signing_in.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    finally:
        await app.state.engine.dispose()


async def test_both_kinds_of_token_expire(database_url):
    settings = settings_for(database_url, token_ttl_seconds=1, refresh_token_ttl_seconds=3)
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://bankql.test") as http:
            device = await register(http, "alice@example.com")
            # An access token lasts one second (whole seconds: it lapses within one).
            await asyncio.sleep(1.1)
            assert not await device.signed_in()
            # The refresh token outlives it: a frontend trades it for a new pair.
            renewed = await device.refresh()
            assert renewed["__typename"] == "AuthPayload"
            device.take(renewed)
            # Unless traded within its lifetime, a refresh token lapses too.
            await asyncio.sleep(3.1)
            assert (await device.refresh())["__typename"] == "InvalidRefreshToken"
            assert not await device.signed_in()
    finally:
        await app.state.engine.dispose()


async def test_the_viewer_lists_their_own_live_sessions_newest_first(client, admin):
    long_agent = "Browser/" + "x" * 300
    first = await register(client, "alice@example.com", user_agent="Phone/1.0")
    second = await login(client, "alice@example.com", user_agent=long_agent)
    ended = await login(client, "alice@example.com")
    third = await login(client, "alice@example.com")
    await ended.gql.data(SIGN_OUT)
    page = (await second.gql.data(SESSIONS))["viewer"]["sessions"]
    listed = [edge["node"] for edge in page["edges"]]
    assert [node["id"] for node in listed] == [
        third.session_id,
        second.session_id,
        first.session_id,
    ]
    assert [node["current"] for node in listed] == [False, True, False]
    assert listed[1]["userAgent"] == long_agent[:200]
    assert listed[2]["userAgent"] == "Phone/1.0"
    assert listed[0]["userAgent"] is not None  # the test client's own
    # A page at a time.
    one = (await second.gql.data(SESSIONS, first=1))["viewer"]["sessions"]
    assert [e["node"]["id"] for e in one["edges"]] == [third.session_id]
    assert one["pageInfo"]["hasNextPage"] is True
    rest = await second.gql.data(SESSIONS, first=5, after=one["pageInfo"]["endCursor"])
    rest_ids = [e["node"]["id"] for e in rest["viewer"]["sessions"]["edges"]]
    assert rest_ids == [second.session_id, first.session_id]
    # Nobody else sees them, administrators included.
    user_id = second.payload["user"]
    alice_id = (await second.gql.data("{ viewer { id } }"))["viewer"]["id"]
    as_admin = await admin.data(
        """query($id: ID!) { node(id: $id) { ... on User { email sessions { edges {
          node { id } } } } } }""",
        id=alice_id,
    )
    assert as_admin["node"]["email"] == user_id["email"]
    assert as_admin["node"]["sessions"]["edges"] == []
    # node() finds one's own session, and no one else's.
    own = await second.gql.data(
        "query($id: ID!) { node(id: $id) { ... on Session { id current } } }", id=first.session_id
    )
    assert own["node"] == {"id": first.session_id, "current": False}
    foreign = await admin.data("query($id: ID!) { node(id: $id) { id } }", id=first.session_id)
    assert foreign["node"] is None


@pytest.fixture
def server(database_url) -> Iterator[Server]:
    running = Server(environment(database_url, BANKQL_SUBSCRIPTION_POLL_MS="50")).start()
    yield running
    running.stop()


async def test_a_stream_signed_in_with_an_ended_session_ends(server):
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        phone = await register(http, "alice@example.com")
        laptop = await login(http, "alice@example.com")
        main = (await phone.gql.open_account("Main"))["id"]
        # Another account for the other stream, so that neither sees the other's markers.
        spare = (await phone.gql.open_account("Spare"))["id"]
        async with (
            Subscriber.connected(server, token=phone.token) as lost_phone,
            Subscriber.connected(server, token=laptop.token) as kept,
        ):
            await lost_phone.subscribe(main)
            await lost_phone.wait_until_live(laptop.gql, main)
            await kept.subscribe(spare)
            await kept.wait_until_live(laptop.gql, spare)
            ended = await laptop.gql.data(END, input={"sessionId": phone.session_id})
            assert ended["endSession"]["endedSessions"] == 1
            # The phone's stream ends on its own, with nothing deposited meanwhile.
            last = await lost_phone.receive()
            closing = await lost_phone.receive()
            # The laptop's stream goes on.
            await laptop.gql.deposit(spare, "1.23")
            assert (await kept.line())["amount"]["amount"] == "1.23"
    assert last["type"] == "next"
    assert last["payload"]["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert "session has ended" in last["payload"]["errors"][0]["message"]
    assert closing == {"id": "1", "type": "complete"}


async def test_no_token_is_stored_or_logged_in_clear(client, app, caplog):
    quiet_libraries()  # as `bankql serve` does at start
    with caplog.at_level(logging.DEBUG):
        device = await register(client, "alice@example.com")
        secrets = [device.token, device.refresh_token]
        renewed = await device.refresh()
        secrets += [renewed["token"], renewed["refreshToken"]]
        reused = await device.refresh(device.refresh_token)
        assert reused["__typename"] == "InvalidRefreshToken"
        other = await login(client, "alice@example.com")
        changed = await other.gql.data(
            CHANGE, input={"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD}
        )
        secrets += [other.token, other.refresh_token]
        secrets += [changed["changePassword"]["token"], changed["changePassword"]["refreshToken"]]
        await Device(client, changed["changePassword"]).gql.data(SIGN_OUT)
    logged = "\n".join(JsonFormatter().format(record) for record in caplog.records)
    assert logged.count("bankql.requests") >= 6
    stored = await everything_stored(app)
    for secret in secrets:
        assert secret not in logged
        assert secret not in stored
    # What is stored is each refresh token's digest: enough to recognise it, not to use it.
    for refresh_token in (device.refresh_token, renewed["refreshToken"], other.refresh_token):
        assert hashlib.sha256(refresh_token.encode()).hexdigest() in stored


def shows_part_of(secret: str, logged: str, length: int = 12) -> bool:
    """Whether any stretch of the secret this long is in the logs: a cut one counts too."""
    return any(secret[i : i + length] in logged for i in range(len(secret) - length + 1))


async def test_no_token_reaches_the_logs_over_websocket_even_at_debug(database_url):
    """At DEBUG, the WebSocket library would log the upgrade's headers and (cut) frames:
    the Authorization header, connection_init's token, a refresh token sent as a variable."""
    server = Server(environment(database_url))
    server.env["BANKQL_LOG_LEVEL"] = "DEBUG"
    server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            device = await register(http, "alice@example.com")
            secrets = [device.token, device.refresh_token]
            async with Subscriber.connected(
                server, token=device.token, header_token=device.token
            ) as socket:
                variables = {"input": {"refreshToken": device.refresh_token}}
                await socket.send(
                    {
                        "id": "1",
                        "type": "subscribe",
                        "payload": {"query": REFRESH, "variables": variables},
                    }
                )
                renewed = (await socket.receive())["payload"]["data"]["refreshSession"]
                secrets += [renewed["token"], renewed["refreshToken"]]
    finally:
        server.stop()
    logged = server.output()
    assert '"level": "DEBUG"' in logged and "connection open" in logged
    for secret in secrets:
        assert not shows_part_of(secret, logged), secret


def test_the_check_of_the_logs_finds_part_of_a_token():
    token = "4sHdf-X6QJ4e5VKqqcb2SGGXSkKraelWy5H87Bnuzlw"
    assert shows_part_of(token, 'message: \'{"refreshToken": "...GGXSkKraelWy5H87Bnuzlw"}\'')
    assert not shows_part_of(token, "message: 'refreshSession'")


async def test_the_check_of_the_logs_finds_a_token_logged_in_clear(client, caplog):
    with caplog.at_level(logging.INFO):
        device = await register(client, "alice@example.com")
        # On purpose: a line that carries the refresh token.
        logging.getLogger("bankql.sessions").info("careless %s", device.refresh_token)
    logged = "\n".join(JsonFormatter().format(record) for record in caplog.records)
    assert device.refresh_token in logged


async def test_the_check_of_what_is_stored_finds_a_token_kept_in_clear(client, app):
    device = await register(client, "alice@example.com")
    # On purpose: a sign-in whose User-Agent header is another session's refresh token.
    await login(client, "alice@example.com", user_agent=device.refresh_token)
    assert device.refresh_token in await everything_stored(app)


async def everything_stored(app) -> str:
    """Every value of every row of every table, as text."""
    tables = MetaData()
    async with app.state.engine.connect() as connection:
        await connection.run_sync(tables.reflect)
        values = []
        for table in tables.sorted_tables:
            for row in (await connection.execute(select(table))).all():
                values.extend(str(value) for value in row)
    assert "sessions" in tables.tables
    return "\n".join(values)


class OneCheckHeld:
    """Real hashes, any number at once; the first password check after hold() waits there
    until let_go(), as a check does on a busy server."""

    def __init__(self, inner: PasswordHashing) -> None:
        self.inner = inner
        self.holding = False
        self.held = asyncio.Event()
        self.gate = asyncio.Event()

    def hold(self) -> None:
        self.holding = True

    def let_go(self) -> None:
        self.gate.set()

    def turn(self) -> AbstractAsyncContextManager[None]:
        return nullcontext()

    async def hash(self, password: str) -> str:
        return await self.inner.hash(password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        if self.holding:
            self.holding = False
            self.held.set()
            await self.gate.wait()
        return await self.inner.verify(password_hash, password)


@pytest.mark.parametrize("change_first", ["login", "changePassword"])
async def test_a_password_checked_while_it_changes_opens_no_session(database_url, change_first):
    """A sign-in, or another password change, that checked the old password while the owner
    changed it must not come out with a live session: the change ends every session, also
    one that a check already under way would open just after it."""
    settings = settings_for(database_url)
    hasher = OneCheckHeld(PasswordHashing(1, 64, 1))
    engine = make_engine(database_url)
    app = app_checking_with(hasher, settings, engine)
    try:
        async with served(app) as http:
            owner = await register(http, "alice@example.com")
            intruder = await login(http, "alice@example.com")
            hasher.hold()
            if change_first == "login":
                late = asyncio.create_task(login_payload(http, "alice@example.com"))
            else:
                late = asyncio.create_task(
                    intruder.gql.data(
                        CHANGE,
                        input={"currentPassword": PASSWORD, "newPassword": "the intruder's own"},
                    )
                )
            await asyncio.wait_for(hasher.held.wait(), 30)
            changed = await owner.gql.data(
                CHANGE, input={"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD}
            )
            owner.take(changed["changePassword"])
            hasher.let_go()
            outcome = await late
            payload = outcome if change_first == "login" else outcome["changePassword"]
            assert payload["__typename"] == "InvalidCredentials", payload
            assert not await intruder.signed_in()
            assert await owner.signed_in()
            assert (await login(http, "alice@example.com", NEW_PASSWORD)).token
    finally:
        await engine.dispose()
