"""What a flood of wrong-password sign-ins costs another user, with production hashing costs.

    BANKQL_TEST_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python -m benchmarks.sign_in --attackers 20 --reads 100 [--sqlite]

Creates a temporary database, starts one `bankql serve` with Argon2id at its default costs,
and times a signed-in user's reads, first alone, then while `--attackers` clients send wrong
passwords for ever-new addresses as fast as they are answered. On PostgreSQL it also samples
how many sessions sit idle in a transaction meanwhile. Bounded by --reads.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections import Counter

import httpx
import psycopg

from benchmarks.databases import on_temporary_database
from tests.api.graphql import LOGIN, GraphQLClient
from tests.servers import Server, environment

# What the server hashes with unless told otherwise; the tests' environment is cheaper.
ARGON2_DEFAULT_COSTS = dict(
    zip(
        ["BANKQL_PASSWORD_TIME_COST", "BANKQL_PASSWORD_MEMORY_KIB", "BANKQL_PASSWORD_PARALLELISM"],
        ["3", "65536", "4"],
        strict=True,
    )
)
READ = "{ accounts(first: 10) { totalCount } }"
IDLE_IN_TRANSACTION = (
    "SELECT coalesce(max(extract(epoch FROM clock_timestamp() - state_change)), 0), count(*)"
    " FROM pg_stat_activity"
    " WHERE datname = current_database() AND state LIKE 'idle in transaction%'"
)


async def read_latencies_ms(reader: GraphQLClient, reads: int) -> list[float]:
    latencies = []
    for _ in range(reads):
        started = time.perf_counter()
        await reader.data(READ)
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def summary(latencies: list[float]) -> str:
    p95 = statistics.quantiles(latencies, n=20)[-1]
    return f"p50 {statistics.median(latencies):.0f} ms, p95 {p95:.0f} ms"


async def attack(http: httpx.AsyncClient, outcomes: Counter[str], stop: asyncio.Event) -> None:
    while not stop.is_set():
        email = f"guess-{uuid.uuid4().hex[:12]}@example.com"
        variables = {"input": {"email": email, "password": "wrong horse battery"}}
        response = await http.post("/graphql", json={"query": LOGIN, "variables": variables})
        body = response.json()
        if response.status_code == 429:
            outcomes["429 " + body["errors"][0]["message"].split(":")[0]] += 1
        else:
            outcomes[body["data"]["login"]["__typename"]] += 1


async def sample_idle(url: str, seen: list[tuple[float, int]], stop: asyncio.Event) -> None:
    """(longest wait in seconds, sessions) idle in a transaction, every 50 ms."""
    if not url.startswith("postgresql"):
        return
    dsn = url.replace("postgresql+psycopg", "postgresql")
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as connection:
        while not stop.is_set():
            row = await (await connection.execute(IDLE_IN_TRANSACTION)).fetchone()
            if row is not None:
                seen.append((float(row[0]), int(row[1])))
            await asyncio.sleep(0.05)


async def measure(url: str, attackers: int, reads: int) -> None:
    env = environment(url, **ARGON2_DEFAULT_COSTS)
    server = Server(env).start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            reader = await GraphQLClient(http).signed_up("reader@example.com")
            alone = await read_latencies_ms(reader, reads)
            outcomes: Counter[str] = Counter()
            idle: list[tuple[float, int]] = []
            stop = asyncio.Event()
            async with httpx.AsyncClient(base_url=server.url, timeout=60) as flood:
                tasks = [
                    asyncio.create_task(attack(flood, outcomes, stop)) for _ in range(attackers)
                ]
                tasks.append(asyncio.create_task(sample_idle(url, idle, stop)))
                await asyncio.sleep(1)
                attacked = await read_latencies_ms(reader, reads)
                stop.set()
                await asyncio.gather(*tasks)
    finally:
        server.stop()
    print(f"reads alone:              {summary(alone)}")
    print(f"reads under {attackers} sign-in clients: {summary(attacked)}")
    print(f"sign-in answers: {dict(outcomes)}")
    if idle:
        most = max(count for _, count in idle)
        longest_ms = max(seconds for seconds, _ in idle) * 1000
        print(
            f"sessions idle in a transaction: at most {most} at once, the longest for"
            f" {longest_ms:.0f} ms ({len(idle)} samples)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attackers", type=int, default=20)
    parser.add_argument("--reads", type=int, default=100)
    parser.add_argument("--sqlite", action="store_true")
    args = parser.parse_args()
    on_temporary_database(args.sqlite, lambda url: measure(url, args.attackers, args.reads))


if __name__ == "__main__":
    main()
