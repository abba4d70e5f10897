"""BANKQL_MAX_MOVEMENT_AMOUNT and BANKQL_MAX_ACCOUNT_BALANCE: over either, nothing moves."""

import pytest

from gql.server.app import create_app
from tests.api.graphql import OPEN, STATEMENT
from tests.conftest import settings_for


@pytest.fixture
async def app(database_url: str):
    # 100 and 150 whole units of any currency: 100.00 EUR, or 100 JPY.
    application = create_app(
        settings_for(database_url, max_movement_amount=100, max_account_balance=150)
    )
    yield application
    await application.state.engine.dispose()


def refused_on(result, field: str) -> str:
    assert (result["__typename"], result["field"]) == ("ValidationError", field), result
    message: str = result["message"]
    return message


async def lines(client, account_id: str) -> int:
    return len((await client.data(STATEMENT, id=account_id))["account"]["entries"]["edges"])


async def test_a_movement_over_the_limit_is_refused_on_its_amount(gql, bob):
    a = await gql.open_account(name="A", initial_deposit="100")
    b = await bob.open_account(name="B", initial_deposit="10")
    for result in (
        await gql.deposit(a["id"], "100.01"),
        await gql.withdraw(a["id"], "100.01"),
        await gql.transfer(a["id"], b["id"], "100.01"),
    ):
        assert refused_on(result, "amount.amount") == "A single movement is at most 100.00 EUR."
    yen = await gql.open_account(name="Yen", currency="JPY", initial_deposit="100")
    assert "100 JPY" in refused_on(await gql.deposit(yen["id"], "101", "JPY"), "amount.amount")
    assert (await gql.balance(a["id"]), await bob.balance(b["id"])) == ("100.00", "10.00")
    assert (await lines(gql, a["id"]), await lines(bob, b["id"])) == (1, 1)


async def test_an_initial_deposit_over_the_limit_opens_nothing(gql):
    result = (
        await gql.data(OPEN, input={"name": "Big", "currency": "EUR", "initialDeposit": "100.01"})
    )["openAccount"]
    assert refused_on(result, "initialDeposit") == "A single movement is at most 100.00 EUR."
    assert (await gql.data("{ accounts { totalCount } }"))["accounts"]["totalCount"] == 0


async def test_no_account_is_credited_beyond_the_largest_balance(gql, bob):
    a = await gql.open_account(name="A", initial_deposit="100")
    b = await bob.open_account(name="B", initial_deposit="100")
    message = refused_on(await gql.deposit(a["id"], "50.01"), "amount.amount")
    assert message == "An account holds at most 150.00 EUR; this would take it above that."
    # Someone else's account at its limit looks like no account at all to the sender; its
    # owner, who may read it, is told why.
    assert (await bob.transfer(b["id"], a["id"], "50.01"))["__typename"] == "AccountNotFound"
    own = await gql.open_account(name="Own", initial_deposit="60")
    refused_on(await gql.transfer(own["id"], a["id"], "50.01"), "amount.amount")
    assert (await gql.balance(a["id"]), await bob.balance(b["id"])) == ("100.00", "100.00")
    assert (await lines(gql, a["id"]), await lines(bob, b["id"])) == (1, 1)
    # Up to the limit itself is fine, and another account has its own room.
    assert (await bob.transfer(b["id"], a["id"], "50"))["__typename"] == "MoneyMovement"
    assert (await bob.deposit(b["id"], "100"))["__typename"] == "MoneyMovement"
    assert (await gql.balance(a["id"]), await bob.balance(b["id"])) == ("150.00", "150.00")
