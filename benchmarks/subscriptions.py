"""How long a committed line takes to reach many subscribers, written by another process.

    BANKQL_TEST_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python -m benchmarks.subscriptions --subscribers 200 --deposits 20 [--sqlite]

Creates a temporary database (PostgreSQL from BANKQL_TEST_POSTGRES_URL, or a SQLite file),
starts two `bankql serve` processes, opens the subscribers on the first (ten to an account,
ten to a connection), deposits through the second one at a time, and prints the time from
each deposit's answer to each subscriber's line. Bounded by --subscribers and --deposits.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from contextlib import AsyncExitStack

import httpx

from benchmarks.databases import on_temporary_database
from tests.api.graphql import GraphQLClient
from tests.api.subscriber import Subscriber
from tests.servers import Server, environment, run

PER_ACCOUNT = 10
PER_CONNECTION = 10
POLL_MS = 250


async def measure(url: str, subscribers: int, deposits: int) -> None:
    # One user holds every connection here, far more than a person would.
    connections = str(subscribers // PER_CONNECTION + 1)
    env = environment(
        url,
        BANKQL_SUBSCRIPTION_POLL_MS=str(POLL_MS),
        BANKQL_MAX_WS_CONNECTIONS_PER_USER=connections,
        BANKQL_MAX_WS_CONNECTIONS=str(max(1000, int(connections))),
    )
    assert run("migrate", env=env).returncode == 0
    near, far = Server(env).start(), Server(env).start()
    latencies_s: list[float] = []
    try:
        async with (
            httpx.AsyncClient(base_url=near.url, timeout=60) as http,
            httpx.AsyncClient(base_url=far.url, timeout=60) as elsewhere,
            AsyncExitStack() as stack,
        ):
            owner = await GraphQLClient(http).signed_up("bench@example.com")
            mover = GraphQLClient(elsewhere, owner.token)
            accounts = [
                (await owner.open_account(f"A{n}"))["id"]
                for n in range(max(1, subscribers // PER_ACCOUNT))
            ]
            streams: dict[str, list[Subscriber]] = {account: [] for account in accounts}
            connection: Subscriber | None = None
            for n in range(subscribers):
                if n % PER_CONNECTION == 0:
                    connection = await stack.enter_async_context(
                        Subscriber.connected(near, token=owner.token)
                    )
                assert connection is not None
                account = accounts[n % len(accounts)]
                await connection.subscribe(account)
                streams[account].append(connection)
            # A subscription begins once the server has read its starting point: a moment.
            await asyncio.sleep(2 * POLL_MS / 1000 + 1)
            for n in range(deposits):
                account = accounts[n % len(accounts)]
                await mover.deposit(account, "1")
                answered = time.perf_counter()
                # A connection holding several of this account's subscriptions gets one
                # line for each, so reading them one after another reads them all.
                for stream in streams[account]:
                    await stream.line()
                    latencies_s.append(time.perf_counter() - answered)
    finally:
        near.stop()
        far.stop()
    connections = -(-subscribers // PER_CONNECTION)
    print(
        f"subscribers: {subscribers} on {connections} connections, "
        f"{len(accounts)} accounts, deposits: {deposits}, look every {POLL_MS} ms"
    )
    cuts = statistics.quantiles(latencies_s, n=100)
    print(
        f"deposit answered -> line received: p50 {cuts[49] * 1000:.0f} ms, "
        f"p95 {cuts[94] * 1000:.0f} ms, max {max(latencies_s) * 1000:.0f} ms "
        f"({len(latencies_s)} lines)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscribers", type=int, default=200)
    parser.add_argument("--deposits", type=int, default=20)
    parser.add_argument("--sqlite", action="store_true")
    args = parser.parse_args()
    on_temporary_database(args.sqlite, lambda url: measure(url, args.subscribers, args.deposits))


if __name__ == "__main__":
    main()
