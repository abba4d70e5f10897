"""What statements cost on a long history: SQL statements per balanceAt and per one-month
statement on an account of 100,000 lines against one of 10, and the server's memory while it
streams all 100,000 lines as CSV.

    .venv/bin/python -m benchmarks.statements [--lines N] [--sqlite]

The lines are written straight into the database (a deposit or a withdrawal each, spread
over 300 days), so that seeding takes seconds; everything measured goes through the API.
Without --sqlite it runs on a new database made from BANKQL_TEST_POSTGRES_URL.
"""

from __future__ import annotations

import argparse
import csv
import io
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event, func, insert, select, text, update

from benchmarks.databases import on_temporary_database
from gql.context import build_context, sql_unit_of_work
from gql.schema.ids import from_global_id
from gql.schema.schema import build_schema
from gql.server.auth import TokenCodec
from persistence.database import make_engine, make_session_factory
from persistence.tables import AccountRow, EntryRow, TransactionRow
from tests.api.graphql import OPEN, REGISTER
from tests.conftest import TEST_SECRET_KEY
from tests.servers import Server, environment, run

SET_SEQUENCES = [
    "SELECT setval(pg_get_serial_sequence('transactions', 'id'),"
    " (SELECT max(id) FROM transactions))",
    "SELECT setval(pg_get_serial_sequence('entries', 'id'), (SELECT max(id) FROM entries))",
]
DAYS = 300
CHUNK = 5000
BALANCE_AT = (
    "query($id: ID!, $at: DateTime!) { account(id: $id) { balanceAt(at: $at) { amount } } }"
)
STATEMENT = """query($id: ID!, $from: DateTime!, $to: DateTime!) { account(id: $id) {
  statement(from: $from, to: $to) { openingBalance { amount } closingBalance { amount }
    moneyIn { amount } moneyOut { amount }
    entries(first: 20) { edges { node { id amount { amount } balanceAfter { amount } } } } } } }"""


async def seed(url: str, account_id: int, lines: int, start: datetime) -> None:
    """`lines` lines on the account, oldest at `start`, each a deposit or a withdrawal."""
    engine = make_engine(url)
    try:
        async with engine.begin() as connection:
            funding = (
                await connection.execute(
                    select(AccountRow.id).where(AccountRow.funding_currency == "EUR")
                )
            ).scalar_one()
            balance = (
                await connection.execute(
                    select(AccountRow.balance).where(AccountRow.id == account_id)
                )
            ).scalar_one()
            next_transaction = (
                await connection.execute(select(func.max(TransactionRow.id)))
            ).scalar_one() + 1
            next_entry = (await connection.execute(select(func.max(EntryRow.id)))).scalar_one() + 1
            step = timedelta(days=DAYS) / lines
            for first in range(0, lines, CHUNK):
                transactions, entries = [], []
                for number in range(first, min(first + CHUNK, lines)):
                    amount = 1 + number % 997
                    withdrawal = number % 3 == 2 and balance >= amount
                    change = -amount if withdrawal else amount
                    balance += change
                    when = start + step * number
                    key = next_transaction + number
                    transactions.append(
                        {
                            "id": key,
                            "kind": "WITHDRAWAL" if withdrawal else "DEPOSIT",
                            "amount": amount,
                            "currency": "EUR",
                            "source_account_id": account_id if withdrawal else None,
                            "destination_account_id": None if withdrawal else account_id,
                            "description": f"line {number}",
                            "actor_id": 1,
                            "created_at": when,
                        }
                    )
                    line = next_entry + 2 * number
                    entries += [
                        {
                            "id": line,
                            "transaction_id": key,
                            "account_id": account_id,
                            "amount": change,
                            "balance_after": balance,
                            "created_at": when,
                        },
                        {
                            "id": line + 1,
                            "transaction_id": key,
                            "account_id": funding,
                            "amount": -change,
                            "balance_after": None,
                            "created_at": when,
                        },
                    ]
                await connection.execute(insert(TransactionRow), transactions)
                await connection.execute(insert(EntryRow), entries)
            await connection.execute(
                update(AccountRow).where(AccountRow.id == account_id).values(balance=balance)
            )
            if connection.dialect.name == "postgresql":
                # The rows took their ids by hand: the sequences move past them.
                for statement in SET_SEQUENCES:
                    await connection.execute(text(statement))
    finally:
        await engine.dispose()


