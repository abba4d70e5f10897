"""How long committed lines take to reach many subscribers on several processes, and what
the subscribers cost everyone else.

    BANKQL_TEST_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python -m benchmarks.subscriptions --subscribers 2000 --connections 100 \\
        --accounts 200 --rate 20 --seconds 15 [--sqlite]

Creates a temporary database (PostgreSQL from BANKQL_TEST_POSTGRES_URL, or a SQLite file),
starts `--processes` (2) `bankql serve` processes, opens the accounts, and spreads the
subscriptions over the connections (the connections over the processes, the accounts over
the subscriptions, round-robin). Each subscription resumes after its account's opening
line, so none can miss a deposit however late it starts. Then it deposits at a steady
rate, through the processes in turn. A victim (another user, in a process of its own, so
that this script's own work does not slow it) asks `{ viewer { id } }` one request after
another alone (1,000 of them), while the subscriptions are sent, in the 3 s after (while the
last ones start), and while the lines flow. It prints the time from each deposit's request
to each of its lines (an upper bound of commit to delivery), the lines delivered against
those expected, the servers' memory per 1,000 subscriptions, and the victim's p95 in each
phase.
Bounded by the arguments, on loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import time
from contextlib import AsyncExitStack
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx

from benchmarks.databases import on_temporary_database
from tests.api.graphql import GraphQLClient
from tests.api.subscriber import Subscriber
from tests.servers import Server, environment, run

RESUME = """subscription Lines($id: ID!, $after: ID) {
  accountEntries(accountId: $id, afterEntryId: $after) { id amount { amount } } }"""
OPENING_LINE = (
    "query Opening($id: ID!) { account(id: $id) { entries(first: 1) { edges { node { id } } } } }"
)
VIEWER = "{ viewer { id } }"
PER_CONNECTION = 20
POLL_MS = 250
GRACE_S = 10


def rss_kib(server: Server) -> int:
    assert server.process is not None
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cut(values: list[float], percent: int) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100)[percent - 1]


def ask_until_told(url: str, token: str, stop: Any, answer: Connection, at_most: int) -> None:
    """In the victim's process: one `{ viewer { id } }` after another until told to stop (or
    at_most of them); sends "ready" after the first, then the p95 of all."""

    async def ask() -> list[float]:
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            client = GraphQLClient(http, token)
            await client.data(VIEWER)
            answer.send("ready")
            times: list[float] = []
            while not stop.is_set() and len(times) < at_most:
                started = time.perf_counter()
                await client.data(VIEWER)
                times.append(time.perf_counter() - started)
            return times

    answer.send(cut(asyncio.run(ask()), 95))


class Victim:
    """Another user asking `{ viewer { id } }` one request after another, in a process of its
    own: the subscribers' client work in this process must not delay the victim's requests,
    or the figure would measure this script rather than the server."""

    def __init__(self, url: str, token: str, at_most: int = 10**9) -> None:
        spawn = multiprocessing.get_context("spawn")
        self.stop = spawn.Event()
        self.answers, answer = spawn.Pipe(duplex=False)
        self.process = spawn.Process(
            target=ask_until_told, args=(url, token, self.stop, answer, at_most), daemon=True
        )

    async def __aenter__(self) -> Victim:
        self.process.start()
        assert await asyncio.to_thread(self.answers.recv) == "ready"
        return self

    async def __aexit__(self, *_: object) -> None:
        self.stop.set()
        self.process.join(timeout=10)
        self.process.kill()

    async def p95(self, stop: bool = True) -> float:
        """Its p95 so far (stopping it), or, with stop=False, once it has asked at_most times."""
        if stop:
            self.stop.set()
        value: float = await asyncio.to_thread(self.answers.recv)
        return value


async def measure(
    url: str,
    subscribers: int,
    connections: int,
    accounts: int,
    rate: float,
    seconds: float,
    processes: int = 2,
) -> None:
    per_connection = -(-subscribers // connections)
    env = environment(
        url,
        BANKQL_SUBSCRIPTION_POLL_MS=str(POLL_MS),
        BANKQL_MAX_WS_CONNECTIONS_PER_USER=str(connections + 1),
        BANKQL_MAX_WS_CONNECTIONS=str(max(1000, connections + 10)),
        BANKQL_MAX_CONNECTIONS=str(max(1000, connections + 100)),
        BANKQL_MAX_SUBSCRIPTIONS_PER_CONNECTION=str(max(PER_CONNECTION, per_connection)),
        BANKQL_RATE_LIMIT_PER_SECOND="100000",
        BANKQL_RATE_LIMIT_BURST="100000",
    )
    assert run("migrate", env=env).returncode == 0
    servers = [Server(env).start() for _ in range(processes)]
    deposits: list[tuple[str, str, float]] = []  # account, amount, sent at
    arrivals: dict[tuple[str, str], list[float]] = {}
    subscribed_to: dict[str, int] = {}
    try:
        async with AsyncExitStack() as stack:
            https = [
                await stack.enter_async_context(httpx.AsyncClient(base_url=server.url, timeout=60))
                for server in servers
            ]
            owner = await GraphQLClient(https[0]).signed_up("bench@example.com")
            movers = [GraphQLClient(http, owner.token) for http in https]
            victim = await GraphQLClient(https[0]).signed_up("victim@example.com")
            limit = asyncio.Semaphore(8)

            async def opened(n: int) -> tuple[str, str]:
                async with limit:
                    account = (await owner.open_account(f"A{n}", initial_deposit="1"))["id"]
                    edges = (await owner.data(OPENING_LINE, id=account))["account"]["entries"]
                    return account, edges["edges"][0]["node"]["id"]

            opening = dict(await asyncio.gather(*(opened(n) for n in range(accounts))))
            names = list(opening)
            async with Victim(servers[0].url, victim.token or "", at_most=1000) as alone_victim:
                alone = await alone_victim.p95(stop=False)
            rss_before = sum(rss_kib(server) for server in servers)

            async def read(stream: Subscriber) -> None:
                while True:
                    message = json.loads(await stream.socket.recv())
                    if message.get("type") != "next" or "errors" in message["payload"]:
                        print("unexpected:", str(message)[:200])
                        continue
                    line = message["payload"]["data"]["accountEntries"]
                    account = stream_accounts[stream][message["id"]]
                    key = (account, line["amount"]["amount"])
                    arrivals.setdefault(key, []).append(time.perf_counter())

            victim_at_start = await stack.enter_async_context(
                Victim(servers[0].url, victim.token or "")
            )
            stream_accounts: dict[Subscriber, dict[str, str]] = {}
            sending = time.perf_counter()
            readers = []
            n = 0
            for c in range(connections):
                stream = await stack.enter_async_context(
                    Subscriber.connected(servers[c % processes], token=owner.token)
                )
                stream_accounts[stream] = {}
                for _ in range(min(per_connection, subscribers - n)):
                    account = names[n % len(names)]
                    stream.operations += 1
                    operation = str(stream.operations)
                    variables = {"id": account, "after": opening[account]}
                    await stream.send(
                        {
                            "id": operation,
                            "type": "subscribe",
                            "payload": {"query": RESUME, "variables": variables},
                        }
                    )
                    stream_accounts[stream][operation] = account
                    subscribed_to[account] = subscribed_to.get(account, 0) + 1
                    n += 1
                readers.append(asyncio.create_task(read(stream)))
            sent_in = time.perf_counter() - sending
            while_sent = await victim_at_start.p95()
            settling = await stack.enter_async_context(Victim(servers[0].url, victim.token or ""))
            await asyncio.sleep(3)  # the streams start; none misses a line, being resumed
            after_sent = await settling.p95()
            rss_after = sum(rss_kib(server) for server in servers)

            victim_while_flowing = await stack.enter_async_context(
                Victim(servers[0].url, victim.token or "")
            )
            started = time.perf_counter()
            count = int(rate * seconds)
            for d in range(count):
                await asyncio.sleep(max(0, started + d / rate - time.perf_counter()))
                account = names[d % len(names)]
                amount = f"{d + 2}.00"  # unique per deposit, never the opening 1.00
                # Timed from the request's start: a pushed line often arrives before the
                # answer does, so this is an upper bound of commit -> delivery.
                deposits.append((account, amount, time.perf_counter()))
                await movers[d % processes].deposit(account, amount)
            under_load = await victim_while_flowing.p95()
            expected = sum(subscribed_to.get(account, 0) for account, _, _ in deposits)
            deadline = time.perf_counter() + GRACE_S
            while time.perf_counter() < deadline:
                if sum(len(arrivals.get((a, m), [])) for a, m, _ in deposits) >= expected:
                    break
                await asyncio.sleep(0.1)
            for reader in readers:
                reader.cancel()
    finally:
        for server in servers:
            server.stop()
    latencies = [
        arrived - sent
        for account, amount, sent in deposits
        for arrived in arrivals.get((account, amount), [])
    ]
    delivered = len(latencies)
    kind = "SQLite" if url.startswith("sqlite") else "PostgreSQL"
    per_thousand = (rss_after - rss_before) / 1024 / max(subscribers, 1) * 1000
    print(
        f"subscribers: {subscribers} on {connections} connections, {accounts} accounts, "
        f"{processes} processes on {kind}; {len(deposits)} deposits at {rate:g}/s"
    )
    print(
        f"deposit sent -> line received: p50 {cut(latencies, 50) * 1000:.0f} ms, "
        f"p95 {cut(latencies, 95) * 1000:.0f} ms, p99 {cut(latencies, 99) * 1000:.0f} ms"
    )
    print()
    print("| measure | value |")
    print("|---|---|")
    print(
        f"| subscriptions / connections / accounts | {subscribers} / {connections} / "
        f"{accounts}, on {processes} processes |"
    )
    print(f"| deposits | {len(deposits)} at {rate:g}/s over all processes |")
    print(f"| lines delivered / expected | {delivered} / {expected} |")
    for percent in (50, 95, 99):
        print(
            f"| deposit sent -> line received p{percent} | "
            f"{cut(latencies, percent) * 1000:.0f} ms |"
        )
    print(f"| subscriptions sent in | {sent_in:.1f} s |")
    print(f"| server RSS per 1,000 subscriptions | {per_thousand:.1f} MiB |")
    print(f"| victim `{{viewer{{id}}}}` p95 alone | {alone * 1000:.1f} ms |")
    print(
        f"| victim `{{viewer{{id}}}}` p95 while the subscriptions are sent | "
        f"{while_sent * 1000:.1f} ms ({while_sent / alone:.1f}x) |"
    )
    print(
        f"| victim `{{viewer{{id}}}}` p95 in the 3 s after | "
        f"{after_sent * 1000:.1f} ms ({after_sent / alone:.1f}x) |"
    )
    print(
        f"| victim `{{viewer{{id}}}}` p95 while the lines flow | {under_load * 1000:.1f} ms "
        f"({under_load / alone:.1f}x) |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscribers", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--accounts", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20, help="deposits per second")
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--sqlite", action="store_true")
    args = parser.parse_args()
    on_temporary_database(
        args.sqlite,
        lambda url: measure(
            url,
            args.subscribers,
            args.connections,
            args.accounts,
            args.rate,
            args.seconds,
            args.processes,
        ),
    )


if __name__ == "__main__":
    main()
