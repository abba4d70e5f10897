"""placeHold, captureHold, voidHold and what they show, over HTTP, on both databases."""

import asyncio

from sqlalchemy import text

from gql.schema.ids import from_global_id, to_global_id
from tests.api.graphql import ACCOUNT_FIELDS, CLOSE, errors

HOLD_FIELDS = """
id status description destinationAccountId expiresAt createdAt resolvedAt
amount { amount currency } pendingAmount { amount } capturedAmount { amount }
account { id } transaction { id kind amount { amount } hold { id } }
"""
HOLD_ERRORS = {
    "HoldNotFound": "holdId",
    "HoldNotPending": "holdId status",
    "CaptureExceedsHold": "holdId pending { amount currency } requested { amount currency }",
}


def hold_errors(*names: str) -> str:
    known = [name for name in names if name not in HOLD_ERRORS]
    spreads = " ".join(
        f"... on {name} {{ {HOLD_ERRORS[name]} }}" for name in names if name in HOLD_ERRORS
    )
    return f"{errors(*known)} {spreads}"


PLACE = f"""mutation($input: PlaceHoldInput!) {{ placeHold(input: $input) {{
  {
    hold_errors(
        "ValidationError",
        "AccountNotFound",
        "AccountClosed",
        "CurrencyMismatch",
        "InsufficientFunds",
        "IdempotencyConflict",
    )
}
  ... on HoldPayload {{ hold {{ {HOLD_FIELDS} }} account {{ {ACCOUNT_FIELDS}
                        availableBalance {{ amount currency }} }} }} }} }}"""
CAPTURE = f"""mutation($input: CaptureHoldInput!) {{ captureHold(input: $input) {{
  {
    hold_errors(
        "ValidationError",
        "HoldNotFound",
        "HoldNotPending",
        "CaptureExceedsHold",
        "CurrencyMismatch",
        "AccountNotFound",
        "AccountClosed",
        "IdempotencyConflict",
    )
}
  ... on HoldCapture {{ hold {{ {HOLD_FIELDS} }}
      movement {{ transaction {{ id kind amount {{ amount }} sourceAccountId destinationAccountId
                                 description hold {{ id status }} }}
                  sourceAccount {{ id balance {{ amount }} availableBalance {{ amount }} }}
                  destinationAccount {{ id balance {{ amount }} }} }} }} }} }}"""
VOID = f"""mutation($input: VoidHoldInput!) {{ voidHold(input: $input) {{
  {hold_errors("HoldNotFound", "HoldNotPending")}
  ... on HoldPayload {{ hold {{ {HOLD_FIELDS} }}
                        account {{ availableBalance {{ amount }} }} }} }} }}"""
BALANCES = (
    """query($id: ID!) { account(id: $id) { balance { amount } availableBalance { amount } } }"""
)
HOLDS = """query($id: ID!, $status: HoldStatus, $first: Int, $after: String) {
  account(id: $id) { holds(status: $status, first: $first, after: $after) {
    edges { cursor node { id status amount { amount } } }
    pageInfo { hasNextPage hasPreviousPage endCursor } } } }"""
NODE = """query($id: ID!) { node(id: $id) { __typename ... on Hold { id status } } }"""
CLOSE_WITH_HOLDS = CLOSE.replace(
    "... on AccountNotEmpty", "... on AccountHasPendingHolds { accountId } ... on AccountNotEmpty"
)
AUDIT = "{ ledgerAudit { ok mismatchedAccountIds faultyHoldIds } }"


def eur(amount: str) -> dict:
    return {"amount": amount, "currency": "EUR"}


async def place(client, account_id: str, amount: str, **extra) -> dict:
    payload = {"accountId": account_id, "amount": eur(amount)} | extra
    return (await client.data(PLACE, input=payload))["placeHold"]


async def capture(client, hold_id: str, amount: str | None = None, **extra) -> dict:
    payload = {"holdId": hold_id} | ({"amount": eur(amount)} if amount else {}) | extra
    return (await client.data(CAPTURE, input=payload))["captureHold"]


async def void(client, hold_id: str) -> dict:
    return (await client.data(VOID, input={"holdId": hold_id}))["voidHold"]


async def balances(client, account_id: str) -> tuple[str, str]:
    account = (await client.data(BALANCES, id=account_id))["account"]
    return account["balance"]["amount"], account["availableBalance"]["amount"]


