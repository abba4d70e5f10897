"""WebSocket connections per user and per process, and request rates over WebSocket, against
a real `bankql serve` process."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets

from tests.api.graphql import GraphQLClient
from tests.api.subscriber import PROTOCOL, Subscriber
from tests.servers import Server, environment

WAIT_FOR_S = 15


@pytest.fixture
def server(database_url) -> Iterator[Server]:
    env = environment(
        database_url,
        BANKQL_MAX_WS_CONNECTIONS_PER_USER="1",
        BANKQL_MAX_WS_CONNECTIONS="2",
        BANKQL_RATE_LIMIT_BURST="3",
        BANKQL_RATE_LIMIT_PER_SECOND="0.001",
    )
    started = Server(env).start()
    yield started
    started.stop()


async def signed_up(server: Server, email: str) -> str:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        return str((await GraphQLClient(http).signed_up(email)).token)


async def closed_with(server: Server, token: str | None = None) -> tuple[int, str]:
    """Open a connection, send connection_init, and return how the server closed it."""
    url = server.url.replace("http://", "ws://") + "/graphql"
    async with websockets.connect(url, subprotocols=[PROTOCOL], open_timeout=10) as socket:
        payload = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            await socket.send(json.dumps({"type": "connection_init", "payload": payload}))
            answer = await asyncio.wait_for(socket.recv(), WAIT_FOR_S)
        except websockets.ConnectionClosed as closed:
            assert closed.rcvd is not None
            return closed.rcvd.code, closed.rcvd.reason
    raise AssertionError(f"the connection was not closed but answered {answer}")


async def test_a_user_gets_a_limited_number_of_connections(server):
    alice = await signed_up(server, "alice@example.com")
    async with Subscriber.connected(server, token=alice):
        assert await closed_with(server, alice) == (4429, "too many connections for this user")
    # Once the first one has gone, the server admits the next; it may take a moment to see
    # the close, so the test asks again until then.
    async with asyncio.timeout(WAIT_FOR_S):
        while True:
            try:
                async with Subscriber.connected(server, token=alice):
                    break
            except websockets.ConnectionClosed:
                await asyncio.sleep(0.05)


async def test_connections_without_a_sign_in_get_a_limited_number_per_address(server):
    """Else one client could hold every connection of the process without signing in, and
    every other client's requests would be refused with 503."""
    alice = await signed_up(server, "alice@example.com")
    async with Subscriber.connected(server):
        assert await closed_with(server) == (
            4429,
            "too many connections without a sign-in from this address",
        )
        # A signed-in user from the same address has a count of their own.
        async with Subscriber.connected(server, token=alice):
            pass


async def test_connections_that_send_no_connection_init_are_limited_per_address(server):
    """Else one client could open every connection of the process and never send a word,
    leaving everyone else 1013 or 503."""
    url = server.url.replace("http://", "ws://") + "/graphql"
    async with websockets.connect(url, subprotocols=[PROTOCOL], open_timeout=10) as silent:
        async with websockets.connect(url, subprotocols=[PROTOCOL], open_timeout=10) as second:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(second.recv(), WAIT_FOR_S)
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (
            4429,
            "too many connections opening from this address",
        )
        # Once it has said who it is, it counts as that, and another may open.
        await silent.send(json.dumps({"type": "connection_init", "payload": {}}))
        assert json.loads(await silent.recv()) == {"type": "connection_ack"}
        alice = await signed_up(server, "alice@example.com")
        async with Subscriber.connected(server, token=alice):
            pass


async def test_a_connection_that_sends_no_connection_init_is_closed_in_time(database_url):
    env = environment(database_url, BANKQL_RECEIVE_TIMEOUT_S="1")
    started = Server(env).start()
    try:
        url = started.url.replace("http://", "ws://") + "/graphql"
        async with websockets.connect(url, subprotocols=[PROTOCOL], open_timeout=10) as silent:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(silent.recv(), WAIT_FOR_S)
    finally:
        started.stop()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4408


async def test_a_process_past_its_connections_closes_new_ones_with_try_again_later(server):
    alice = await signed_up(server, "alice@example.com")
    async with (
        Subscriber.connected(server, token=alice),
        Subscriber.connected(server),  # anonymous ones count too
    ):
        assert await closed_with(server) == (1013, "too many connections, try again later")


async def test_operations_over_websocket_draw_on_the_users_request_rate(server):
    alice = await signed_up(server, "alice@example.com")
    answers: list[dict[str, Any]] = []
    async with Subscriber.connected(server, token=alice) as connection:
        for number in range(4):
            query = {"query": "{ viewer { email } }"}
            await connection.send({"id": str(number), "type": "subscribe", "payload": query})
            answers.append(await connection.receive())
            if answers[-1]["type"] == "next":
                assert await connection.receive() == {"id": str(number), "type": "complete"}
    assert [answer["type"] for answer in answers] == ["next", "next", "next", "error"]
    error = answers[-1]["payload"][0]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    assert 990 <= error["extensions"]["retryAfter"] <= 1000
