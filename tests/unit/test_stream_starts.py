"""The process's places for starting subscriptions (BANKQL_SUBSCRIPTION_STARTS): a start
gives its place back before it sends anything, so that a client that reads nothing cannot
keep one by leaving the answer to its start unsent."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from gql.context import build_context
from gql.schema.schema import build_schema
from gql.server.auth import TokenCodec
from gql.server.websocket import TransportWSHandler

KEY = "a signing key of thirty-two bytes or more, for tests"


class UnreadSocket:
    """A client that reads nothing: once its buffers are full, every send waits forever."""

    def __init__(self) -> None:
        self.sent: list[dict[str, object]] = []

    async def send_json(self, message: dict[str, object]) -> None:
        self.sent.append(message)
        await asyncio.Event().wait()

    async def close(self, code: int, reason: str | None = None) -> None:
        pass


class OnePlace(TransportWSHandler):
    places = asyncio.Semaphore(1)

    def start_slots(self) -> asyncio.Semaphore:
        return self.places


def _never(**_options: object) -> object:
    raise AssertionError("no database is needed to refuse these subscriptions")


async def test_a_start_whose_answer_is_never_read_gives_its_place_back():
    OnePlace.places = asyncio.Semaphore(1)
    socket = UnreadSocket()
    tokens = TokenCodec(KEY, timedelta(minutes=5), timedelta(days=1))
    handler = OnePlace(
        None,  # type: ignore[arg-type]  # the view: not used by these messages
        socket,  # type: ignore[arg-type]
        build_context(_never, tokens),  # type: ignore[arg-type]
        None,
        build_schema(),
        timedelta(seconds=60),
    )
    handler.connection_acknowledged = True
    # Each is refused before its stream's resolver runs: the refusal is its first message.
    for number in (1, 2, 3):
        await handler.handle_message(
            {"type": "subscribe", "id": str(number), "payload": {"query": "subscription { no }"}}
        )
    try:
        for _ in range(200):
            if len(socket.sent) == 3:
                break
            await asyncio.sleep(0.01)
        assert [message["id"] for message in socket.sent] == ["1", "2", "3"]
        assert not OnePlace.places.locked()
    finally:
        tasks = [operation.task for operation in handler.operations.values() if operation.task]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