async def statements_per_query(url: str, token: str, accounts: dict[str, str]) -> None:
    engine = make_engine(url)
    counted = [0]

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def count(*_arguments: Any) -> None:
        counted[0] += 1

    tokens = TokenCodec(TEST_SECRET_KEY, timedelta(hours=1))
    signed_in = tokens.verify(token)
    schema = build_schema()
    uow = sql_unit_of_work(make_session_factory(engine))
    now = datetime.now(UTC)
    month = {
        "from": (now - timedelta(days=150)).isoformat(),
        "to": (now - timedelta(days=120)).isoformat(),
    }
    counts: dict[str, set[int]] = {}
    print("| query | account | SQL statements | time |")
    print("|---|---|---|---|")
    try:
        for label, account_id in accounts.items():
            for name, document, variables in (
                ("balanceAt", BALANCE_AT, {"at": (now - timedelta(days=100)).isoformat()}),
                ("one-month statement", STATEMENT, month),
            ):
                await schema.execute(  # warm: the user's first read, caches
                    document,
                    variable_values={"id": account_id, **variables},
                    context_value=build_context(uow, tokens, signed_in),
                )
                counted[0] = 0
                started = time.perf_counter()
                result = await schema.execute(
                    document,
                    variable_values={"id": account_id, **variables},
                    context_value=build_context(uow, tokens, signed_in),
                )
                elapsed = (time.perf_counter() - started) * 1000
                assert result.errors is None, result.errors
                print(f"| {name} | {label} | {counted[0]} | {elapsed:.1f} ms |")
                counts.setdefault(name, set()).add(counted[0])
    finally:
        await engine.dispose()
    for name, found in counts.items():
        assert len(found) == 1, f"{name} costs {sorted(found)} statements: it grows with history"
        print(f"{name}: the same {found.pop()} SQL statements on both accounts")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise LookupError("no VmRSS")


async def csv_memory(base: str, pid: int, token: str, account_id: str, lines: int) -> None:
    now = datetime.now(UTC)
    params = {"from": (now - timedelta(days=DAYS + 5)).isoformat(), "to": now.isoformat()}
    headers = {"Authorization": f"Bearer {token}"}
    url = f"{base}/accounts/{account_id}/statement.csv"
    async with httpx.AsyncClient(timeout=600) as http:
        warm = {"from": (now - timedelta(days=1)).isoformat(), "to": now.isoformat()}
        assert (await http.get(url, params=warm, headers=headers)).status_code == 200
        before = rss_kib(pid)
        peak = [before]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.02):
                peak[0] = max(peak[0], rss_kib(pid))

        sampler = threading.Thread(target=sample)
        sampler.start()
        started = time.perf_counter()
        rows = 0
        try:
            async with http.stream("GET", url, params=params, headers=headers) as response:
                assert response.status_code == 200
                tail = ""
                async for chunk in response.aiter_text():
                    tail += chunk
                    complete, _, tail = tail.rpartition("\r\n")
                    rows += (
                        len(list(csv.reader(io.StringIO(complete, newline="")))) if complete else 0
                    )
        finally:
            done.set()
            sampler.join()
        elapsed = time.perf_counter() - started
    print(
        f"CSV of {rows - 3} lines: {elapsed:.1f} s; server RSS "
        f"{before / 1024:.1f} MiB before, peak {peak[0] / 1024:.1f} MiB, "
        f"growth {(peak[0] - before) / 1024:.1f} MiB"
    )
    assert rows - 3 == lines + 1  # the header, opening and closing rows; and the initial deposit


async def measure(url: str, lines: int) -> None:
    env = environment(url, BANKQL_REQUEST_TIMEOUT_S="600")
    assert run("migrate", env=env).returncode == 0
    server = Server(env).start()
    try:
        async with httpx.AsyncClient(timeout=60) as http:

            async def post(document: str, token: str | None = None, **variables: Any) -> Any:
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                response = await http.post(
                    f"{server.url}/graphql",
                    json={"query": document, "variables": variables},
                    headers=headers,
                )
                return response.json()["data"]

            registered = await post(
                REGISTER, input={"email": "bench@example.com", "password": "x" * 12}
            )
            token = registered["register"]["token"]
            ids = {}
            for label in (f"{lines:,} lines", "10 lines"):
                opened = await post(
                    OPEN, token, input={"name": label, "currency": "EUR", "initialDeposit": "1"}
                )
                ids[label] = opened["openAccount"]["account"]["id"]
        start = datetime.now(UTC) - timedelta(days=DAYS)
        seeding = time.perf_counter()
        for label, count in ((f"{lines:,} lines", lines - 1), ("10 lines", 9)):
            await seed(url, from_global_id(ids[label])[1], count, start)
        print(f"seeded in {time.perf_counter() - seeding:.1f} s on {url.split(':')[0]}")
        await statements_per_query(url, token, ids)
        assert server.process is not None
        await csv_memory(server.url, server.process.pid, token, ids[f"{lines:,} lines"], lines - 1)
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--sqlite", action="store_true")
    arguments = parser.parse_args()
    on_temporary_database(arguments.sqlite, lambda url: measure(url, arguments.lines))


if __name__ == "__main__":
    main()
