"""GET /accounts/{id}/statement.csv: read back with Python's csv module, on both databases."""

import csv
import io
from datetime import datetime, timedelta
from decimal import Decimal

import httpx

from gql.schema.ids import to_global_id
from gql.server.app import create_app
from gql.server.statement_csv import HEADER, as_text
from tests.api.graphql import STATEMENT, GraphQLClient
from tests.conftest import settings_for

HOSTILE = [
    '=HYPERLINK("http://evil.example","click")',
    "+1+2",
    "-3",
    "@SUM(A1:A9)",
    'a, "quoted", note',
    "plain words",
]
TRANSACTION = "query($id: ID!) { transaction(id: $id) { kind description } }"


def period() -> dict[str, str]:
    now = datetime.now().astimezone()
    return {
        "from": (now - timedelta(days=1)).isoformat(),
        "to": (now + timedelta(minutes=1)).isoformat(),
    }


async def download(
    client: GraphQLClient, account_id: str, params: dict[str, str]
) -> httpx.Response:
    return await client.http.get(
        f"/accounts/{account_id}/statement.csv", params=params, headers=client.headers
    )


def test_a_cell_that_starts_a_formula_is_shown_as_text():
    for text in ("=1+1", "+1", "-1", "@A1", "\tx", "\rx"):
        assert as_text(text) == "'" + text
    for text in ("1", "plain", "", None):
        assert as_text(text) == (text or "")


async def test_the_csv_has_every_line_with_its_balance_and_no_formula(gql):
    account = await gql.open_account(name="Main", initial_deposit="100")
    other = await gql.open_account(name="Other")
    for index, note in enumerate(HOSTILE):
        await gql.deposit(account["id"], f"{index + 1}.25", description=note)
        await gql.transfer(account["id"], other["id"], "0.5", description=note)
    response = await download(gql, account["id"], period())
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.text.count("\r\n") == len(response.text.splitlines())  # CRLF records
    rows = list(csv.reader(io.StringIO(response.text, newline="")))
    assert tuple(rows[0]) == HEADER
    opening, *lines, closing = rows[1:]
    assert (opening[2], opening[5], opening[6]) == ("OPENING BALANCE", "0.00", "EUR")
    edges = (await gql.data(STATEMENT, id=account["id"], first=100))["account"]["entries"]["edges"]
    entries = [edge["node"] for edge in reversed(edges)]
    assert len(lines) == len(entries) == 1 + 2 * len(HOSTILE)
    for row, entry in zip(lines, entries, strict=True):
        date, transaction_id, kind, description, amount, balance_after, currency = row
        assert datetime.fromisoformat(date) == datetime.fromisoformat(entry["createdAt"])
        assert transaction_id == entry["transaction"]["id"]
        assert kind == entry["transaction"]["kind"]
        assert amount == entry["amount"]["amount"]
        assert balance_after == entry["balanceAfter"]["amount"]
        assert currency == "EUR"
        Decimal(amount)  # a number a spreadsheet can sum, sign and all
        shown = (await gql.data(TRANSACTION, id=transaction_id))["transaction"]["description"]
        assert description == as_text(shown)
        assert not description.startswith(("=", "+", "-", "@", "\t", "\r"))
    assert closing[2] == "CLOSING BALANCE"
    assert Decimal(closing[5]) == sum(Decimal(row[4]) for row in lines)
    assert closing[5] == await gql.balance(account["id"])


async def test_others_accounts_and_missing_ones_are_404_with_no_detail(gql, bob):
    account = await gql.open_account(initial_deposit="1")
    for client, key in ((bob, account["id"]), (gql, to_global_id("Account", 999_999))):
        response = await download(client, key, period())
        assert (response.status_code, response.content) == (404, b"")
    assert (await download(gql, "not-an-id", period())).status_code == 404


async def test_without_a_token_or_with_a_bad_period_nothing_is_sent(gql, anonymous):
    account = await gql.open_account(initial_deposit="1")
    assert (await download(anonymous, account["id"], period())).status_code == 401
    now = datetime.now().astimezone()
    backwards = {"from": now.isoformat(), "to": (now - timedelta(seconds=1)).isoformat()}
    too_long = {"from": (now - timedelta(days=400)).isoformat(), "to": now.isoformat()}
    for params in (backwards, too_long, {"from": "yesterday", "to": now.isoformat()}, {}):
        assert (await download(gql, account["id"], params)).status_code == 400


async def test_the_export_shares_the_graphql_rate_limit(database_url):
    app = create_app(settings_for(database_url, rate_limit_burst=3, rate_limit_per_second=0.01))
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://bankql.test") as http:
            client = await GraphQLClient(http).signed_up("rate@example.com")
            account = await client.open_account(initial_deposit="1")  # 1 of 3
            assert (await download(client, account["id"], period())).status_code == 200
            assert (await download(client, account["id"], period())).status_code == 200
            refused = await download(client, account["id"], period())
            assert refused.status_code == 429
            assert "Retry-After" in refused.headers
    finally:
        await app.state.engine.dispose()