async def test_the_hold_lifecycle_place_capture_partially_and_void(gql, bob, admin):
    card = await gql.open_account(name="Card", initial_deposit="100")
    shop = await bob.open_account(name="Shop")
    placed = await place(
        gql, card["id"], "80", destinationAccountId=shop["id"], description="Hotel"
    )
    assert placed["__typename"] == "HoldPayload"
    hold = placed["hold"]
    assert (hold["status"], hold["amount"], hold["pendingAmount"]) == (
        "PENDING",
        eur("80.00"),
        {"amount": "80.00"},
    )
    assert (hold["destinationAccountId"], hold["transaction"], hold["resolvedAt"]) == (
        shop["id"],
        None,
        None,
    )
    assert placed["account"]["availableBalance"] == eur("20.00")
    assert await balances(gql, card["id"]) == ("100.00", "20.00")

    refused = await gql.withdraw(card["id"], "20.01")
    assert refused["__typename"] == "InsufficientFunds"
    assert refused["available"] == eur("20.00")

    captured = await capture(gql, hold["id"], "65.5")
    assert captured["__typename"] == "HoldCapture"
    transaction = captured["movement"]["transaction"]
    assert (transaction["kind"], transaction["amount"], transaction["description"]) == (
        "TRANSFER",
        {"amount": "65.50"},
        "Hotel",
    )
    assert transaction["hold"] == {"id": hold["id"], "status": "CAPTURED"}
    assert captured["hold"]["status"] == "CAPTURED"
    assert captured["hold"]["capturedAmount"] == {"amount": "65.50"}
    assert captured["hold"]["pendingAmount"] == {"amount": "0.00"}
    assert captured["hold"]["transaction"]["id"] == transaction["id"]
    assert captured["hold"]["resolvedAt"] is not None
    assert captured["movement"]["sourceAccount"]["availableBalance"] == {"amount": "34.50"}
    assert captured["movement"]["destinationAccount"] is None  # Bob's account: not Alice's to see
    assert await balances(gql, card["id"]) == ("34.50", "34.50")
    assert await bob.balance(shop["id"]) == "65.50"

    again = await capture(gql, hold["id"])
    assert (again["__typename"], again["status"], again["holdId"]) == (
        "HoldNotPending",
        "CAPTURED",
        hold["id"],
    )

    second = (await place(gql, card["id"], "30"))["hold"]
    voided = await void(gql, second["id"])
    assert voided["__typename"] == "HoldPayload"
    assert voided["hold"]["status"] == "VOIDED"
    assert voided["account"]["availableBalance"] == {"amount": "34.50"}
    assert (await void(gql, second["id"]))["__typename"] == "HoldNotPending"
    assert (await admin.data(AUDIT))["ledgerAudit"] == {
        "ok": True,
        "mismatchedAccountIds": [],
        "faultyHoldIds": [],
    }


async def test_a_capture_without_destination_is_a_withdrawal_of_the_whole_hold(gql):
    card = await gql.open_account(initial_deposit="50")
    hold = (await place(gql, card["id"], "20"))["hold"]
    captured = await capture(gql, hold["id"], idempotencyKey="cap-1")
    assert captured["movement"]["transaction"]["kind"] == "WITHDRAWAL"
    assert captured["movement"]["transaction"]["destinationAccountId"] is None
    assert captured["hold"]["capturedAmount"] == {"amount": "20.00"}
    retried = await capture(gql, hold["id"], idempotencyKey="cap-1")
    assert retried["movement"]["transaction"]["id"] == captured["movement"]["transaction"]["id"]
    other = await capture(gql, hold["id"], "1", idempotencyKey="cap-1")
    assert other["__typename"] == "IdempotencyConflict"
    assert await balances(gql, card["id"]) == ("30.00", "30.00")


