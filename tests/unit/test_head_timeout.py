"""Both HTTP parsers the server may use hold a request head to the receive timeout: a
connection that has not sent a whole head in time is closed, one that has is answered."""

import asyncio

import pytest
import uvicorn

from gql.server.connections import BoundedHttpToolsProtocol, bounded_protocol
from tests.servers import serving_in_process

TIMEOUT_S = 0.3
# Far longer than the server may take to close a connection on a busy machine.
GENEROUS_S = 30


async def hello(scope, receive, send):
    if scope["type"] != "http":
        return
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]}
    )
    await send({"type": "http.response.body", "body": b"hello"})


@pytest.fixture(params=["h11", "httptools"])
async def port(request):
    async for bound in serving(request.param, limit=None):
        yield bound


@pytest.fixture(params=["h11", "httptools"])
async def full_port(request):
    """A server whose connection cap is already reached by the connection asking."""
    async for bound in serving(request.param, limit=1):
        yield bound


async def serving(parser: str, limit: int | None):
    if parser == "httptools" and BoundedHttpToolsProtocol is None:
        pytest.skip("httptools is not installed")
    config = uvicorn.Config(
        hello,
        http=bounded_protocol(TIMEOUT_S, parser=parser),
        limit_concurrency=limit,
        log_config=None,
        # The server's own idle limit out of the way: only the head bound may close.
        timeout_keep_alive=GENEROUS_S,
    )
    async for bound in serving_in_process(config):
        yield bound


async def test_a_head_that_takes_too_long_is_closed(port):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: bankql\r\n")  # and never the blank line
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), GENEROUS_S / 2)
    assert answer == b""  # closed without an answer, long before any other limit
    writer.close()


async def test_a_whole_head_is_answered_and_the_next_one_timed_again(port):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: bankql\r\n\r\n")
    await writer.drain()
    first = await asyncio.wait_for(reader.readuntil(b"hello"), GENEROUS_S)
    assert first.startswith(b"HTTP/1.1 200")
    await asyncio.sleep(TIMEOUT_S * 3)  # kept alive, but sends no next request in time
    assert await asyncio.wait_for(reader.read(), GENEROUS_S / 2) == b""
    writer.close()


async def test_an_upgrade_past_the_connection_cap_is_refused_with_503(full_port):
    reader, writer = await asyncio.open_connection("127.0.0.1", full_port)
    writer.write(
        b"GET /graphql HTTP/1.1\r\nHost: bankql\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), GENEROUS_S / 2)
    assert answer.startswith(b"HTTP/1.1 503") and answer.endswith(b"Service Unavailable")
    writer.close()
