"""accountEntries over graphql-transport-ws, against real `bankql serve` processes.

A subscription starts from the lines committed after it began, and a client cannot see that
moment; so each stream is first shown live with marker deposits, then the test's movements
follow, and a last marker proves that nothing else arrived in between.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import jwt
import pytest
import websockets

from gql.server.auth import TokenCodec
from tests.api.graphql import GraphQLClient
from tests.api.subscriber import SUBSCRIBE, Subscriber
from tests.conftest import TEST_SECRET_KEY
from tests.servers import Server, environment

STATEMENT = """query Statement($id: ID!) { account(id: $id) {
  entries(first: 100) { edges { node { id amount { amount } balanceAfter { amount } } } } } }"""
NO_SUCH_ACCOUNT = "QWNjb3VudDo5ODc2NTQ"  # Account:987654
FIRST_LINE = "query($id: ID!) { account(id: $id) { entries(first: 1) { edges { node { id } } } } }"
RESUME = """subscription Lines($id: ID!, $after: ID) {
  accountEntries(accountId: $id, afterEntryId: $after) { id amount { amount } } }"""
NOT_VALID = "subscription Lines($id: ID!) { accountEntries(accountId: $id) { nope } }"


def server_env(database_url: str, **variables: str) -> dict[str, str]:
    return environment(database_url, BANKQL_SUBSCRIPTION_POLL_MS="50", **variables)


@pytest.fixture
def two_servers(database_url) -> Iterator[tuple[Server, Server]]:
    env = server_env(database_url)
    first, second = Server(env).start(), Server(env).start()
    yield first, second
    first.stop()
    second.stop()


@pytest.fixture
def one_server(database_url) -> Iterator[Server]:
    # One operation per connection and small messages, so that the limits can be seen too.
    env = server_env(
        database_url, BANKQL_MAX_SUBSCRIPTIONS_PER_CONNECTION="1", BANKQL_MAX_BODY_BYTES="2048"
    )
    server = Server(env)
    yield server.start()
    server.stop()


@asynccontextmanager
async def http_client(server: Server) -> AsyncIterator[GraphQLClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        yield GraphQLClient(http)


def amounts(lines: list[dict[str, Any]]) -> list[tuple[str, Decimal, str]]:
    return [
        (
            line["amount"]["amount"],
            Decimal(line["balanceAfter"]["amount"]),
            line["transaction"]["kind"],
        )
        for line in lines
    ]


async def test_lines_committed_on_another_process_reach_each_reader_once_and_in_order(
    two_servers,
):
    near, far = two_servers
    async with http_client(near) as anonymous, http_client(far) as elsewhere:
        alice = await anonymous.signed_up("alice@example.com")
        bob = await anonymous.signed_up("bob@example.com")
        main = (await alice.open_account("Main", initial_deposit="100"))["id"]
        savings = (await alice.open_account("Savings"))["id"]
        bobs = (await bob.open_account("Bob's"))["id"]
        # The movements go through the other process, as the same users.
        alice_far, bob_far = (
            GraphQLClient(elsewhere.http, alice.token),
            GraphQLClient(elsewhere.http, bob.token),
        )

        async with (
            Subscriber.connected(near, token=alice.token) as alices,
            # Browsers cannot send headers with a WebSocket; other clients may.
            Subscriber.connected(near, header_token=bob.token) as bobs_stream,
        ):
            await alices.subscribe(main)
            await bobs_stream.subscribe(bobs)
            await alices.wait_until_live(alice, main)
            await bobs_stream.wait_until_live(bob, bobs)
            live_balance = await alice.balance(main)

            await alice_far.withdraw(main, "10")
            await alice_far.transfer(main, bobs, "25")
            refused = await alice_far.withdraw(main, "1000")
            await alice_far.deposit(savings, "5")
            await bob_far.transfer(bobs, main, "3")
            first = await alice_far.deposit(main, "7", idempotencyKey="once")
            again = await alice_far.deposit(main, "7", idempotencyKey="once")
            await alice_far.deposit(main, "0.99")  # the closing marker
            await bob_far.deposit(bobs, "0.99")

            alice_lines = [await alices.line() for _ in range(5)]
            bob_lines = [await bobs_stream.line() for _ in range(3)]

        assert refused["__typename"] == "InsufficientFunds"
        assert first["transaction"]["id"] == again["transaction"]["id"]
        start = Decimal(live_balance)
        assert amounts(alice_lines) == [
            ("-10.00", start - 10, "WITHDRAWAL"),
            ("-25.00", start - 35, "TRANSFER"),
            ("3.00", start - 32, "TRANSFER"),
            ("7.00", start - 25, "DEPOSIT"),
            ("0.99", start - Decimal("24.01"), "DEPOSIT"),
        ]
        assert [line["transaction"]["id"] for line in alice_lines][3] == first["transaction"]["id"]
        assert [(a, k) for a, _b, k in amounts(bob_lines)] == [
            ("25.00", "TRANSFER"),
            ("-3.00", "TRANSFER"),
            ("0.99", "DEPOSIT"),
        ]
        # The lines are the statement's own, newest last.
        statement = (await alice.data(STATEMENT, id=main))["account"]["entries"]["edges"]
        newest = [edge["node"]["id"] for edge in statement[:5]]
        assert [line["id"] for line in alice_lines] == newest[::-1]


async def test_refusals_look_like_queries_refusals(one_server):
    async with http_client(one_server) as anonymous:
        alice = await anonymous.signed_up("alice@example.com")
        bob = await anonymous.signed_up("bob@example.com")
        main = (await alice.open_account("Main"))["id"]

        async def first_answer(**connection: Any) -> dict[str, Any]:
            account_id = connection.pop("account_id", main)
            async with Subscriber.connected(one_server, **connection) as subscriber:
                await subscriber.subscribe(account_id)
                return await subscriber.receive()

        anonymous_answer = await first_answer()
        forged_answer = await first_answer(token="not-a-token")
        bobs_answer = await first_answer(token=bob.token)
        missing_answer = await first_answer(token=bob.token, account_id=NO_SUCH_ACCOUNT)
        malformed_answer = await first_answer(token=bob.token, account_id="not an id")

        async with Subscriber.connected(one_server, token=alice.token) as subscriber:
            await subscriber.subscribe(main)
            await subscriber.subscribe(main)
            over_limit = await subscriber.receive()

        async with Subscriber.connected(one_server, token=alice.token) as subscriber:
            padded = SUBSCRIBE + " " * 4096
            await subscriber.send({"id": "1", "type": "subscribe", "payload": {"query": padded}})
            with pytest.raises(websockets.ConnectionClosed) as too_large:
                await subscriber.receive()

        over_http = await anonymous.http.post(
            "/graphql",
            json={"query": SUBSCRIBE, "variables": {"id": main}},
            headers={**alice.headers, "Accept": "application/graphql-response+json"},
        )

    for answer in (anonymous_answer, forged_answer):
        assert answer["type"] == "error", answer
        assert answer["payload"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    # Someone else's account and no account at all get the very same answer.
    assert bobs_answer["payload"] == missing_answer["payload"]
    assert bobs_answer["payload"]["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert bobs_answer["payload"]["data"] is None
    assert malformed_answer["payload"]["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert over_limit["type"] == "error"
    assert over_limit["payload"][0]["message"] == "Subscription limit reached"
    assert too_large.value.rcvd is not None and too_large.value.rcvd.code == 1009
    assert over_http.status_code == 400
    assert "subscriptions are not allowed" in over_http.json()["errors"][0]["message"]


async def test_an_id_in_use_sent_again_closes_with_4409_however_long_the_id(one_server):
    """The close reason quotes the id; a close frame carries 123 bytes of reason, and a longer
    one made the close fail: the client saw the connection drop (1006) instead of 4409."""
    long_id = "i" * 200
    async with http_client(one_server) as anonymous:
        alice = await anonymous.signed_up("alice@example.com")
        main = (await alice.open_account("Main"))["id"]
        async with Subscriber.connected(one_server, token=alice.token) as subscriber:
            subscribe = {
                "id": long_id,
                "type": "subscribe",
                "payload": {"query": SUBSCRIBE, "variables": {"id": main}},
            }
            await subscriber.send(subscribe)
            await subscriber.wait_until_live(alice, main)
            await subscriber.send(subscribe)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await subscriber.receive()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4409
    assert closed.value.rcvd.reason.startswith("Subscriber for iiii")
    assert closed.value.rcvd.reason.endswith("...")


async def test_a_start_that_fails_at_any_step_gives_its_turn_back(database_url):
    """Starting subscriptions take turns (BANKQL_SUBSCRIPTION_STARTS, here one at a time);
    a start that fails, before its resolver runs or in it, must free its turn, or the
    process would never start another stream."""
    server = Server(server_env(database_url, BANKQL_SUBSCRIPTION_STARTS="1")).start()
    try:
        async with http_client(server) as anonymous:
            alice = await anonymous.signed_up("alice@example.com")
            main = (await alice.open_account("Main", initial_deposit="1"))["id"]
            opening = await alice.data(FIRST_LINE, id=main)
            after = opening["account"]["entries"]["edges"][0]["node"]["id"]
            await alice.deposit(main, "7.00")
            async with Subscriber.connected(server) as nobody:
                for _ in range(3):  # refused by the permission check, before the resolver
                    await nobody.subscribe(main)
                    refused = await nobody.receive()
                    assert refused["payload"][0]["extensions"]["code"] == "UNAUTHENTICATED"
            async with Subscriber.connected(server, token=alice.token) as subscriber:
                for _ in range(3):
                    await subscriber.subscribe(main, NOT_VALID)  # refused by validation
                    invalid = await subscriber.receive()
                    assert invalid["type"] == "error", invalid
                    await subscriber.subscribe(NO_SUCH_ACCOUNT)  # refused by the resolver
                    missing = await subscriber.receive()
                    assert missing["payload"]["errors"][0]["extensions"]["code"] == "NOT_FOUND"
                    assert (await subscriber.receive())["type"] == "complete"
            # Five streams sent at once, one turn between them: every one starts, and sends
            # the line after the opening one.
            async with Subscriber.connected(server, token=alice.token) as subscriber:
                for n in range(5):
                    payload = {"query": RESUME, "variables": {"id": main, "after": after}}
                    await subscriber.send({"id": str(n), "type": "subscribe", "payload": payload})
                first_lines = [await subscriber.receive() for _ in range(5)]
    finally:
        server.stop()
    assert sorted(message["id"] for message in first_lines) == ["0", "1", "2", "3", "4"]
    for message in first_lines:
        assert message["payload"]["data"]["accountEntries"]["amount"]["amount"] == "7.00"


async def test_a_stream_and_its_connection_end_their_use_when_the_sign_in_expires(one_server):
    async with http_client(one_server) as anonymous:
        alice = await anonymous.signed_up("alice@example.com")
        main = (await alice.open_account("Main"))["id"]
        codec = TokenCodec(TEST_SECRET_KEY, timedelta(hours=1))
        signed_in = codec.verify(alice.token)
        assert signed_in is not None
        now = datetime.now(UTC)
        # Long enough to see the stream live even on a busy machine, short enough to wait for.
        short_lived = jwt.encode(
            {
                "sub": str(signed_in.user_id),
                "sid": str(signed_in.session_id),
                "iat": now,
                "exp": now + timedelta(seconds=5),
            },
            TEST_SECRET_KEY,
            "HS256",
        )
        async with Subscriber.connected(one_server, token=short_lived) as subscriber:
            await subscriber.subscribe(main)
            await subscriber.wait_until_live(alice, main)
            ended = await subscriber.receive()
            closing = await subscriber.receive()
            # The connection stays open, but nothing else runs on the expired sign-in.
            await subscriber.send(
                {
                    "id": "2",
                    "type": "subscribe",
                    "payload": {"query": "{ accounts { totalCount } }"},
                }
            )
            afterwards = await subscriber.receive()
    assert ended["type"] == "next"
    assert afterwards["payload"]["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert ended["payload"]["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert closing == {"id": "1", "type": "complete"}


async def test_a_stopping_server_closes_streams_so_that_clients_reconnect(one_server):
    async with http_client(one_server) as anonymous:
        alice = await anonymous.signed_up("alice@example.com")
        main = (await alice.open_account("Main"))["id"]
        async with Subscriber.connected(one_server, token=alice.token) as subscriber:
            await subscriber.subscribe(main)
            await subscriber.wait_until_live(alice, main)
            await asyncio.to_thread(one_server.stop)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await subscriber.receive()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012  # service restart
    assert one_server.process is not None and one_server.process.returncode is not None
