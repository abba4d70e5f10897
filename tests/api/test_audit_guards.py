"""The audit catches what the database's own guards would, when they are switched off."""

import pytest
from sqlalchemy import text

from gql.schema.ids import from_global_id
from tests.api.test_audit import AUDIT
from tests.databases import migrated


@pytest.fixture
async def database_url(empty_url):
    """A database of this test's own: switching a guard off must not outlive the test."""
    await migrated(empty_url)
    return empty_url


async def test_the_audit_finds_a_customer_balance_below_zero(gql, admin, app):
    a = await gql.open_account(name="A")
    _, key = from_global_id(a["id"])
    async with app.state.engine.begin() as connection:
        # Switch the database's own guard off first, as a broken migration might: the audit
        # must catch what the CHECK constraint would have.
        if connection.dialect.name == "postgresql":
            await connection.execute(
                text("ALTER TABLE accounts DROP CONSTRAINT ck_accounts_customer_balance")
            )
        else:
            await connection.execute(text("PRAGMA ignore_check_constraints = ON"))
        await connection.execute(text(f"UPDATE accounts SET balance = -5 WHERE id = {key}"))
        await connection.execute(
            text(
                "INSERT INTO transactions (kind, amount, currency, destination_account_id,"
                " actor_id, created_at) SELECT 'WITHDRAWAL', 5, 'EUR', id, owner_id,"
                f" CURRENT_TIMESTAMP FROM accounts WHERE id = {key}"
            )
        )
        await connection.execute(
            text(
                "INSERT INTO entries"
                " (transaction_id, account_id, amount, balance_after, created_at)"
                f" SELECT MAX(id), {key}, -5, -5, CURRENT_TIMESTAMP FROM transactions"
            )
        )
    report = (await admin.data(AUDIT))["ledgerAudit"]
    # The entries explain the balance, so only the rule "never below zero" is broken.
    assert report["mismatchedAccountIds"] == [a["id"]]
