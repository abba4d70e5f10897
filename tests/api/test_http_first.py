"""HTTP requests first: while one is in flight, a WebSocket connection's messages wait their
turn, and go once no request is (gql/server/foreground.py). Through a real server in this
process, so that the test can make HTTP's priority absolute."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
import uvicorn
import websockets

from gql.server import foreground
from gql.server.app import create_app
from tests.api.subscriber import PROTOCOL
from tests.conftest import settings_for

GENEROUS_S = 30
# Long enough to see that a WebSocket message is not answered while a request is in flight.
A_WHILE_S = 0.5


@pytest.fixture
async def port(database_url, monkeypatch) -> AsyncIterator[int]:
    # However long a request is in flight, nothing of WebSocket work goes meanwhile.
    monkeypatch.setattr(foreground, "LEAST_EVERY_S", 3600)
    app = create_app(settings_for(database_url, receive_timeout_s=GENEROUS_S))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    server = uvicorn.Server(uvicorn.Config(app, log_config=None))
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    while not server.started:  # noqa: ASYNC110 (the server offers a flag, not an event)
        await asyncio.sleep(0.01)
    yield listener.getsockname()[1]
    server.should_exit = True
    await serving
    listener.close()


async def _acknowledged(port: int) -> None:
    async with websockets.connect(
        f"ws://127.0.0.1:{port}/graphql", subprotocols=[PROTOCOL], open_timeout=GENEROUS_S
    ) as connection:
        await connection.send('{"type": "connection_init"}')
        assert await connection.recv() == '{"type":"connection_ack"}'


async def test_websocket_work_waits_while_a_request_is_in_flight(port) -> None:
    body = b'{"query": "{ __typename }"}'
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    # A request whose body is still coming: it is in flight until the last byte is in.
    writer.write(
        b"POST /graphql HTTP/1.1\r\nHost: bankql\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body[:5])
    )
    await writer.drain()
    await asyncio.sleep(0.1)
    websocket = asyncio.create_task(_acknowledged(port))
    done, _ = await asyncio.wait({websocket}, timeout=A_WHILE_S)
    assert not done, "a WebSocket connection was served while an HTTP request was in flight"
    writer.write(body[5:])
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(4096), GENEROUS_S)
    assert answer.startswith(b"HTTP/1.1 200"), answer
    assert b'"__typename":"Query"' in answer
    await asyncio.wait_for(websocket, GENEROUS_S)  # served once no request is in flight
    writer.close()


async def test_without_requests_websocket_work_goes_at_once(port) -> None:
    await asyncio.wait_for(_acknowledged(port), GENEROUS_S)
