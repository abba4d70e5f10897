"""What one connection may hold of a server process: its headers arrive in time, and a
process serves a bounded number of connections, WebSocket ones included.

The HTTP server reads a request's headers before the app sees anything and has no time
limit of its own for them, so a client sending them a byte at a time would hold its
connection for ever. A connection that has not sent a whole request head within the receive
timeout, whether it is new or between two requests, is closed. The bound is kept on both
parsers uvicorn offers: httptools, which serves when installed, and h11.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any, cast

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


def max_concurrency(max_connections: int) -> int:
    """The server's concurrency limit for at most `max_connections` open connections.

    It refuses a request with 503 once the open connections, the requesting one among
    them, reach the limit, so the limit is one more than the connections served.
    """
    return max_connections + 1


def bounded_protocol(
    receive_timeout_s: float, *, parser: str = "httptools"
) -> type[asyncio.Protocol]:
    """The HTTP/1.1 protocol with a time limit on request heads and the connection cap
    applied to WebSocket upgrades as well; it can be sent to worker processes.

    It parses with httptools (C, the faster one) when that is installed, else with h11."""
    chosen: type[asyncio.Protocol] = BoundedH11Protocol
    if parser == "httptools" and BoundedHttpToolsProtocol is not None:
        chosen = BoundedHttpToolsProtocol
    made = functools.partial(cast("Any", chosen), receive_timeout_s=receive_timeout_s)
    # The server calls it as it would the class.
    return cast("type[asyncio.Protocol]", made)


SERVICE_UNAVAILABLE = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: 19\r\n"
    b"connection: close\r\n\r\n"
    b"Service Unavailable"
)


class _HeadDeadline:
    """A request head must arrive within the receive timeout, on a new connection and
    between two requests on a kept-alive one; otherwise the connection is closed. Mixed
    into a uvicorn protocol, which says when it is between requests."""

    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    limit_concurrency: int | None
    connections: set[Any]
    logger: logging.Logger

    def __init__(self, *args: Any, receive_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._receive_timeout_s = receive_timeout_s
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_arrived()
        super().connection_lost(exc)  # type: ignore[misc]

    def _between_requests(self) -> bool:
        raise NotImplementedError

    def _refused_over_the_cap(self) -> bool:
        """An upgrade to WebSocket past the connection cap is answered 503 and closed
        (uvicorn would accept it); True when it was."""
        limit = self.limit_concurrency
        if limit is None or len(self.connections) < limit:
            return False
        self.logger.warning("Exceeded concurrency limit.")
        self.transport.write(SERVICE_UNAVAILABLE)
        self.transport.close()
        return True

    def _await_next_head(self) -> None:
        """After a response: the next request's head is timed too, unless one is already
        being read or answered."""
        if self._between_requests() and not self.transport.is_closing():
            self._await_head()

    def _await_head(self) -> None:
        self._head_arrived()
        self._head_timer = self.loop.call_later(self._receive_timeout_s, self._head_too_slow)

    def _head_arrived(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self._between_requests() and not self.transport.is_closing():
            self.transport.close()


class BoundedH11Protocol(_HeadDeadline, H11Protocol):
    """HTTP/1.1 on h11 that closes a connection whose request head takes longer than the
    receive timeout, and answers an upgrade past the connection cap with 503."""

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self._between_requests():
            self._head_arrived()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._await_next_head()

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        if not self._refused_over_the_cap():
            super().handle_websocket_upgrade(event)

    def _between_requests(self) -> bool:
        return self.conn.their_state is h11.IDLE


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # httptools is not installed: h11 serves
    BoundedHttpToolsProtocol: type[asyncio.Protocol] | None = None
else:

    class _BoundedHttpTools(_HeadDeadline, HttpToolsProtocol):
        """The same bounds as BoundedH11Protocol, on the httptools parser."""

        def on_headers_complete(self) -> None:
            self._head_arrived()
            super().on_headers_complete()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._await_next_head()

        def handle_websocket_upgrade(self) -> None:
            if not self._refused_over_the_cap():
                super().handle_websocket_upgrade()

        def _between_requests(self) -> bool:
            # Not while a pipelined request waits or a response is still being sent.
            return not self.pipeline and (self.cycle is None or self.cycle.response_complete)

    BoundedHttpToolsProtocol = _BoundedHttpTools
