import pytest

from gql.schema.ids import to_global_id
from tests.api.graphql import CLOSE, OPEN, RENAME, STATEMENT


async def open_result(gql, **fields):
    payload = {"name": "Main", "currency": "EUR"} | fields
    return (await gql.data(OPEN, input=payload))["openAccount"]


async def test_opening_an_account_returns_it_owned_by_the_local_user(gql):
    account = await gql.open_account(name="  Everyday  ", currency="eur")
    assert account["name"] == "Everyday"
    assert account["currency"] == "EUR"
    assert account["status"] == "OPEN"
    assert account["balance"] == {"amount": "0.00", "currency": "EUR"}
    assert account["owner"]["role"] == "CUSTOMER"
    assert account["createdAt"].endswith("+00:00")


async def test_an_initial_deposit_is_a_deposit_on_the_statement(gql):
    account = await gql.open_account(currency="JPY", initial_deposit="1200")
    assert account["balance"] == {"amount": "1200", "currency": "JPY"}
    statement = (await gql.data(STATEMENT, id=account["id"]))["account"]["entries"]["edges"]
    assert [
        (e["node"]["amount"]["amount"], e["node"]["transaction"]["kind"]) for e in statement
    ] == [("1200", "DEPOSIT")]


@pytest.mark.parametrize("initial", [None, "0", "0.00"])
async def test_opening_at_zero_records_no_transaction(gql, initial):
    account = await gql.open_account(initial_deposit=initial)
    statement = (await gql.data(STATEMENT, id=account["id"]))["account"]["entries"]["edges"]
    assert statement == []


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": "   "}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "a\u0000b"}, "name"),
        ({"name": "tab\there"}, "name"),
        ({"currency": "ZZZ"}, "currency"),
        ({"currency": "EURO"}, "currency"),
        ({"currency": ""}, "currency"),
        ({"initialDeposit": "-1"}, "initialDeposit"),
        ({"initialDeposit": "1.005"}, "initialDeposit"),
        ({"initialDeposit": "1E+2"}, "initialDeposit"),
        ({"initialDeposit": "NaN"}, "initialDeposit"),
        ({"initialDeposit": "99999999999999999999"}, "initialDeposit"),
        ({"currency": "JPY", "initialDeposit": "1.5"}, "initialDeposit"),
    ],
)
async def test_bad_input_is_a_validation_error_naming_the_field_and_opens_nothing(
    gql, fields, field
):
    result = await open_result(gql, **fields)
    assert result["__typename"] == "ValidationError"
    assert result["field"] == field
    assert result["message"]
    assert (await gql.data("{ accounts { totalCount } }"))["accounts"]["totalCount"] == 0


async def test_a_hundred_code_point_name_is_accepted(gql):
    assert (await gql.open_account(name="é" * 100))["name"] == "é" * 100


async def test_a_float_for_a_decimal_is_a_top_level_error_not_a_rounding(gql):
    body = await gql.request(OPEN, input={"name": "x", "currency": "EUR", "initialDeposit": 10.5})
    assert body["errors"] and "string" in body["errors"][0]["message"]
    assert (await gql.data("{ accounts { totalCount } }"))["accounts"]["totalCount"] == 0


async def test_renaming_an_account(gql):
    account = await gql.open_account()
    result = await gql.data(RENAME, input={"accountId": account["id"], "name": " Savings "})
    assert result["renameAccount"]["account"]["name"] == "Savings"


async def test_renaming_with_a_bad_name_or_id(gql):
    account = await gql.open_account()
    bad_name = await gql.data(RENAME, input={"accountId": account["id"], "name": ""})
    assert bad_name["renameAccount"] | {"message": None} == {
        "__typename": "ValidationError",
        "field": "name",
        "message": None,
    }
    bad_id = (await gql.data(RENAME, input={"accountId": "nope", "name": "x"}))["renameAccount"]
    assert (bad_id["__typename"], bad_id["field"]) == ("ValidationError", "accountId")


async def test_closing_needs_a_zero_balance_then_the_account_takes_nothing(gql):
    account = await gql.open_account(initial_deposit="5")
    refused = (await gql.data(CLOSE, input={"accountId": account["id"]}))["closeAccount"]
    assert refused["__typename"] == "AccountNotEmpty"
    assert refused["balance"] == {"amount": "5.00", "currency": "EUR"}
    assert refused["accountId"] == account["id"]
    await gql.withdraw(account["id"], "5")
    closed = (await gql.data(CLOSE, input={"accountId": account["id"]}))["closeAccount"]
    assert closed["account"]["status"] == "CLOSED"
    again = (await gql.data(CLOSE, input={"accountId": account["id"]}))["closeAccount"]
    assert again["__typename"] == "AccountClosed"
    renamed = await gql.data(RENAME, input={"accountId": account["id"], "name": "x"})
    assert renamed["renameAccount"]["__typename"] == "AccountClosed"
    deposit = await gql.deposit(account["id"], "1")
    assert (deposit["__typename"], deposit["accountId"]) == ("AccountClosed", account["id"])


async def test_an_account_that_does_not_exist_is_not_found(gql):
    missing = to_global_id("Account", 987654)
    result = (await gql.data(CLOSE, input={"accountId": missing}))["closeAccount"]
    assert result == {
        "__typename": "AccountNotFound",
        "message": "No such account.",
        "accountId": missing,
    }


@pytest.mark.parametrize("bad_id", ["nope", "", to_global_id("Transaction", 1), "QWNjb3VudDowMQ"])
async def test_closing_with_an_id_that_is_no_account_id_is_a_bad_user_input_error(gql, bad_id):
    body = await gql.request(CLOSE, input={"accountId": bad_id})
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "accountId" in error["message"]