async def test_place_hold_refusals_change_nothing(gql, bob):
    card = await gql.open_account(initial_deposit="10")
    theirs = await bob.open_account(name="Bob's", initial_deposit="10")
    dollars = await gql.open_account(name="USD", currency="USD")
    cases = [
        ({"accountId": card["id"], "amount": eur("0")}, "ValidationError"),
        ({"accountId": card["id"], "amount": eur("1"), "expiresInSeconds": 0}, "ValidationError"),
        (
            {"accountId": card["id"], "amount": eur("1"), "expiresInSeconds": 10**8},
            "ValidationError",
        ),
        ({"accountId": theirs["id"], "amount": eur("1")}, "AccountNotFound"),
        (
            {"accountId": card["id"], "amount": {"amount": "1", "currency": "USD"}},
            "CurrencyMismatch",
        ),
        (
            {"accountId": card["id"], "amount": eur("1"), "destinationAccountId": dollars["id"]},
            "CurrencyMismatch",
        ),
        ({"accountId": card["id"], "amount": eur("10.01")}, "InsufficientFunds"),
    ]
    for payload, expected in cases:
        result = (await gql.data(PLACE, input=payload))["placeHold"]
        assert result["__typename"] == expected, (payload, result)
    assert (await gql.data(PLACE, input=cases[1][0]))["placeHold"]["field"] == "expiresInSeconds"
    first = await place(gql, card["id"], "1", idempotencyKey="h-1")
    assert (await place(gql, card["id"], "1", idempotencyKey="h-1"))["hold"]["id"] == first["hold"][
        "id"
    ]
    assert (await place(gql, card["id"], "2", idempotencyKey="h-1"))[
        "__typename"
    ] == "IdempotencyConflict"
    empty = await gql.open_account(name="Empty")
    await gql.data(CLOSE, input={"accountId": empty["id"]})
    assert (await place(gql, empty["id"], "1"))["__typename"] == "AccountClosed"
    assert await balances(gql, card["id"]) == ("10.00", "9.00")


