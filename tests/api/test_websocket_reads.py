"""Queries over one WebSocket connection read as fresh as HTTP requests do: each operation sees
what was committed before it, from one snapshot of its own."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from itertools import count
from typing import Any

import httpx
import pytest

from tests.api.graphql import DEPOSIT, GraphQLClient
from tests.api.subscriber import RECEIVE_TIMEOUT_S, Subscriber
from tests.servers import Server, environment

BALANCE_AND_NEWEST_LINE = """query($id: ID!) { account(id: $id) { balance { amount }
  entries(first: 1) { edges { node { balanceAfter { amount } } } } } }"""


@pytest.fixture
def server(database_url) -> Iterator[Server]:
    running = Server(environment(database_url)).start()
    yield running
    running.stop()


class Operations:
    """Queries and mutations over one graphql-transport-ws connection, several at a time."""

    def __init__(self, subscriber: Subscriber) -> None:
        self.subscriber = subscriber
        self.ids = count(1)
        self.results: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self.subscriber.socket:
            message = json.loads(raw)
            if message["type"] == "next":
                self.results[message["id"]].set_result(message["payload"])

    async def run(self, query: str, **variables: Any) -> dict[str, Any]:
        operation_id = str(next(self.ids))
        self.results[operation_id] = asyncio.get_running_loop().create_future()
        payload = {"query": query, "variables": variables}
        await self.subscriber.send({"id": operation_id, "type": "subscribe", "payload": payload})
        try:
            result = await asyncio.wait_for(self.results[operation_id], RECEIVE_TIMEOUT_S)
        finally:
            del self.results[operation_id]
        assert "errors" not in result, result
        data: dict[str, Any] = result["data"]
        return data

    async def balance_and_newest_line(self, account_id: str) -> tuple[str, str]:
        shown = (await self.run(BALANCE_AND_NEWEST_LINE, id=account_id))["account"]
        newest = shown["entries"]["edges"][0]["node"]["balanceAfter"]["amount"]
        return shown["balance"]["amount"], newest


def deposit_input(account_id: str, amount: str) -> dict[str, Any]:
    return {"accountId": account_id, "amount": {"amount": amount, "currency": "EUR"}}


async def test_each_query_on_one_connection_sees_the_deposits_committed_before_it(server):
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        alice = await GraphQLClient(http).signed_up("alice@example.com")
        account = (await alice.open_account(initial_deposit="1"))["id"]
        async with Subscriber.connected(server, token=alice.token) as subscriber:
            socket = Operations(subscriber)
            seen = [await socket.balance_and_newest_line(account)]
            await socket.run(DEPOSIT, input=deposit_input(account, "5"))
            seen.append(await socket.balance_and_newest_line(account))
            await alice.deposit(account, "2")  # over HTTP, outside the connection
            seen.append(await socket.balance_and_newest_line(account))
            socket.reader.cancel()
    assert seen == [("1.00", "1.00"), ("6.00", "6.00"), ("8.00", "8.00")]


async def test_a_balance_and_its_newest_line_agree_over_a_websocket_while_money_moves(server):
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        alice = await GraphQLClient(http).signed_up("alice@example.com")
        account = (await alice.open_account(initial_deposit="1"))["id"]
        stop = asyncio.Event()

        async def keep_depositing() -> None:
            while not stop.is_set():
                await alice.deposit(account, "1")

        async with Subscriber.connected(server, token=alice.token) as subscriber:
            socket = Operations(subscriber)

            async def read(times: int) -> list[tuple[str, str]]:
                return [await socket.balance_and_newest_line(account) for _ in range(times)]

            depositing = [asyncio.create_task(keep_depositing()) for _ in range(2)]
            try:
                # Four operations at a time on the one connection, each in its own snapshot.
                batches = await asyncio.gather(*(read(40) for _ in range(4)))
            finally:
                stop.set()
                await asyncio.gather(*depositing)
                socket.reader.cancel()
    readings = [pair for batch in batches for pair in batch]
    assert len({balance for balance, _ in readings}) > 5, "money should move during the reads"
    assert [pair for pair in readings if pair[0] != pair[1]] == []
