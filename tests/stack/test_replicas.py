"""Reads on a real streaming standby: a user never reads a state older than they have seen.

Two apps stand for two bankql processes: each has its own pools and its own memory, and
they share nothing but the primary and the standby. A user deposits through one and reads
through the other, as a load balancer may send them.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import event

from gql.server.app import create_app
from persistence.replicas import CATCH_UP_WAIT_S, PRIMARY, REPLICA_POOL_SIZE, ReadRouter, Replica
from tests.api.graphql import GraphQLClient
from tests.conftest import settings_for
from tests.servers import free_port
from tests.stack.clusters import PostgresStack

READ_BACK = """query($id: ID!) { account(id: $id) {
  balance { amount } entries(first: 1) { edges { node { amount { amount } } } } } }"""
DEPOSIT = """mutation($input: DepositInput!) { deposit(input: $input) { __typename } }"""
TRIES = 1000
WRITERS = 4


@dataclass
class Process:
    """One app, as one bankql process, and what its reads were served by."""

    client: httpx.AsyncClient
    reads: ReadRouter
    # Statements each standby's engine sent: counted where they leave, not by the router.
    standby_statements: Counter[str]

    def as_user(self, token: str | None = None) -> GraphQLClient:
        return GraphQLClient(self.client, token)


async def started(primary_url: str, replica_urls: list[str]) -> tuple[Process, object]:
    app = create_app(settings_for(primary_url, replica_database_urls=replica_urls))
    reads: ReadRouter = app.state.reads
    sent: Counter[str] = Counter()
    for replica in reads.replicas if reads is not None else []:

        def count(*_arguments: object, name: str = replica.name) -> None:
            sent[name] += 1

        event.listen(replica.engine.sync_engine, "before_cursor_execute", count)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    client = httpx.AsyncClient(transport=transport, base_url="http://bankql.test")
    return Process(client, reads, sent), app


async def stopped(process: Process, app: object) -> None:
    await process.client.aclose()
    await app.state.engine.dispose()  # type: ignore[attr-defined]
    await process.reads.dispose()


@pytest.fixture
async def two_processes(postgres_stack: PostgresStack) -> AsyncIterator[tuple[Process, Process]]:
    standby = [postgres_stack.standby.url()]
    first, first_app = await started(postgres_stack.primary.url(), standby)
    second, second_app = await started(postgres_stack.primary.url(), standby)
    yield first, second
    await stopped(first, first_app)
    await stopped(second, second_app)


async def customer(process: Process) -> tuple[GraphQLClient, str]:
    user = await process.as_user().signed_up(f"{uuid.uuid4().hex[:12]}@example.com")
    account = await user.open_account()
    return user, account["id"]


async def stale_reads(
    writer: GraphQLClient, reader: GraphQLClient, account_id: str, tries: int, balance: int = 0
) -> tuple[int, list[str]]:
    """Deposit 1.00 through one process and read the account back at once through another,
    `tries` times, from a balance of `balance`.00: how many reads missed the deposit just
    made, and the balances they showed instead."""
    stale, wrong = 0, []
    for done in range(balance + 1, balance + tries + 1):
        amount = {"amount": "1.00", "currency": "EUR"}
        result = await writer.data(DEPOSIT, input={"accountId": account_id, "amount": amount})
        assert result["deposit"]["__typename"] == "MoneyMovement", result
        account = (await reader.data(READ_BACK, id=account_id))["account"]
        lines = account["entries"]["edges"]
        newest = lines[0]["node"]["amount"]["amount"] if lines else None
        if account["balance"]["amount"] != f"{done}.00" or newest != "1.00":
            stale += 1
            wrong.append(account["balance"]["amount"])
    return stale, wrong


def served(process: Process) -> Counter[str]:
    return Counter(process.reads.served)


async def read_on_the_standby(
    process: Process, reader: GraphQLClient, account_id: str, balance: str, stack: PostgresStack
) -> None:
    """Once the standby has replayed everything the primary has written, a read goes to it.

    The primary writes some WAL of its own now and then (a standby snapshot, autovacuum).
    If some arrived between the wait and the read, the read rightly goes to the primary,
    and the check is made again, three times at most. Without such WAL, one read sent to
    the primary fails it."""
    standby = process.reads.replicas[0].name
    for _ in range(3):
        replayed = stack.wait_for_standby()
        ahead = served(process)
        assert await reader.balance(account_id) == balance
        went = served(process) - ahead
        if went == Counter({standby: 1}):
            return
        assert went == Counter({PRIMARY: 1}), went
        assert stack.primary_position() != replayed, "caught up, yet read on the primary"
    pytest.fail("three reads went to the primary while it kept writing WAL of its own")


async def test_users_read_their_own_deposits_every_time_while_others_read_the_standby(
    postgres_stack: PostgresStack,
) -> None:
    """Writers deposit through one process and read back through another, side by side;
    meanwhile other users, who wrote nothing lately, read through a third."""
    primary, standby_url = postgres_stack.primary.url(), [postgres_stack.standby.url()]
    processes = [await started(primary, standby_url) for _ in range(3)]
    (writes, _), (reads, _), (others_reads, _) = processes
    try:
        writers = [await customer(writes) for _ in range(WRITERS)]
        others = [await customer(others_reads) for _ in range(3)]
        postgres_stack.wait_for_standby()
        standby = reads.reads.replicas[0].name
        before = served(reads)
        writing = True

        async def one_writer(user: GraphQLClient, account_id: str) -> tuple[int, list[str]]:
            reader = GraphQLClient(reads.client, user.token)
            return await stale_reads(user, reader, account_id, TRIES // WRITERS)

        async def other_users() -> int:
            count = 0
            while writing:
                for user, account_id in others:
                    assert await user.balance(account_id) == "0.00"
                    count += 1
                await asyncio.sleep(0.05)
            return count

        started_at = time.perf_counter()
        looking = asyncio.ensure_future(other_users())
        try:
            results = await asyncio.gather(*(one_writer(*writer) for writer in writers))
        finally:
            writing = False
            others_read = await looking
        elapsed = time.perf_counter() - started_at
        after = served(reads) - before
        others_served = served(others_reads)
        print(
            f"\n{TRIES} deposit+read pairs ({WRITERS} users side by side) across two processes "
            f"in {elapsed:.1f} s; their reads served by the standby: {after[standby]}, by the "
            f"primary: {after[PRIMARY]}; other users' reads on the standby: "
            f"{others_served[standby]} of {others_read}"
        )
        assert [stale for stale, _ in results] == [0] * WRITERS, results
        # Other users' reads are the standby's (a moment's lag past the wait may send one away).
        assert others_read > 0 and others_served[standby] >= 0.9 * others_read
        # The standby really answered: its engine sent statements for the reads it was given.
        assert others_reads.standby_statements[standby] >= others_served[standby]
    finally:
        for process, app in processes:
            await stopped(process, app)


async def test_reading_the_standby_regardless_is_caught_as_a_stale_read(
    two_processes: tuple[Process, Process],
    postgres_stack: PostgresStack,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The check above can fail: with replay paused and the standby taken as caught up
    whatever it has replayed, the deposit just made is missing from the read."""
    first, second = two_processes
    writer, account_id = await customer(first)
    reader = GraphQLClient(second.client, writer.token)
    postgres_stack.wait_for_standby()
    postgres_stack.pause_replay()
    try:

        async def always(_replica: Replica, _floor: int) -> bool:
            return True

        monkeypatch.setattr(Replica, "caught_up_to", always)
        stale, wrong = await stale_reads(writer, reader, account_id, 5)
    finally:
        postgres_stack.resume_replay()
    assert stale == 5
    assert set(wrong) == {"0.00"}


