"""No customer can fill a bound other customers share: the bank's side of deposits is unbounded."""

from tests.api.test_audit import AUDIT

# The largest balance 64 bits of CHF cents hold: with no BANKQL_MAX_ACCOUNT_BALANCE set, the
# largest an account may hold.
LARGEST = "92233720368547758.07"


async def fill_to_the_brim(client, account_id: str) -> int:
    """Deposit as a client would that pushes until refused: ever smaller amounts. Returns how
    many deposits were refused on the way."""
    refused = 0
    await client.deposit(account_id, "92233720368537758.07", "CHF")
    cents = 2**62
    while cents:
        result = await client.deposit(account_id, f"{cents // 100}.{cents % 100:02d}", "CHF")
        if result["__typename"] != "MoneyMovement":
            assert (result["__typename"], result["field"]) == ("ValidationError", "amount.amount")
            refused += 1
            cents //= 2
    return refused


async def test_one_customer_at_the_largest_balance_blocks_no_one_else(gql, bob, admin):
    full = await gql.open_account(name="Full", currency="CHF")
    assert await fill_to_the_brim(gql, full["id"]) > 0
    assert await gql.balance(full["id"]) == LARGEST
    over = await gql.deposit(full["id"], "0.01", "CHF")
    assert (over["__typename"], over["field"]) == ("ValidationError", "amount.amount")
    assert LARGEST in over["message"]

    # Under one 64-bit funding balance per currency, each of these was "The amount is too large."
    small = await bob.open_account(name="Small", currency="CHF")
    deposit = await bob.deposit(small["id"], "0.01", "CHF")
    assert deposit["__typename"] == "MoneyMovement", deposit
    opened = await bob.open_account(name="Opened", currency="CHF", initial_deposit="250")
    another_full = await bob.open_account(name="Full too", currency="CHF", initial_deposit=LARGEST)
    assert await bob.balance(small["id"]) == "0.01"
    assert await bob.balance(opened["id"]) == "250.00"
    assert await bob.balance(another_full["id"]) == LARGEST
    withdrawal = await bob.withdraw(another_full["id"], "1", "CHF")
    assert withdrawal["sourceAccount"]["balance"]["amount"] == "92233720368547757.07"

    # The funding side now holds more than 64 bits can; the audit sums it exactly.
    report = (await admin.data(AUDIT))["ledgerAudit"]
    assert report["ok"] is True, report
    assert report["unbalancedCurrencies"] == []
