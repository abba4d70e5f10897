"""Account.balanceAt and Account.statement over HTTP, on both databases."""

import random
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from tests.api.graphql import STATEMENT

BALANCE_AT = """query($id: ID!, $at: DateTime!) { account(id: $id) { balanceAt(at: $at) {
  amount currency } } }"""
PERIOD = """query($id: ID!, $from: DateTime!, $to: DateTime!, $first: Int, $after: String) {
  account(id: $id) { statement(from: $from, to: $to) {
    account { id } from to
    openingBalance { amount currency } closingBalance { amount currency }
    moneyIn { amount currency } moneyOut { amount currency }
    entries(first: $first, after: $after) {
      edges { cursor node { id amount { amount } balanceAfter { amount } createdAt } }
      pageInfo { hasNextPage hasPreviousPage endCursor } } } } }"""


def at(moment: datetime) -> str:
    return moment.isoformat()


async def all_lines(client, account_id: str) -> list[dict]:
    """Every line of the account, oldest first."""
    edges = (await client.data(STATEMENT, id=account_id, first=100))["account"]["entries"]["edges"]
    return [edge["node"] for edge in reversed(edges)]


async def history(gql) -> tuple[dict, list[dict]]:
    account = await gql.open_account(name="Main", initial_deposit="100")
    other = await gql.open_account(name="Other")
    for amount in ("12.30", "0.01", "7"):
        await gql.deposit(account["id"], amount)
        await gql.withdraw(account["id"], "3.10")
        await gql.transfer(account["id"], other["id"], "1.05")
    return account, await all_lines(gql, account["id"])


def moment(line: dict) -> datetime:
    return datetime.fromisoformat(line["createdAt"])


async def test_balance_at_is_the_balance_after_the_last_line_before_the_moment(gql):
    account, lines = await history(gql)
    first = moment(lines[0])
    before = (await gql.data(BALANCE_AT, id=account["id"], at=at(first)))["account"]
    assert before["balanceAt"] == {"amount": "0.00", "currency": "EUR"}  # half-open: not yet
    for line in lines:
        just_after = moment(line) + timedelta(microseconds=1)
        found = await gql.data(BALANCE_AT, id=account["id"], at=at(just_after))
        later = [other for other in lines if moment(other) < just_after]
        assert found["account"]["balanceAt"]["amount"] == later[-1]["balanceAfter"]["amount"]
    now = await gql.data(BALANCE_AT, id=account["id"], at=at(datetime.now().astimezone()))
    assert now["account"]["balanceAt"]["amount"] == await gql.balance(account["id"])


async def test_statements_of_random_periods_add_up_to_their_lines(gql):
    account, lines = await history(gql)
    moments = sorted({moment(line) for line in lines})
    edges = [moments[0] - timedelta(seconds=1), *moments, moments[-1] + timedelta(seconds=1)]
    chooser = random.Random(13)
    for _ in range(12):
        start, end = sorted(chooser.sample(edges, 2))
        body = await gql.data(PERIOD, id=account["id"], **{"from": at(start), "to": at(end)})
        statement = body["account"]["statement"]
        inside = [line for line in lines if start <= moment(line) < end]
        amounts = [Decimal(line["amount"]["amount"]) for line in inside]
        opening = Decimal(statement["openingBalance"]["amount"])
        closing = Decimal(statement["closingBalance"]["amount"])
        money_in = Decimal(statement["moneyIn"]["amount"])
        money_out = Decimal(statement["moneyOut"]["amount"])
        assert money_in == sum(a for a in amounts if a > 0)
        assert money_out == -sum(a for a in amounts if a < 0)
        assert closing == opening + money_in - money_out
        before = [line for line in lines if moment(line) < start]
        expected_opening = Decimal(before[-1]["balanceAfter"]["amount"]) if before else 0
        assert opening == expected_opening
        shown = [edge["node"]["id"] for edge in statement["entries"]["edges"]]
        assert shown == [line["id"] for line in reversed(inside)]


async def test_a_statements_lines_come_in_keyset_pages(gql):
    account, lines = await history(gql)
    period = {"from": at(moment(lines[0])), "to": at(moment(lines[-1]) + timedelta(seconds=1))}
    seen, after = [], None
    while True:
        body = await gql.data(PERIOD, id=account["id"], first=4, after=after, **period)
        page = body["account"]["statement"]["entries"]
        seen += [edge["node"]["id"] for edge in page["edges"]]
        assert page["pageInfo"]["hasPreviousPage"] is (after is not None)
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == [line["id"] for line in reversed(lines)]


async def test_a_backward_or_overlong_period_is_bad_user_input(gql):
    account = await gql.open_account(initial_deposit="1")
    now = datetime.now().astimezone()
    for start, end in ((now, now - timedelta(seconds=1)), (now - timedelta(days=367), now)):
        body = await gql.request(PERIOD, id=account["id"], **{"from": at(start), "to": at(end)})
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", body
    year = await gql.data(
        PERIOD, id=account["id"], **{"from": at(now - timedelta(days=366)), "to": at(now)}
    )
    assert year["account"]["statement"]["closingBalance"]["amount"] == "1.00"


async def test_another_customers_account_shows_no_statement(gql, bob):
    account = await gql.open_account(initial_deposit="1")
    now = datetime.now().astimezone()
    body = await bob.data(
        PERIOD, id=account["id"], **{"from": at(now - timedelta(days=1)), "to": at(now)}
    )
    assert body["account"] is None


async def test_a_moment_means_the_same_in_any_utc_offset(gql):
    account, lines = await history(gql)
    middle = moment(lines[len(lines) // 2])
    plus_two = timezone(timedelta(hours=2))
    for shown in (middle, middle.astimezone(plus_two)):
        found = await gql.data(BALANCE_AT, id=account["id"], at=at(shown))
        expected = lines[len(lines) // 2 - 1]["balanceAfter"]["amount"]
        assert found["account"]["balanceAt"]["amount"] == expected