async def test_a_paused_standby_sends_a_just_written_users_reads_to_the_primary(
    two_processes: tuple[Process, Process], postgres_stack: PostgresStack
) -> None:
    first, second = two_processes
    writer, account_id = await customer(first)
    reader = GraphQLClient(second.client, writer.token)
    await read_on_the_standby(second, reader, account_id, "0.00", postgres_stack)

    postgres_stack.pause_replay()
    try:
        ahead = served(second)
        started_at = time.perf_counter()
        stale, wrong = await stale_reads(writer, reader, account_id, 20)
        elapsed = time.perf_counter() - started_at
        assert (stale, wrong) == (0, [])
        # Every read went to the primary: the standby had not replayed the deposit before it.
        assert (served(second) - ahead) == Counter({PRIMARY: 20})
        # Each waited at most a moment for the standby, never an error.
        assert elapsed < 20 * (CATCH_UP_WAIT_S + 1.0)
    finally:
        postgres_stack.resume_replay()
    await read_on_the_standby(second, reader, account_id, "20.00", postgres_stack)


async def test_a_standby_that_is_down_is_skipped_without_an_error(
    postgres_stack: PostgresStack,
) -> None:
    nowhere = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/bankql"
    process, app = await started(
        postgres_stack.primary.url(), [nowhere, postgres_stack.standby.url()]
    )
    try:
        user, account_id = await customer(process)
        await user.deposit(account_id, "2.50")
        postgres_stack.wait_for_standby()
        for _ in range(6):
            assert await user.balance(account_id) == "2.50"
        down, standby = process.reads.replicas
        assert process.reads.served[down.name] == 0
        assert down.resting(time.monotonic())  # left alone for a while, not tried each time
        assert process.reads.served[standby.name] >= 1
    finally:
        await stopped(process, app)


