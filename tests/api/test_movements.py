import asyncio

import pytest

from gql.schema.ids import to_global_id
from tests.api.graphql import STATEMENT


async def test_deposit_withdraw_and_transfer_move_exact_amounts(gql):
    a = await gql.open_account(name="A")
    b = await gql.open_account(name="B")
    deposit = await gql.deposit(a["id"], "100.10", description=" salary ")
    assert deposit["__typename"] == "MoneyMovement"
    assert deposit["transaction"]["kind"] == "DEPOSIT"
    assert deposit["transaction"]["sourceAccountId"] is None
    assert deposit["transaction"]["destinationAccountId"] == a["id"]
    assert deposit["transaction"]["description"] == "salary"
    assert deposit["sourceAccount"] is None
    assert deposit["destinationAccount"]["balance"]["amount"] == "100.10"

    transfer = await gql.transfer(a["id"], b["id"], "0.1")
    assert transfer["transaction"]["amount"] == {"amount": "0.10", "currency": "EUR"}
    assert transfer["sourceAccount"]["balance"]["amount"] == "100.00"
    assert transfer["destinationAccount"]["balance"]["amount"] == "0.10"

    withdrawal = await gql.withdraw(a["id"], "100")
    assert withdrawal["transaction"]["kind"] == "WITHDRAWAL"
    assert withdrawal["transaction"]["destinationAccountId"] is None
    assert withdrawal["destinationAccount"] is None
    assert (await gql.balance(a["id"]), await gql.balance(b["id"])) == ("0.00", "0.10")


async def test_a_statement_explains_every_unit_with_balances_after_newest_first(gql):
    a = await gql.open_account(name="A", initial_deposit="10")
    b = await gql.open_account(name="B")
    await gql.transfer(a["id"], b["id"], "3")
    await gql.withdraw(a["id"], "2.5")
    edges = (await gql.data(STATEMENT, id=a["id"]))["account"]["entries"]["edges"]
    lines = [
        (
            e["node"]["amount"]["amount"],
            e["node"]["balanceAfter"]["amount"],
            e["node"]["transaction"]["kind"],
        )
        for e in edges
    ]
    assert lines == [
        ("-2.50", "4.50", "WITHDRAWAL"),
        ("-3.00", "7.00", "TRANSFER"),
        ("10.00", "10.00", "DEPOSIT"),
    ]
    credited = (await gql.data(STATEMENT, id=b["id"]))["account"]["entries"]["edges"]
    assert [e["node"]["amount"]["amount"] for e in credited] == ["3.00"]


async def test_an_overdraft_is_insufficient_funds_and_moves_nothing(gql):
    a = await gql.open_account(name="A", initial_deposit="5")
    b = await gql.open_account(name="B")
    refused = await gql.transfer(a["id"], b["id"], "5.01")
    assert refused["__typename"] == "InsufficientFunds"
    assert refused["accountId"] == a["id"]
    assert refused["available"] == {"amount": "5.00", "currency": "EUR"}
    assert refused["requested"] == {"amount": "5.01", "currency": "EUR"}
    withdrawal = await gql.withdraw(a["id"], "6")
    assert withdrawal["__typename"] == "InsufficientFunds"
    assert (await gql.balance(a["id"]), await gql.balance(b["id"])) == ("5.00", "0.00")
    assert len((await gql.data(STATEMENT, id=a["id"]))["account"]["entries"]["edges"]) == 1


@pytest.mark.parametrize(
    ("amount", "currency", "field"),
    [
        ("0", "EUR", "amount.amount"),
        ("-1", "EUR", "amount.amount"),
        ("1.001", "EUR", "amount.amount"),
        ("10.500", "EUR", "amount.amount"),
        ("1e3", "EUR", "amount.amount"),
        ("1_0", "EUR", "amount.amount"),
        (" 1", "EUR", "amount.amount"),
        ("Infinity", "EUR", "amount.amount"),
        ("92233720368547758.08", "EUR", "amount.amount"),
        ("1", "ABC", "amount.currency"),
        ("1", "", "amount.currency"),
    ],
)
async def test_bad_amounts_are_validation_errors_on_their_field(gql, amount, currency, field):
    a = await gql.open_account(initial_deposit="1")
    for result in (
        await gql.deposit(a["id"], amount, currency),
        await gql.withdraw(a["id"], amount, currency),
    ):
        assert (result["__typename"], result["field"]) == ("ValidationError", field)
    assert await gql.balance(a["id"]) == "1.00"


async def test_a_balance_beyond_64_bits_is_a_validation_error_on_the_amount(gql):
    a = await gql.open_account(initial_deposit="92233720368547758.07")
    result = await gql.deposit(a["id"], "0.01")
    assert (result["__typename"], result["field"]) == ("ValidationError", "amount.amount")
    assert await gql.balance(a["id"]) == "92233720368547758.07"


