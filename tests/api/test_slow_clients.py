"""Slow clients and too many connections cannot hold a server process: raw sockets against
a real `bankql serve`, since the request head is read before the app sees anything.

These limits live in the HTTP layer, whatever the database, so one backend serves them.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import Iterator

import pytest

from tests.api.subscriber import Subscriber
from tests.servers import Server, environment

RECEIVE_TIMEOUT_S = "0.5"
# Far longer than the server may take to close a connection on a busy machine.
GENEROUS_S = 30
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: bankql\r\n\r\n"


def serving(tmp_path, **variables: str) -> Iterator[Server]:
    started = Server(environment(f"sqlite+aiosqlite:///{tmp_path / 'bank.db'}", **variables))
    yield started.start()
    started.stop()


@pytest.fixture
def server(tmp_path) -> Iterator[Server]:
    yield from serving(tmp_path, BANKQL_RECEIVE_TIMEOUT_S=RECEIVE_TIMEOUT_S)


@pytest.fixture
def capped_server(tmp_path) -> Iterator[Server]:
    # Connections stay open as long as the test needs them to.
    yield from serving(tmp_path, BANKQL_RECEIVE_TIMEOUT_S="300", BANKQL_MAX_CONNECTIONS="3")


def connect(server: Server) -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", server.port), timeout=GENEROUS_S)
    connection.settimeout(GENEROUS_S)
    return connection


def read_until_closed(connection: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection; a connection the
    server keeps open ends the test with a timeout instead."""
    received = b""
    while chunk := connection.recv(65536):
        received += chunk
    return received


def answer(connection: socket.socket, request: bytes) -> bytes:
    """The server's whole answer to a whole request: its head and its body."""
    connection.sendall(request)
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = connection.recv(65536)
        assert chunk, f"closed after {received!r}"
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    length = re.search(rb"(?i)content-length: *(\d+)", head)
    while length is not None and len(body) < int(length.group(1)):
        chunk = connection.recv(65536)
        assert chunk, f"closed after {received!r}"
        body += chunk
    return head + b"\r\n\r\n" + body


def test_a_connection_that_never_finishes_its_headers_is_closed(server):
    with connect(server) as slow:
        slow.sendall(b"POST /graphql HTTP/1.1\r\nHost: bankql\r\nContent-Type: app")
        started = time.monotonic()
        assert read_until_closed(slow) == b""
    assert time.monotonic() - started < GENEROUS_S


def test_a_kept_alive_connection_must_send_its_next_headers_in_time_too(server):
    with connect(server) as client:
        assert answer(client, HEALTHZ).startswith(b"HTTP/1.1 200")
        # One byte at a time keeps the idle timeout away, but not the head timeout.
        client.sendall(b"G")
        time.sleep(0.2)
        client.sendall(b"E")
        assert read_until_closed(client) == b""


def test_a_kept_alive_connection_idle_past_five_seconds_still_serves(tmp_path):
    # Clients commonly keep idle connections for 5 s: the server keeps them longer, so that
    # both ends never close one at the same instant.
    for started in serving(tmp_path, BANKQL_RECEIVE_TIMEOUT_S="8"):
        with connect(started) as connection:
            assert answer(connection, HEALTHZ).startswith(b"HTTP/1.1 200")
            time.sleep(6)
            assert answer(connection, HEALTHZ).startswith(b"HTTP/1.1 200")


def test_a_connection_that_does_not_finish_its_body_gets_408_and_is_closed(server):
    with connect(server) as slow:
        slow.sendall(
            b"POST /graphql HTTP/1.1\r\nHost: bankql\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n"
            b'{"query": '
        )
        received = read_until_closed(slow)
    assert received.startswith(b"HTTP/1.1 408")
    assert b"did not arrive within 0.5 s" in received


def test_a_request_sent_in_time_is_answered(server):
    body = b'{"query": "{ viewer { id } }"}'
    with connect(server) as client:
        head = answer(
            client,
            b"POST /graphql HTTP/1.1\r\nHost: bankql\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body),
        )
    assert head.startswith(b"HTTP/1.1 200")


UPGRADE = (
    b"GET /graphql HTTP/1.1\r\nHost: bankql\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n"
)


def test_connections_beyond_the_cap_get_503_until_one_closes(capped_server):
    # Three connections held open, each half-way through its request head.
    held = [connect(capped_server) for _ in range(3)]
    try:
        for connection in held:
            connection.sendall(b"GET /healthz HTTP/1.1\r\n")
        with connect(capped_server) as fourth:
            refused = answer(fourth, HEALTHZ)
        with connect(capped_server) as upgrade:
            refused_upgrade = answer(upgrade, UPGRADE)
        held.pop().close()
        # Two held and the new one: within the cap again, once the server saw the close.
        served = None
        deadline = time.monotonic() + GENEROUS_S
        while time.monotonic() < deadline and served is None:
            with connect(capped_server) as again:
                head = answer(again, HEALTHZ)
            served = head if head.startswith(b"HTTP/1.1 200") else None
            time.sleep(0.1)
        # The held ones were never refused: they finish their request and are answered.
        finished = answer(held[0], b"Host: bankql\r\n\r\n")
    finally:
        for connection in held:
            connection.close()
    assert refused.startswith(b"HTTP/1.1 503")
    assert refused_upgrade.startswith(b"HTTP/1.1 503")
    assert served is not None, "the server kept refusing after a connection closed"
    assert finished.startswith(b"HTTP/1.1 200")


async def test_an_accepted_websocket_outlives_the_head_timeout(server):
    async with Subscriber.connected(server) as subscriber:
        # Several head timeouts pass: the connection is no longer waiting for a head.
        await asyncio.sleep(float(RECEIVE_TIMEOUT_S) * 4)
        await subscriber.send({"type": "ping"})
        assert await subscriber.receive() == {"type": "pong"}