async def test_a_transfer_in_once_seen_is_seen_by_every_later_read(
    two_processes: tuple[Process, Process], postgres_stack: PostgresStack
) -> None:
    """Not only one's own writes: money another user sent, once shown, never vanishes from
    a later read, through either process, while the standby has not replayed it."""
    first, second = two_processes
    sender, source = await customer(first)
    receiver, destination = await customer(second)
    await sender.deposit(source, "10.00")
    postgres_stack.wait_for_standby()
    postgres_stack.pause_replay()
    try:
        sent = await sender.transfer(source, destination, "4.00")
        assert sent["__typename"] == "MoneyMovement", sent
        for process in (second, first, second, first):
            ahead = served(process)
            reader = GraphQLClient(process.client, receiver.token)
            assert await reader.balance(destination) == "4.00"
            assert (served(process) - ahead) == Counter({PRIMARY: 1})
    finally:
        postgres_stack.resume_replay()


async def test_a_standby_whose_connections_are_all_in_use_is_passed_over(
    two_processes: tuple[Process, Process], postgres_stack: PostgresStack
) -> None:
    first, _ = two_processes
    user, account_id = await customer(first)
    postgres_stack.wait_for_standby()
    replica = first.reads.replicas[0]
    held = [await replica.engine.connect() for _ in range(REPLICA_POOL_SIZE)]
    try:
        ahead = served(first)
        assert await user.balance(account_id) == "0.00"
        assert (served(first) - ahead) == Counter({PRIMARY: 1})  # no wait for a connection
    finally:
        for connection in held:
            await connection.close()
    await read_on_the_standby(first, user, account_id, "0.00", postgres_stack)


async def test_a_replica_url_that_leads_to_a_primary_is_left_alone(
    postgres_stack: PostgresStack,
) -> None:
    """A primary's data is newer than any standby's, but a promoted standby's (or a wrong
    URL's) may be another history: only a server in recovery is read from."""
    primary = postgres_stack.primary.url()
    process, app = await started(primary, [primary])
    try:
        user, account_id = await customer(process)
        for _ in range(3):
            assert await user.balance(account_id) == "0.00"
        (not_a_standby,) = process.reads.replicas
        assert process.reads.served[not_a_standby.name] == 0
        assert not_a_standby.resting(time.monotonic())
    finally:
        await stopped(process, app)