async def test_capture_and_void_refusals(gql, bob):
    card = await gql.open_account(initial_deposit="10")
    target = await gql.open_account(name="Target")
    hold = (await place(gql, card["id"], "5", destinationAccountId=target["id"]))["hold"]
    assert (await capture(gql, hold["id"], "5.01"))["__typename"] == "CaptureExceedsHold"
    over = await capture(gql, hold["id"], "5.01")
    assert (over["pending"], over["requested"]) == (eur("5.00"), eur("5.01"))
    wrong = await gql.data(
        CAPTURE, input={"holdId": hold["id"], "amount": {"amount": "1", "currency": "USD"}}
    )
    assert wrong["captureHold"]["__typename"] == "CurrencyMismatch"
    assert (await capture(gql, hold["id"], "0"))["__typename"] == "ValidationError"
    assert (await capture(bob, hold["id"]))["__typename"] == "HoldNotFound"
    assert (await void(bob, hold["id"]))["__typename"] == "HoldNotFound"
    missing = to_global_id("Hold", 999_999)
    assert (await capture(gql, missing))["__typename"] == "HoldNotFound"
    assert (await void(gql, missing))["__typename"] == "HoldNotFound"
    bad = await gql.request(VOID, input={"holdId": "nonsense"})
    assert bad["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    # The destination closed meanwhile: the capture is refused and the hold stays pending.
    await gql.data(CLOSE, input={"accountId": target["id"]})
    closed = await capture(gql, hold["id"])
    assert (closed["__typename"], closed["accountId"]) == ("AccountClosed", target["id"])
    assert await balances(gql, card["id"]) == ("10.00", "5.00")


async def test_a_capture_into_an_account_now_hidden_is_account_not_found(gql, bob):
    card = await gql.open_account(initial_deposit="10")
    theirs = await bob.open_account(name="Bob's")
    hold = (await place(gql, card["id"], "5", destinationAccountId=theirs["id"]))["hold"]
    await bob.data(CLOSE, input={"accountId": theirs["id"]})
    refused = await capture(gql, hold["id"])
    assert (refused["__typename"], refused["accountId"]) == ("AccountNotFound", theirs["id"])


async def test_an_account_with_pending_holds_cannot_close(gql):
    card = await gql.open_account(initial_deposit="5")
    hold = (await place(gql, card["id"], "5"))["hold"]
    refused = (await gql.data(CLOSE_WITH_HOLDS, input={"accountId": card["id"]}))["closeAccount"]
    assert (refused["__typename"], refused["accountId"]) == ("AccountHasPendingHolds", card["id"])
    await capture(gql, hold["id"])
    closed = (await gql.data(CLOSE_WITH_HOLDS, input={"accountId": card["id"]}))["closeAccount"]
    assert closed["__typename"] == "AccountPayload"


async def test_an_expired_hold_is_expired_to_every_read_and_frees_its_money(gql):
    card = await gql.open_account(initial_deposit="10")
    hold = (await place(gql, card["id"], "10", expiresInSeconds=1))["hold"]
    assert hold["status"] == "PENDING"
    await asyncio.sleep(1.1)
    assert await balances(gql, card["id"]) == ("10.00", "10.00")
    shown = (await gql.data(NODE, id=hold["id"]))["node"]
    assert shown == {"__typename": "Hold", "id": hold["id"], "status": "EXPIRED"}
    late = await capture(gql, hold["id"])
    assert (late["__typename"], late["status"]) == ("HoldNotPending", "EXPIRED")
    expired = (await gql.data(HOLDS, id=card["id"], status="EXPIRED"))["account"]["holds"]
    assert [e["node"]["id"] for e in expired["edges"]] == [hold["id"]]
    pending = (await gql.data(HOLDS, id=card["id"], status="PENDING"))["account"]["holds"]
    assert pending["edges"] == []
    assert (await gql.withdraw(card["id"], "10"))["__typename"] == "MoneyMovement"


async def test_holds_list_newest_first_in_pages_and_are_invisible_to_others(gql, bob, admin):
    card = await gql.open_account(initial_deposit="10")
    ids = [(await place(gql, card["id"], "1"))["hold"]["id"] for _ in range(3)]
    first = (await gql.data(HOLDS, id=card["id"], first=2))["account"]["holds"]
    assert [e["node"]["id"] for e in first["edges"]] == ids[::-1][:2]
    assert first["pageInfo"]["hasNextPage"] is True
    rest = await gql.data(HOLDS, id=card["id"], first=2, after=first["pageInfo"]["endCursor"])
    assert [e["node"]["id"] for e in rest["account"]["holds"]["edges"]] == [ids[0]]
    assert (await bob.data(NODE, id=ids[0]))["node"] is None
    assert (await admin.data(NODE, id=ids[0]))["node"]["status"] == "PENDING"


async def test_two_racing_captures_commit_at_most_one(gql, admin):
    card = await gql.open_account(initial_deposit="100")
    for _ in range(3):
        hold = (await place(gql, card["id"], "30"))["hold"]
        results = await asyncio.gather(*(capture(gql, hold["id"]) for _ in range(4)))
        kinds = sorted(result["__typename"] for result in results)
        assert kinds == ["HoldCapture", "HoldNotPending", "HoldNotPending", "HoldNotPending"]
    balance, available = await balances(gql, card["id"])
    assert balance == available
    assert (await admin.data(AUDIT))["ledgerAudit"]["ok"] is True


async def test_racing_holds_and_withdrawals_never_spend_reserved_money(gql, admin):
    card = await gql.open_account(initial_deposit="100")
    attempts = [place(gql, card["id"], "30") for _ in range(4)] + [
        gql.withdraw(card["id"], "30") for _ in range(4)
    ]
    results = await asyncio.gather(*attempts)
    succeeded = [r for r in results if r["__typename"] in ("HoldPayload", "MoneyMovement")]
    assert len(succeeded) == 3  # 3 x 30 of 100, whatever the order
    balance, available = await balances(gql, card["id"])
    assert available == "10.00"
    assert float(balance) >= 10
    assert (await admin.data(AUDIT))["ledgerAudit"]["ok"] is True


async def test_the_audit_catches_a_hold_captured_twice_or_holding_more_than_the_balance(
    app, gql, admin
):
    card = await gql.open_account(initial_deposit="50")
    hold = (await place(gql, card["id"], "10"))["hold"]
    captured = await capture(gql, hold["id"])
    assert (await admin.data(AUDIT))["ledgerAudit"]["ok"] is True
    transaction_key = from_global_id(captured["movement"]["transaction"]["id"])[1]
    async with app.state.engine.begin() as connection:
        # A second capture of the same hold, balanced on its own, slipped past the service.
        await connection.execute(
            text(
                "INSERT INTO transactions (kind, amount, currency, source_account_id, actor_id,"
                " created_at, hold_id) SELECT kind, amount, currency, source_account_id,"
                " actor_id, created_at, hold_id FROM transactions WHERE id = :id"
            ),
            {"id": transaction_key},
        )
    audit = (await admin.data(AUDIT))["ledgerAudit"]
    assert audit["ok"] is False
    assert audit["faultyHoldIds"] == [hold["id"]]

    other = await gql.open_account(name="Other", initial_deposit="5")
    second = (await place(gql, other["id"], "5"))["hold"]
    async with app.state.engine.begin() as connection:
        await connection.execute(
            text("UPDATE holds SET amount = 600 WHERE id = :id"),
            {"id": from_global_id(second["id"])[1]},
        )
    audit = (await admin.data(AUDIT))["ledgerAudit"]
    assert other["id"] in audit["mismatchedAccountIds"]
    assert card["id"] not in audit["mismatchedAccountIds"]
