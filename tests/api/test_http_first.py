"""HTTP requests first: while one is in flight, a WebSocket connection's messages wait their
turn, and go once no request is (gql/server/foreground.py). Through a real server in this
process, so that the test can make HTTP's priority absolute."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn
import websockets

from domain.model import Actor
from gql.context import Context
from gql.server import foreground
from gql.server.app import create_app
from tests.api.subscriber import PROTOCOL
from tests.conftest import settings_for
from tests.servers import serving_in_process

GENEROUS_S = 30
# Long enough to see that a WebSocket message is not answered while a request is in flight.
A_WHILE_S = 0.5


async def _serving(database_url: str) -> AsyncIterator[int]:
    app = create_app(settings_for(database_url, receive_timeout_s=GENEROUS_S))
    # A test that fails leaves a connection waiting: the server still stops.
    config = uvicorn.Config(app, log_config=None, timeout_graceful_shutdown=2)
    async for bound in serving_in_process(config):
        yield bound


@pytest.fixture
async def port(database_url, monkeypatch) -> AsyncIterator[int]:
    # However long a request is in flight, nothing of WebSocket work goes meanwhile.
    monkeypatch.setattr(foreground, "LEAST_EVERY_S", 3600)
    monkeypatch.setattr(foreground, "COUNTS_FOR_S", 3600)
    async for bound in _serving(database_url):
        yield bound


@pytest.fixture
async def port_with_bound(database_url, monkeypatch) -> AsyncIterator[int]:
    # Only a request's own bound lets WebSocket work go while it is in flight.
    monkeypatch.setattr(foreground, "LEAST_EVERY_S", 3600)
    async for bound in _serving(database_url):
        yield bound


def _held_in_resolver(monkeypatch) -> tuple[asyncio.Event, asyncio.Event]:
    """A request held in its resolver until the test lets it go: (entered, released)."""
    entered, released = asyncio.Event(), asyncio.Event()
    looked_up = Context.viewer

    async def held(self: Context) -> Actor | None:
        entered.set()
        await released.wait()
        return await looked_up(self)

    monkeypatch.setattr(Context, "viewer", held)
    return entered, released


async def _acknowledged(port: int) -> None:
    async with websockets.connect(
        f"ws://127.0.0.1:{port}/graphql", subprotocols=[PROTOCOL], open_timeout=GENEROUS_S
    ) as connection:
        await connection.send('{"type": "connection_init"}')
        assert await connection.recv() == '{"type":"connection_ack"}'


async def test_websocket_work_waits_while_a_request_is_in_flight(port, monkeypatch) -> None:
    entered, released = _held_in_resolver(monkeypatch)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=GENEROUS_S) as http:
        request = asyncio.create_task(http.post("/graphql", json={"query": "{ viewer { id } }"}))
        await asyncio.wait_for(entered.wait(), GENEROUS_S)
        websocket = asyncio.create_task(_acknowledged(port))
        done, _ = await asyncio.wait({websocket}, timeout=A_WHILE_S)
        assert not done, "a WebSocket connection was served while an HTTP request was in flight"
        released.set()
        answer = await request
        assert answer.json()["data"] == {"viewer": None}
        await asyncio.wait_for(websocket, GENEROUS_S)  # served once no request is in flight


async def test_a_request_that_lasts_holds_websocket_work_back_for_a_while_only(
    port_with_bound, monkeypatch
) -> None:
    # Waiting on its database or its client, a request does not hold the process's
    # WebSocket work for as long as it lasts.
    entered, released = _held_in_resolver(monkeypatch)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port_with_bound}", timeout=GENEROUS_S
    ) as http:
        request = asyncio.create_task(http.post("/graphql", json={"query": "{ viewer { id } }"}))
        await asyncio.wait_for(entered.wait(), GENEROUS_S)
        await asyncio.wait_for(_acknowledged(port_with_bound), GENEROUS_S)
        assert not request.done()  # still in flight, yet the connection was served
        released.set()
        assert (await request).json()["data"] == {"viewer": None}


async def test_a_request_still_being_sent_does_not_hold_websocket_work(port) -> None:
    # A client that takes its time to send a body costs the process nothing meanwhile.
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /graphql HTTP/1.1\r\nHost: bankql\r\nContent-Type: application/json\r\n"
        b'Content-Length: 100\r\n\r\n{"query"'
    )
    await writer.drain()
    await asyncio.sleep(0.1)
    await asyncio.wait_for(_acknowledged(port), GENEROUS_S)
    writer.close()


async def test_without_requests_websocket_work_goes_at_once(port) -> None:
    await asyncio.wait_for(_acknowledged(port), GENEROUS_S)
