"""The administrators' ledger audit, shown clean after real movements and able to fail."""

from sqlalchemy import text

from gql.schema.ids import from_global_id, to_global_id
from tests.api.graphql import STATEMENT

AUDIT = """{ ledgerAudit { ok accountsChecked transactionsChecked mismatchedAccountIds
                           unbalancedTransactionIds unbalancedCurrencies } }"""


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
        "unbalancedCurrencies": [],
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


async def funding_keys(connection) -> dict[str, int]:
    rows = await connection.execute(
        text("SELECT currency, id FROM accounts WHERE kind = 'FUNDING'")
    )
    return dict(rows.all())


async def record_behind_the_ledgers_back(connection, currency, *lines) -> None:
    """A transaction written straight into the tables, with (account, amount, balance after)
    lines; it sums to zero when its lines do."""
    transaction_key = (
        await connection.execute(
            text(
                "INSERT INTO transactions (kind, amount, currency, actor_id, created_at)"
                " SELECT 'DEPOSIT', 1, :currency, MIN(id), CURRENT_TIMESTAMP FROM users"
                " RETURNING id"
            ),
            {"currency": currency},
        )
    ).scalar_one()
    for account_key, amount, balance_after in lines:
        await connection.execute(
            text(
                "INSERT INTO entries"
                " (transaction_id, account_id, amount, balance_after, created_at)"
                " VALUES (:t, :a, :amount, :after, CURRENT_TIMESTAMP)"
            ),
            {"t": transaction_key, "a": account_key, "amount": amount, "after": balance_after},
        )


async def test_the_audit_finds_funding_that_does_not_offset_the_customers(gql, bob, admin, app):
    await mixed_movements(gql, bob)
    # Totals past 64 bits on both sides, so that only an exact sum sees one unit go astray.
    for client in (gql, bob):
        await client.open_account(name="Full", initial_deposit="92233720368547758.07")
    assert (await admin.data(AUDIT))["ledgerAudit"]["ok"] is True
    async with app.state.engine.begin() as connection:
        funding = await funding_keys(connection)
        # One unit from the EUR funding account to the JPY one: the transaction sums to zero
        # and neither account stores a balance, but neither currency adds up any more.
        await record_behind_the_ledgers_back(
            connection, "EUR", (funding["EUR"], -1, None), (funding["JPY"], 1, None)
        )
    report = (await admin.data(AUDIT))["ledgerAudit"]
    assert report["ok"] is False
    assert report["unbalancedCurrencies"] == ["EUR", "JPY"]
    assert (report["mismatchedAccountIds"], report["unbalancedTransactionIds"]) == ([], [])


async def test_the_audit_finds_a_balance_stored_on_a_funding_account(gql, bob, admin, app):
    await mixed_movements(gql, bob)
    async with app.state.engine.begin() as connection:
        jpy = (await funding_keys(connection))["JPY"]
        await connection.execute(text(f"UPDATE accounts SET balance = -3800 WHERE id = {jpy}"))
    report = (await admin.data(AUDIT))["ledgerAudit"]
    assert report["ok"] is False
    assert report["mismatchedAccountIds"] == [to_global_id("Account", jpy)]
    assert report["unbalancedCurrencies"] == []


async def test_the_audit_finds_a_customer_line_without_its_balance_after(gql, bob, admin, app):
    a, _, _ = await mixed_movements(gql, bob)
    _, key = from_global_id(a["id"])
    async with app.state.engine.begin() as connection:
        eur = (await funding_keys(connection))["EUR"]
        # Balanced, and the stored balance follows the entries, but the line leaves out the
        # balance after it, which only funding lines may.
        await record_behind_the_ledgers_back(connection, "EUR", (eur, -1, None), (key, 1, None))
        await connection.execute(
            text(f"UPDATE accounts SET balance = balance + 1 WHERE id = {key}")
        )
    report = (await admin.data(AUDIT))["ledgerAudit"]
    assert report["ok"] is False
    assert report["mismatchedAccountIds"] == [a["id"]]
    assert (report["unbalancedTransactionIds"], report["unbalancedCurrencies"]) == ([], [])
