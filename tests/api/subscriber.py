"""A graphql-transport-ws client for tests and benchmarks of the accountEntries subscription."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import websockets

from tests.api.graphql import GraphQLClient
from tests.servers import Server

PROTOCOL = "graphql-transport-ws"
RECEIVE_TIMEOUT_S = 15
SUBSCRIBE = """subscription Lines($id: ID!) { accountEntries(accountId: $id) {
  id amount { amount currency } balanceAfter { amount } createdAt transaction { id kind } } }"""


class Subscriber:
    """A graphql-transport-ws client: connection_init, subscribe, and the messages back."""

    def __init__(self, socket: Any) -> None:
        self.socket = socket
        self.operations = 0

    @classmethod
    @asynccontextmanager
    async def connected(
        cls,
        server: Server,
        *,
        token: str | None = None,
        header_token: str | None = None,
        payload: dict[str, Any] | None = None,
    ) -> AsyncIterator[Subscriber]:
        headers = {"Authorization": f"Bearer {header_token}"} if header_token else {}
        url = server.url.replace("http://", "ws://") + "/graphql"
        async with websockets.connect(
            url, subprotocols=[PROTOCOL], additional_headers=headers, open_timeout=10
        ) as socket:
            if payload is None:
                payload = {"Authorization": f"Bearer {token}"} if token else {}
            subscriber = cls(socket)
            await subscriber.send({"type": "connection_init", "payload": payload})
            assert await subscriber.receive() == {"type": "connection_ack"}
            yield subscriber

    async def send(self, message: dict[str, Any]) -> None:
        await self.socket.send(json.dumps(message))

    async def receive(self) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(
            await asyncio.wait_for(self.socket.recv(), RECEIVE_TIMEOUT_S)
        )
        return message

    async def subscribe(self, account_id: str, query: str = SUBSCRIBE) -> str:
        self.operations += 1
        operation_id = str(self.operations)
        await self.send(
            {
                "id": operation_id,
                "type": "subscribe",
                "payload": {"query": query, "variables": {"id": account_id}},
            }
        )
        return operation_id

    async def line(self) -> dict[str, Any]:
        """The next statement line the stream sends."""
        message = await self.receive()
        assert message["type"] == "next" and "errors" not in message["payload"], message
        entry: dict[str, Any] = message["payload"]["data"]["accountEntries"]
        return entry

    async def wait_until_live(self, owner: GraphQLClient, account_id: str) -> None:
        """Deposit markers until one comes back, then take in every marker that follows."""
        sent: list[str] = []
        for attempt in range(1, 40):
            sent.append(f"0.{attempt:02d}")
            await owner.deposit(account_id, sent[-1])
            try:
                message = await asyncio.wait_for(self.socket.recv(), 0.5)
            except TimeoutError:
                continue
            first = json.loads(message)["payload"]["data"]["accountEntries"]["amount"]["amount"]
            for marker in sent[sent.index(first) + 1 :]:
                assert (await self.line())["amount"]["amount"] == marker
            return
        raise AssertionError("the subscription never delivered a marker")
