"""accountEntries at scale's promises, against real `bankql serve` processes: pushed lines on
PostgreSQL that survive a lost listening connection, resume without gaps or repeats, and a
slow reader that ends without holding up the others."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import psycopg
import pytest
import websockets
from sqlalchemy.engine import make_url

from tests.api.graphql import GraphQLClient
from tests.api.subscriber import PROTOCOL, Subscriber
from tests.servers import Server, environment

RESUME = """subscription Lines($id: ID!, $after: ID) {
  accountEntries(accountId: $id, afterEntryId: $after) { id amount { amount } } }"""
STATEMENT = """query Statement($id: ID!) { account(id: $id) {
  entries(first: 100) { edges { node { id amount { amount } } } } } }"""
# A fat line, 50 kB: every alias carries the movement's description again, so that a few
# megabytes of them fill what the sockets between server and client hold.
ALIASES = 100
FAT = (
    "subscription Lines($id: ID!) { accountEntries(accountId: $id) { id amount { amount } "
    + " ".join(f"d{n}: transaction {{ description }}" for n in range(ALIASES))
    + " } }"
)
LONG_DESCRIPTION = "x" * 500


def libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@asynccontextmanager
async def http_client(server: Server) -> AsyncIterator[GraphQLClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        yield GraphQLClient(http)


@pytest.fixture
def servers(database_url) -> Iterator[tuple[Server, Server]]:
    # On PostgreSQL the safety look is ten minutes away: what arrives sooner was pushed.
    env = environment(
        database_url,
        BANKQL_SUBSCRIPTION_POLL_MS="50",
        BANKQL_SUBSCRIPTION_SAFETY_LOOK_MS="600000",
    )
    first, second = Server(env).start(), Server(env).start()
    yield first, second
    first.stop()
    second.stop()


async def subscribe(subscriber: Subscriber, account: str, after: str | None = None) -> None:
    subscriber.operations += 1
    variables = {"id": account, "after": after}
    await subscriber.send(
        {
            "id": str(subscriber.operations),
            "type": "subscribe",
            "payload": {"query": RESUME, "variables": variables},
        }
    )


async def test_a_line_committed_on_one_process_is_pushed_to_a_reader_on_another(servers):
    near, far = servers
    async with http_client(near) as anonymous, http_client(far) as elsewhere:
        alice = await anonymous.signed_up("alice@example.com")
        main = (await alice.open_account("Main"))["id"]
        alice_far = GraphQLClient(elsewhere.http, alice.token)
        async with Subscriber.connected(near, token=alice.token) as stream:
            await stream.subscribe(main)
            await stream.wait_until_live(alice_far, main)
            await alice_far.deposit(main, "12.34")
            line = await stream.line()
    assert line["amount"]["amount"] == "12.34"


async def test_resume_catches_up_then_goes_live_each_line_once_in_order(servers):
    near, far = servers
    async with http_client(near) as anonymous, http_client(far) as elsewhere:
        alice = await anonymous.signed_up("alice@example.com")
        main = (await alice.open_account("Main"))["id"]
        alice_far = GraphQLClient(elsewhere.http, alice.token)
        for cents in range(1, 6):
            await alice.deposit(main, f"0.0{cents}")
        statement = (await alice.data(STATEMENT, id=main))["account"]["entries"]["edges"]
        first_line = statement[-1]["node"]["id"]  # the oldest: 0.01

        async def commit_meanwhile() -> None:
            for n in range(1, 21):
                await alice_far.deposit(main, f"1.{n:02d}")

        async with Subscriber.connected(near, token=alice.token) as stream:
            committing = asyncio.create_task(commit_meanwhile())
            await subscribe(stream, main, after=first_line)
            lines = [await stream.line() for _ in range(4 + 20)]
            await committing
            await alice_far.deposit(main, "9.99")  # the closing marker
            lines.append(await stream.line())
        refused = await first_answer(near, alice.token, main, after=first_line.swapcase())
        bob = await anonymous.signed_up("bob@example.com")
        bobs = (await bob.open_account("Bob's", initial_deposit="1"))["id"]
        bobs_line = (await bob.data(STATEMENT, id=bobs))["account"]["entries"]["edges"][0]
        not_hers = await first_answer(near, alice.token, main, after=bobs_line["node"]["id"])

    expected = [f"0.0{c}" for c in range(2, 6)] + [f"1.{n:02d}" for n in range(1, 21)]
    assert [line["amount"]["amount"] for line in lines] == [*expected, "9.99"]
    assert len({line["id"] for line in lines}) == len(lines)
    assert refused["payload"]["errors"][0]["extensions"]["code"] in {"BAD_USER_INPUT", "NOT_FOUND"}
    assert not_hers["payload"]["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert not_hers["payload"]["errors"][0]["message"].startswith("No such line")


async def first_answer(server: Server, token: str, account: str, after: str) -> dict[str, Any]:
    async with Subscriber.connected(server, token=token) as stream:
        await subscribe(stream, account, after=after)
        return await stream.receive()


@pytest.fixture
def listen_role(database_url) -> Iterator[str]:
    if make_url(database_url).get_backend_name() != "postgresql":
        pytest.skip("PostgreSQL's LISTEN")
    role = f"bankql_listen_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(libpq(database_url), autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN")
    yield role
    with psycopg.connect(libpq(database_url), autocommit=True) as admin:
        admin.execute(
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'"
        )
        admin.execute(f"DROP ROLE IF EXISTS {role}")


def listeners(database_url: str, role: str) -> list[int]:
    database = make_url(database_url).database
    with psycopg.connect(libpq(database_url), autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE usename = %s AND datname = %s"
            " AND query LIKE 'LISTEN%%'",
            (role, database),
        ).fetchall()
    return [pid for (pid,) in rows]


async def eventually(check, seconds: float = 20) -> bool:
    for _ in range(int(seconds * 10)):
        if await asyncio.to_thread(check):
            return True
        await asyncio.sleep(0.1)
    return False


async def test_lines_arrive_while_listening_is_lost_and_are_pushed_once_it_is_back(
    database_url, listen_role
):
    listen_url = make_url(database_url).set(username=listen_role).render_as_string(False)
    env = environment(
        database_url,
        BANKQL_SUBSCRIPTION_SAFETY_LOOK_MS="1000",
        BANKQL_LISTEN_DATABASE_URL=listen_url,
    )
    server = Server(env).start()
    try:
        async with http_client(server) as anonymous:
            alice = await anonymous.signed_up("alice@example.com")
            main = (await alice.open_account("Main"))["id"]
            async with Subscriber.connected(server, token=alice.token) as stream:
                await stream.subscribe(main)
                await stream.wait_until_live(alice, main)
                [listener] = listeners(database_url, listen_role)
                # The listening connection is cut, and cannot come back for now.
                with psycopg.connect(libpq(database_url), autocommit=True) as admin:
                    admin.execute(f"ALTER ROLE {listen_role} NOLOGIN")
                    admin.execute("SELECT pg_terminate_backend(%s)", (listener,))
                assert await eventually(lambda: not listeners(database_url, listen_role))
                await alice.deposit(main, "3.00")
                while_lost = await stream.line()  # nothing pushes it: the safety look finds it
                with psycopg.connect(libpq(database_url), autocommit=True) as admin:
                    admin.execute(f"ALTER ROLE {listen_role} LOGIN")
                assert await eventually(lambda: bool(listeners(database_url, listen_role)))
                await alice.deposit(main, "4.00")
                once_back = await stream.line()
    finally:
        server.stop()
    assert while_lost["amount"]["amount"] == "3.00"
    assert once_back["amount"]["amount"] == "4.00"
    assert "listening for new statement lines failed" in server.output()


@asynccontextmanager
async def unread_socket(server: Server, token: str) -> AsyncIterator[Any]:
    """A WebSocket whose client takes nothing off it: small buffers, and no reading."""
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect(("127.0.0.1", server.port))
    url = server.url.replace("http://", "ws://") + "/graphql"
    async with websockets.connect(
        url, sock=raw, subprotocols=[PROTOCOL], max_queue=1, max_size=None, compression=None
    ) as ws:
        await ws.send(
            json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
        )
        assert json.loads(await ws.recv()) == {"type": "connection_ack"}
        yield ws


async def test_a_reader_that_does_not_read_is_ended_and_the_others_get_everything(
    database_url,
):
    env = environment(
        database_url,
        BANKQL_SUBSCRIPTION_POLL_MS="50",
        BANKQL_SUBSCRIPTION_QUEUE_LIMIT="5",
        BANKQL_MAX_ALIASES=str(ALIASES),
    )
    server = Server(env).start()
    deposits = 150
    try:
        async with http_client(server) as anonymous:
            alice = await anonymous.signed_up("alice@example.com")
            main = (await alice.open_account("Main"))["id"]
            async with (
                Subscriber.connected(server, token=alice.token) as steady,
                unread_socket(server, alice.token) as slow,
            ):
                await steady.subscribe(main)
                await steady.wait_until_live(alice, main)
                query = {"query": FAT, "variables": {"id": main}}
                await slow.send(json.dumps({"id": "1", "type": "subscribe", "payload": query}))
                received: list[str] = []

                async def read_steadily() -> None:
                    while len(received) < deposits:
                        received.append((await steady.line())["amount"]["amount"])

                reading = asyncio.create_task(read_steadily())
                for n in range(1, deposits + 1):
                    await alice.deposit(main, f"{n}.00", description=LONG_DESCRIPTION)
                await asyncio.wait_for(reading, 60)
                # Now the slow client reads what reached it: some lines, then its end.
                messages = []
                while True:
                    message = json.loads(await asyncio.wait_for(slow.recv(), 30))
                    messages.append(message)
                    if message["type"] in {"complete", "error"}:
                        break
    finally:
        server.stop()
    assert received == [f"{n}.00" for n in range(1, deposits + 1)]
    errors = [m for m in messages if m["type"] == "next" and m["payload"].get("errors")]
    assert errors, messages[-3:]
    assert errors[0]["payload"]["errors"][0]["extensions"]["code"] == "SLOW_CONSUMER"
    assert len(messages) - 2 < deposits  # it was ended before it had them all


async def test_a_process_refuses_a_subscription_past_its_limit_and_says_which(database_url):
    server = Server(environment(database_url, BANKQL_MAX_SUBSCRIPTIONS="1")).start()
    try:
        async with http_client(server) as anonymous:
            alice = await anonymous.signed_up("alice@example.com")
            main = (await alice.open_account("Main"))["id"]
            async with (
                Subscriber.connected(server, token=alice.token) as first,
                Subscriber.connected(server, token=alice.token) as second,
            ):
                await first.subscribe(main)
                await first.wait_until_live(alice, main)
                await second.subscribe(main)
                refused = await second.receive()
                await alice.deposit(main, "5.00")
                still_served = await first.line()
    finally:
        server.stop()
    [error] = refused["payload"]["errors"]
    assert error["extensions"]["code"] == "TOO_MANY_STREAMS"
    assert "as many live statements as it may (1)" in error["message"]
    assert still_served["amount"]["amount"] == "5.00"
