"""reverseTransaction over HTTP, on both databases: administrators undo, history stays."""

import asyncio

from gql.schema.ids import to_global_id
from tests.api.graphql import CLOSE, STATEMENT, errors
from tests.api.test_holds import capture, place

REVERSE = f"""mutation($input: ReverseTransactionInput!) {{ reverseTransaction(input: $input) {{
  {errors("InsufficientFunds", "AccountClosed", "IdempotencyConflict")}
  ... on TransactionNotFound {{ transactionId }}
  ... on TransactionNotReversible {{ transactionId }}
  ... on MoneyMovement {{
    transaction {{ id kind amount {{ amount currency }} sourceAccountId destinationAccountId
                   description reverses {{ id kind reversedBy {{ id }} }} reversedBy {{ id }} }}
    sourceAccount {{ id balance {{ amount }} }}
    destinationAccount {{ id balance {{ amount }} }} }} }} }}"""
TRANSACTION = """query($id: ID!) { transaction(id: $id) {
  id kind reversedBy { id kind } reverses { id } hold { id status } } }"""
AUDIT = "{ ledgerAudit { ok } }"


async def reverse(client, transaction_id: str, **extra) -> dict:
    payload = {"transactionId": transaction_id} | extra
    return (await client.data(REVERSE, input=payload))["reverseTransaction"]


async def test_a_reversal_undoes_a_transfer_and_links_both_ways(gql, bob, admin):
    a = await gql.open_account(name="A", initial_deposit="50")
    b = await bob.open_account(name="B")
    sent = (await gql.transfer(a["id"], b["id"], "20"))["transaction"]
    undone = await reverse(admin, sent["id"], description="Sent in error")
    assert undone["__typename"] == "MoneyMovement"
    reversal = undone["transaction"]
    assert (reversal["kind"], reversal["amount"], reversal["description"]) == (
        "REVERSAL",
        {"amount": "20.00", "currency": "EUR"},
        "Sent in error",
    )
    assert (reversal["sourceAccountId"], reversal["destinationAccountId"]) == (b["id"], a["id"])
    assert reversal["reverses"] == {
        "id": sent["id"],
        "kind": "TRANSFER",
        "reversedBy": {"id": reversal["id"]},
    }
    assert reversal["reversedBy"] is None
    assert undone["sourceAccount"]["balance"] == {"amount": "0.00"}
    assert undone["destinationAccount"]["balance"] == {"amount": "50.00"}
    # Both customers see the link; history keeps all three lines on A.
    seen = (await gql.data(TRANSACTION, id=sent["id"]))["transaction"]
    assert seen["reversedBy"] == {"id": reversal["id"], "kind": "REVERSAL"}
    lines = (await gql.data(STATEMENT, id=a["id"]))["account"]["entries"]["edges"]
    assert [e["node"]["transaction"]["kind"] for e in lines] == ["REVERSAL", "TRANSFER", "DEPOSIT"]
    assert (await admin.data(AUDIT))["ledgerAudit"]["ok"] is True


async def test_only_once_and_never_a_reversal(gql, admin):
    a = await gql.open_account(initial_deposit="10")
    deposit = (await gql.deposit(a["id"], "5"))["transaction"]
    reversal = (await reverse(admin, deposit["id"]))["transaction"]
    again = await reverse(admin, deposit["id"])
    assert (again["__typename"], again["transactionId"]) == (
        "TransactionNotReversible",
        deposit["id"],
    )
    itself = await reverse(admin, reversal["id"])
    assert itself["__typename"] == "TransactionNotReversible"
    missing = await reverse(admin, to_global_id("Transaction", 999_999))
    assert (missing["__typename"], missing["transactionId"]) == (
        "TransactionNotFound",
        to_global_id("Transaction", 999_999),
    )
    assert await gql.balance(a["id"]) == "10.00"


async def test_customers_may_not_reverse(gql):
    a = await gql.open_account(initial_deposit="10")
    deposit = (await gql.deposit(a["id"], "5"))["transaction"]
    refused = await gql.request(REVERSE, input={"transactionId": deposit["id"]})
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert await gql.balance(a["id"]) == "15.00"


async def test_money_that_must_come_back_is_checked_against_the_available_balance(gql, admin):
    a = await gql.open_account(initial_deposit="10")
    deposit = (await gql.deposit(a["id"], "30"))["transaction"]
    await place(gql, a["id"], "25")
    short = await reverse(admin, deposit["id"])
    assert (short["__typename"], short["available"], short["requested"]) == (
        "InsufficientFunds",
        {"amount": "15.00", "currency": "EUR"},
        {"amount": "30.00", "currency": "EUR"},
    )
    assert await gql.balance(a["id"]) == "40.00"


async def test_a_closed_account_refuses_and_a_capture_can_be_reversed(gql, admin):
    a = await gql.open_account(initial_deposit="10")
    withdrawal = (await gql.withdraw(a["id"], "10"))["transaction"]
    await gql.data(CLOSE, input={"accountId": a["id"]})
    closed = await reverse(admin, withdrawal["id"])
    assert (closed["__typename"], closed["accountId"]) == ("AccountClosed", a["id"])

    b = await gql.open_account(name="B", initial_deposit="10")
    hold = (await place(gql, b["id"], "4"))["hold"]
    captured = (await capture(gql, hold["id"]))["movement"]["transaction"]
    seen = (await gql.data(TRANSACTION, id=captured["id"]))["transaction"]
    assert seen["hold"] == {"id": hold["id"], "status": "CAPTURED"}
    assert (await reverse(admin, captured["id"]))["__typename"] == "MoneyMovement"
    assert await gql.balance(b["id"]) == "10.00"
    assert (await admin.data(AUDIT))["ledgerAudit"]["ok"] is True


async def test_the_same_key_reverses_once_and_racing_reversals_commit_one(gql, admin):
    a = await gql.open_account(initial_deposit="10")
    deposit = (await gql.deposit(a["id"], "5"))["transaction"]
    first = await reverse(admin, deposit["id"], idempotencyKey="r-1")
    retried = await reverse(admin, deposit["id"], idempotencyKey="r-1")
    assert retried["transaction"]["id"] == first["transaction"]["id"]
    other = (await gql.deposit(a["id"], "1"))["transaction"]
    conflict = await reverse(admin, other["id"], idempotencyKey="r-1")
    assert conflict["__typename"] == "IdempotencyConflict"

    raced = (await gql.deposit(a["id"], "2"))["transaction"]
    results = await asyncio.gather(*(reverse(admin, raced["id"]) for _ in range(4)))
    kinds = sorted(result["__typename"] for result in results)
    assert kinds == ["MoneyMovement"] + ["TransactionNotReversible"] * 3
    assert await gql.balance(a["id"]) == "11.00"
    assert (await admin.data(AUDIT))["ledgerAudit"]["ok"] is True
