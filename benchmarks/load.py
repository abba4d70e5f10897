"""The concurrency test's workload, larger, with figures: two servers on one database.

    BANKQL_TEST_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python -m benchmarks.load --ops 10000 --clients 20 [--sqlite]

Creates a temporary database (PostgreSQL from BANKQL_TEST_POSTGRES_URL, or a SQLite file),
starts two `bankql serve` processes on loopback ports, drives random movements with
idempotency keys (a share of them sent twice, to the other server), checks the ledger as the
tests do, prints throughput and latency, and drops the database. Bounded by --ops.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import httpx

from benchmarks.databases import on_temporary_database
from tests.load.checks import ADMIN_EMAIL, ADMIN_PASSWORD, check_ledger
from tests.load.workload import drive, open_bank, random_ops
from tests.servers import Server, environment, run


async def measure(url: str, ops_count: int, clients: int) -> None:
    env = environment(url, BANKQL_ADMIN_PASSWORD=ADMIN_PASSWORD)
    for command in (["migrate"], ["create-admin", "--email", ADMIN_EMAIL]):
        assert run(*command, env=env).returncode == 0
    servers = [Server(env).start(), Server(env).start()]
    try:
        rng = random.Random(1)
        bases = [server.url for server in servers]
        limits = httpx.Limits(max_connections=2 * clients, keepalive_expiry=2)
        async with httpx.AsyncClient(timeout=60, limits=limits) as http:
            bank = await open_bank(http, bases[0], rng, users=4, accounts_each=3)
            ops = random_ops(bank, rng, ops_count, 0.3)
            started = time.perf_counter()
            await drive(http, bank, bases, ops, clients)
            elapsed = time.perf_counter() - started
            requests = sum(len(results) for results in bank.results.values())
            await check_ledger(http, bases[0], url, bank, ops)
    finally:
        for server in servers:
            server.stop()
    print(f"movements: {len(ops)}, requests: {requests} (repeats included), clients: {clients}")
    print(f"elapsed:   {elapsed:.1f} s, {requests / elapsed:.0f} requests/s")
    cuts = statistics.quantiles(bank.latencies_s, n=100)
    print(
        f"latency:   p50 {cuts[49] * 1000:.0f} ms, p95 {cuts[94] * 1000:.0f} ms, "
        f"p99 {cuts[98] * 1000:.0f} ms"
    )
    print("ledger:    audit clean, balances and keys exact")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ops", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--sqlite", action="store_true")
    args = parser.parse_args()
    on_temporary_database(args.sqlite, lambda url: measure(url, args.ops, args.clients))


if __name__ == "__main__":
    main()
