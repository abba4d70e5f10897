"""What must hold after any load: read back through the API as an administrator and from SQL."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import text

from gql.schema.ids import from_global_id
from persistence.database import make_engine
from tests.load.workload import LOGIN, Bank, Op, acknowledged_movements, expected_total_minor, post

ADMIN_EMAIL = "auditor@example.com"
ADMIN_PASSWORD = "auditor password"
AUDIT = "{ ledgerAudit { ok mismatchedAccountIds unbalancedTransactionIds unbalancedCurrencies } }"
ACCOUNTS = """query($after: String) {
  accounts(first: 100, after: $after) {
    edges { node { id balance { amount } } } pageInfo { hasNextPage endCursor } } }"""
ENTRIES = """query($id: ID!, $after: String) {
  account(id: $id) { entries(first: 100, after: $after) {
    edges { node { amount { amount } balanceAfter { amount } } }
    pageInfo { hasNextPage endCursor } } } }"""


def minor(amount: str) -> int:
    """EUR decimal string to cents, exactly."""
    sign = -1 if amount.startswith("-") else 1
    whole, _, cents = amount.lstrip("-").partition(".")
    return sign * (int(whole) * 100 + int(cents or 0))


async def _pages(
    http: httpx.AsyncClient, base: str, token: str, document: str, path: list[str], **variables: Any
) -> list[dict[str, Any]]:
    nodes, after = [], None
    while True:
        data: Any = await post(http, base, document, token, after=after, **variables)
        for step in path:
            data = data[step]
        nodes += [edge["node"] for edge in data["edges"]]
        if not data["pageInfo"]["hasNextPage"]:
            return nodes
        after = data["pageInfo"]["endCursor"]


async def check_ledger(
    http: httpx.AsyncClient, base: str, database_url: str, bank: Bank, ops: list[Op]
) -> None:
    login = await post(http, base, LOGIN, input={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    admin = login["login"]["token"]

    audit = (await post(http, base, AUDIT, admin))["ledgerAudit"]
    assert audit == {
        "ok": True,
        "mismatchedAccountIds": [],
        "unbalancedTransactionIds": [],
        "unbalancedCurrencies": [],
    }

    accounts = await _pages(http, base, admin, ACCOUNTS, ["accounts"])
    balances = {account["id"]: minor(account["balance"]["amount"]) for account in accounts}
    assert set(balances) == set(bank.all_accounts)
    assert min(balances.values()) >= 0
    assert sum(balances.values()) == expected_total_minor(bank, ops)

    for account_id, balance in balances.items():
        lines = await _pages(http, base, admin, ENTRIES, ["account", "entries"], id=account_id)
        previous = 0
        for line in reversed(lines):  # oldest first
            after, amount = minor(line["balanceAfter"]["amount"]), minor(line["amount"]["amount"])
            assert after - amount == previous, f"the statement of {account_id} does not chain"
            previous = after
        assert previous == balance

    moved = acknowledged_movements(bank)
    engine = make_engine(database_url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                text(
                    "SELECT idempotency_key, id FROM transactions WHERE idempotency_key IS NOT NULL"
                )
            )
            stored = [(key, transaction_id) for key, transaction_id in rows]
    finally:
        await engine.dispose()
    keys = [key for key, _ in stored]
    assert len(keys) == len(set(keys)), "a key produced more than one transaction"
    assert dict(stored) == {key: from_global_id(global_id)[1] for key, global_id in moved.items()}