async def test_currency_must_match_the_source_account(gql):
    eur = await gql.open_account(name="E", initial_deposit="10")
    usd = await gql.open_account(name="U", currency="USD")
    deposit = await gql.deposit(eur["id"], "1", "usd")
    assert (deposit["__typename"], deposit["expected"], deposit["received"]) == (
        "CurrencyMismatch",
        "EUR",
        "USD",
    )
    transfer = await gql.transfer(eur["id"], usd["id"], "1")
    assert (transfer["__typename"], transfer["expected"], transfer["received"]) == (
        "CurrencyMismatch",
        "EUR",
        "USD",
    )
    assert await gql.balance(eur["id"]) == "10.00"


async def test_errors_come_in_the_documented_order(gql):
    empty = await gql.open_account(name="Empty")
    a = await gql.open_account(name="A", initial_deposit="10")
    usd = await gql.open_account(name="U", currency="USD")
    await gql.data(
        "mutation($i: CloseAccountInput!) { closeAccount(input: $i) { __typename } }",
        i={"accountId": usd["id"]},
    )
    missing = to_global_id("Account", 987654)
    assert (await gql.transfer(a["id"], usd["id"], "1.001"))["__typename"] == "ValidationError"
    # The sender's own refusals come first, whatever the destination...
    for destination in (missing, usd["id"]):
        assert (await gql.transfer(empty["id"], destination, "1"))[
            "__typename"
        ] == "InsufficientFunds"
    # ...then the destination's: missing, closed, another currency.
    assert (await gql.transfer(a["id"], missing, "1"))["__typename"] == "AccountNotFound"
    assert (await gql.transfer(a["id"], usd["id"], "1"))["__typename"] == "AccountClosed"
    other = await gql.open_account(name="U2", currency="USD")
    assert (await gql.transfer(a["id"], other["id"], "1"))["__typename"] == "CurrencyMismatch"
    assert (await gql.transfer(empty["id"], a["id"], "1"))["__typename"] == "InsufficientFunds"


async def test_transfer_to_the_same_account_is_a_validation_error(gql):
    a = await gql.open_account(initial_deposit="10")
    result = await gql.transfer(a["id"], a["id"], "1")
    assert (result["__typename"], result["field"]) == ("ValidationError", "destinationAccountId")


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"idempotencyKey": ""}, "idempotencyKey"),
        ({"idempotencyKey": "k" * 256}, "idempotencyKey"),
        ({"description": "x" * 501}, "description"),
        ({"description": "bell\u0007"}, "description"),
    ],
)
async def test_bad_keys_and_descriptions_are_validation_errors(gql, extra, field):
    a = await gql.open_account()
    result = await gql.deposit(a["id"], "1", **extra)
    assert (result["__typename"], result["field"]) == ("ValidationError", field)


async def test_malformed_account_ids_are_validation_errors(gql):
    a = await gql.open_account(initial_deposit="10")
    for bad in ("", "not-an-id", to_global_id("Transaction", 1), "QWNjb3VudDotMQ"):
        result = await gql.transfer(a["id"], bad, "1")
        assert (result["__typename"], result["field"]) == (
            "ValidationError",
            "destinationAccountId",
        )
        result = await gql.deposit(bad, "1")
        assert (result["__typename"], result["field"]) == ("ValidationError", "accountId")


async def test_an_idempotency_key_replays_the_first_movement(gql):
    a = await gql.open_account()
    first = await gql.deposit(a["id"], "5", idempotencyKey="pay-1")
    again = await gql.deposit(a["id"], "5", idempotencyKey="pay-1")
    assert again["transaction"] == first["transaction"]
    assert await gql.balance(a["id"]) == "5.00"
    conflict = await gql.deposit(a["id"], "6", idempotencyKey="pay-1")
    assert conflict == {
        "__typename": "IdempotencyConflict",
        "idempotencyKey": "pay-1",
        "message": conflict["message"],
    }
    conflict = await gql.withdraw(a["id"], "5", idempotencyKey="pay-1")
    assert conflict["__typename"] == "IdempotencyConflict"
    assert await gql.balance(a["id"]) == "5.00"


async def test_a_replay_shows_balances_as_they_are_now(gql):
    a = await gql.open_account()
    await gql.deposit(a["id"], "5", idempotencyKey="k")
    await gql.deposit(a["id"], "1")
    replay = await gql.deposit(a["id"], "5", idempotencyKey="k")
    assert replay["destinationAccount"]["balance"]["amount"] == "6.00"


async def test_concurrent_requests_with_one_key_move_money_once(gql):
    a = await gql.open_account()
    results = await asyncio.gather(
        *(gql.deposit(a["id"], "2", idempotencyKey="same") for _ in range(5))
    )
    assert {r["transaction"]["id"] for r in results} == {results[0]["transaction"]["id"]}
    assert await gql.balance(a["id"]) == "2.00"
