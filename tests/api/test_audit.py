"""The administrators' ledger audit, shown clean after real movements and able to fail."""

from sqlalchemy import text

from gql.ids import from_global_id
from tests.api.graphql import STATEMENT

AUDIT = """{ ledgerAudit { ok accountsChecked transactionsChecked mismatchedAccountIds
                           unbalancedTransactionIds } }"""


async def mixed_movements(gql, bob):
    a = await gql.open_account(name="A", initial_deposit="100")
    b = await gql.open_account(name="B", currency="JPY", initial_deposit="5000")
    c = await bob.open_account(name="C")
    await gql.transfer(a["id"], c["id"], "30.5")
    await gql.withdraw(b["id"], "1200", "JPY")
    await bob.withdraw(c["id"], "0.5")
    await gql.withdraw(a["id"], "1000")  # refused: moves nothing
    await bob.deposit(c["id"], "7", idempotencyKey="once")
    await bob.deposit(c["id"], "7", idempotencyKey="once")
    return a, b, c


async def test_the_audit_is_clean_after_a_mix_of_movements(gql, bob, admin):
    await mixed_movements(gql, bob)
    report = (await admin.data(AUDIT))["ledgerAudit"]
    assert report == {
        "ok": True,
        # three customer accounts and one funding account per currency
        "accountsChecked": 5,
        # two initial deposits, a transfer, two withdrawals, one deposit replayed once
        "transactionsChecked": 6,
        "mismatchedAccountIds": [],
        "unbalancedTransactionIds": [],
    }


async def test_only_administrators_may_audit(gql):
    body = await gql.request(AUDIT)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert body["data"] is None


async def test_the_audit_finds_a_balance_changed_behind_the_ledgers_back(gql, bob, admin, app):
    a, _, _ = await mixed_movements(gql, bob)
    _, key = from_global_id(a["id"])
    async with app.state.engine.begin() as connection:
        await connection.execute(
            text(f"UPDATE accounts SET balance = balance + 1 WHERE id = {key}")
        )
    report = (await admin.data(AUDIT))["ledgerAudit"]
    assert report["ok"] is False
    assert report["mismatchedAccountIds"] == [a["id"]]
    assert report["unbalancedTransactionIds"] == []


async def test_the_audit_finds_an_entry_that_unbalances_a_transaction(gql, bob, admin, app):
    a, _, _ = await mixed_movements(gql, bob)
    statement = (await gql.data(STATEMENT, id=a["id"]))["account"]["entries"]["edges"]
    transaction_id = statement[-1]["node"]["transaction"]["id"]
    _, transaction_key = from_global_id(transaction_id)
    _, account_key = from_global_id(a["id"])
    async with app.state.engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO entries"
                " (transaction_id, account_id, amount, balance_after, created_at)"
                " VALUES (:t, :a, 1, 0, CURRENT_TIMESTAMP)"
            ),
            {"t": transaction_key, "a": account_key},
        )
    report = (await admin.data(AUDIT))["ledgerAudit"]
    assert report["ok"] is False
    assert report["unbalancedTransactionIds"] == [transaction_id]
    assert a["id"] in report["mismatchedAccountIds"]
