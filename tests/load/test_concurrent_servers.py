"""No money lost or made when two server processes share one database under load and retries.

Bounded in count and time, loopback only. benchmarks/load.py runs the same workload larger.
"""

import asyncio
import dataclasses
import random

import httpx
import pytest

from tests.load.checks import check_ledger
from tests.load.workload import Op, drive, open_bank, random_ops, run_op

CLIENTS = 20
USERS, ACCOUNTS_EACH = 4, 3
OPS = {"postgresql": 1200, "sqlite": 400}
REPEAT_SHARE = 0.3
TIMEOUT = httpx.Timeout(60)


def backend(url: str) -> str:
    return "sqlite" if url.startswith("sqlite") else "postgresql"


@pytest.fixture
async def http():
    # A kept-alive connection is dropped by the client well before the server's five-second
    # idle limit, so no request goes out on a connection the server is closing that instant.
    limits = httpx.Limits(max_connections=2 * CLIENTS, keepalive_expiry=2)
    async with httpx.AsyncClient(timeout=TIMEOUT, limits=limits) as client:
        yield client


async def test_random_movements_with_retries_on_two_servers_keep_the_ledger_exact(
    http, servers, empty_url
):
    rng = random.Random(20261128)
    bases = [server.url for server in servers]
    bank = await open_bank(http, bases[0], rng, users=USERS, accounts_each=ACCOUNTS_EACH)
    ops = random_ops(bank, rng, OPS[backend(empty_url)], REPEAT_SHARE)

    await drive(http, bank, bases, ops, CLIENTS)

    assert bank.unacknowledged == [], bank.unanswered_because[:5]
    kinds = [r["__typename"] for results in bank.results.values() for r in results]
    assert kinds.count("InsufficientFunds") > len(ops) // 10, "the load should try to overdraw"
    assert kinds.count("MoneyMovement") > len(ops) // 3
    assert set(kinds) <= {"MoneyMovement", "InsufficientFunds"}
    await check_ledger(http, bases[1], empty_url, bank, ops)


async def test_one_key_sent_at_once_to_both_servers_moves_money_once(http, servers, empty_url):
    rng = random.Random(7)
    bases = [server.url for server in servers]
    bank = await open_bank(http, bases[0], rng, users=2, accounts_each=2)
    token = bank.tokens[0]
    ops = [
        Op("deposit", token, bank.accounts[token][i % 2], 100 + i, f"same-{i}", None, "concurrent")
        for i in range(30)
    ]
    await asyncio.gather(*(run_op(http, bank, bases, op, i % 2) for i, op in enumerate(ops)))
    for op in ops:
        [first, second] = bank.results[op.key]
        assert first["__typename"] == second["__typename"] == "MoneyMovement"
        assert first["transaction"]["id"] == second["transaction"]["id"]
    await check_ledger(http, bases[0], empty_url, bank, ops)


async def test_a_server_killed_mid_load_loses_nothing_it_acknowledged(http, servers, empty_url):
    rng = random.Random(99)
    bases = [server.url for server in servers]
    bank = await open_bank(http, bases[1], rng, users=USERS, accounts_each=ACCOUNTS_EACH)
    ops = random_ops(bank, rng, OPS[backend(empty_url)] // 2, REPEAT_SHARE)
    victim = servers[0]

    async def kill_a_third_of_the_way(number: int) -> None:
        if number == len(ops) // 3:
            victim.kill()

    await drive(http, bank, bases, ops, CLIENTS, on_progress=kill_a_third_of_the_way)
    assert bank.unacknowledged, "the kill should have cut some requests off"

    # A client retries what got no answer, with the same key, once the server is back.
    victim.start()
    pending, bank.unacknowledged = bank.unacknowledged, []
    for op, _ in pending:
        await run_op(http, bank, bases, dataclasses.replace(op, repeat=None), 0)
    assert bank.unacknowledged == [], bank.unanswered_because[:5]
    await check_ledger(http, victim.url, empty_url, bank, ops)
