"""The cost limit: an operation that would cost too much is refused before anything runs.

Costs are worked out by hand from the model in gql/schema/cost.py: each field that reads the
database counts 1 each time it may run, a page of `first` items counts `first` more and
multiplies what is below it.
"""

import time

import httpx
import pytest
from starlette.testclient import TestClient

from gql.server.app import create_app
from gql.server.settings import DEFAULT_MAX_QUERY_COST
from tests.api.graphql import GraphQLClient
from tests.api.test_query_cost import counted
from tests.conftest import settings_for
from tests.servers import Server, environment

# 118 bytes: 101 (accounts, 100 items) + 100 (owner) + 100 x 101 (owner's accounts)
# + 100 x 100 (their owner) + 100 x 100 x 2 (that owner's accounts, 1 item).
NESTED_PAGES = (
    "{accounts(first:100){edges{node{owner{accounts(first:100){edges{node{owner"
    "{accounts(first:1){edges{node{id}}}}}}}}}}}}"
)
NESTED_PAGES_COST = 40_301
TOO_COSTLY = {"code": "QUERY_TOO_COSTLY", "cost": NESTED_PAGES_COST, "maxCost": 5000}
GRAPHQL_RESPONSE = "application/graphql-response+json"


def refusal(body):
    """The extensions of the one error of an operation that never ran."""
    assert body["data"] is None and "extensions" not in body, body
    [error] = body["errors"]
    assert "path" not in error
    return error["extensions"]


def test_the_default_limit_is_the_one_these_tests_count_against():
    assert DEFAULT_MAX_QUERY_COST == 5000


async def test_nested_pages_of_accounts_are_refused_before_any_statement_runs(gql, app):
    await gql.open_account(initial_deposit="10")
    with counted(app.state.engine) as statements:
        body = await gql.request(NESTED_PAGES)
        strict = await gql.http.post(
            "/graphql",
            json={"query": NESTED_PAGES},
            headers=gql.headers | {"accept": GRAPHQL_RESPONSE},
        )
    assert refusal(body) == TOO_COSTLY
    assert "more than the limit of 5000" in body["errors"][0]["message"]
    assert statements == []
    assert strict.status_code == 400 and "data" not in strict.json()
    assert strict.json()["errors"][0]["extensions"] == TOO_COSTLY


# 101 (accounts) + 100 x 24 (entries) + 100 x 23 (transaction) = 4801, and 100 (more)
# + 99 (owner) = 199: exactly the limit. The viewer's 1 more is one too many.
AT_THE_LIMIT = """{
  accounts(first: 100) { edges { node {
    entries(first: 23) { edges { node { transaction { id } } } } } } }
  more: accounts(first: 99) { edges { node { owner { id } } } }
  %s
}"""


async def test_an_operation_at_the_limit_runs_and_one_more_is_refused(gql):
    await gql.open_account(initial_deposit="10")
    body = await gql.request(AT_THE_LIMIT % "")
    assert "errors" not in body, body
    assert body["extensions"]["cost"] == {"requestedQueryCost": 5000, "maxQueryCost": 5000}
    [edge] = body["data"]["accounts"]["edges"]
    assert edge["node"]["entries"]["edges"][0]["node"]["transaction"]["id"]
    over = await gql.request(AT_THE_LIMIT % "viewer { id }")
    assert refusal(over) == {"code": "QUERY_TOO_COSTLY", "cost": 5001, "maxCost": 5000}


README_EXAMPLE = """{
  accounts(first: 10) {
    totalCount
    edges { node { id name balance { amount currency }
      entries(first: 5) {
        edges { node {
          amount { amount } balanceAfter { amount } transaction { kind description } } }
      }
    } }
  }
}"""


@pytest.mark.parametrize(
    ("query", "cost"),
    [
        ("{ __typename }", 0),
        # viewer, and the viewer's accounts with a page of 20; totalCount comes with them.
        ("{ viewer { email accounts { totalCount } } }", 1 + 21),
        # accounts (10 items), 10 x entries (5 items), 10 x 5 x transaction.
        (README_EXAMPLE, 11 + 10 * 6 + 50),
        # accounts (the default page of 20), 20 x owner, 20 x their accounts (3 items),
        # 20 x 3 x entries (20 items).
        (
            "{ accounts { edges { node { owner { accounts(first: 3) { edges { node {"
            " entries { edges { node { id } } } } } } } } } } }",
            21 + 20 + 20 * 4 + 60 * 21,
        ),
        # node, then every fragment counts: owner, entries (7 items), 7 x transaction, and
        # accounts (4 items).
        (
            "query($id: ID!) { node(id: $id) {"
            " ... on Account { owner { email } entries(first: 7) { edges { node { transaction"
            " { id } } } } } ... on User { accounts(first: 4) { totalCount } } } }",
            1 + 1 + 8 + 7 + 5,
        ),
    ],
)
async def test_the_reported_cost_is_the_one_worked_out_by_hand(gql, query, cost):
    account = await gql.open_account(initial_deposit="10")
    variables = {"id": account["id"]} if "$id" in query else {}
    body = await gql.request(query, **variables)
    assert "errors" not in body, body
    assert body["extensions"] == {"cost": {"requestedQueryCost": cost, "maxQueryCost": 5000}}


async def test_a_mutation_reports_its_cost_too(gql):
    account = await gql.open_account(initial_deposit="10")
    query = """mutation($input: DepositInput!) { deposit(input: $input) {
      ... on MoneyMovement { sourceAccount { owner { id } } destinationAccount { owner { id } } }
    } }"""
    body = await gql.request(
        query, input={"accountId": account["id"], "amount": {"amount": "1", "currency": "EUR"}}
    )
    assert body["data"]["deposit"]["destinationAccount"]["owner"]["id"]
    # deposit, and each account's owner.
    assert body["extensions"]["cost"]["requestedQueryCost"] == 3


async def test_fragments_cannot_hide_cost(gql, app):
    query = """
    query { accounts(first: 100) { ...Page } }
    fragment Page on AccountConnection { edges { node { ...Owner } } }
    fragment Owner on Account {
      owner { accounts(first: 100) { edges { node { ... on Account {
        owner { accounts(first: 1) { ...Ids } } } } } } }
    }
    fragment Ids on AccountConnection { edges { node { id } } }
    """
    with counted(app.state.engine) as statements:
        body = await gql.request(query)
    assert refusal(body) == TOO_COSTLY and statements == []


async def test_variables_cannot_hide_cost(gql, app):
    query = """query($outer: Int = 100, $inner: Int) {
      accounts(first: $outer) { edges { node { owner { accounts(first: $inner) {
        edges { node { owner { accounts(first: 1) { edges { node { id } } } } } } } } } } } }"""
    with counted(app.state.engine) as statements:
        body = await gql.request(query, inner=100)
    assert refusal(body) == TOO_COSTLY and statements == []
    # The same document with small pages runs: the values sent decide.
    assert (await gql.request(query, outer=2, inner=2))["extensions"]["cost"][
        "requestedQueryCost"
    ] == 3 + 2 + 2 * 3 + 4 + 4 * 2


async def test_aliases_cannot_hide_cost(gql, app):
    # 101 + 100 x 16 + 100 x 15 = 3201 on its own, under the limit; twice is over it.
    page = "accounts(first: 100) { edges { node { entries(first: 15) { edges { node {"
    page += " transaction { id } } } } } } }"
    once = await gql.request(f"{{ {page} }}")
    assert once["extensions"]["cost"]["requestedQueryCost"] == 3201
    with counted(app.state.engine) as statements:
        twice = await gql.request(f"{{ a: {page} b: {page} }}")
    assert refusal(twice) == {"code": "QUERY_TOO_COSTLY", "cost": 6402, "maxCost": 5000}
    assert statements == []


async def test_a_bad_variable_still_gets_its_own_error(gql):
    body = await gql.request("query($n: Int) { accounts(first: $n) { totalCount } }", n="ten")
    assert body["data"] is None
    assert "ten" in body["errors"][0]["message"] and "extensions" not in body["errors"][0]


async def test_the_limit_is_a_setting(database_url):
    app = create_app(settings_for(database_url, max_query_cost=120))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bankql.test") as http:
        gql = await GraphQLClient(http).signed_up("alice@example.com")
        body = await gql.request(README_EXAMPLE)
    await app.state.engine.dispose()
    assert refusal(body) == {"code": "QUERY_TOO_COSTLY", "cost": 121, "maxCost": 120}


# accountEntries, and the line's transaction twice over.
COSTLY_SUBSCRIPTION = """subscription { accountEntries(accountId: "QWNjb3VudDo5ODc2NTQ") {
  id a: transaction { id } b: transaction { id } } }"""


def test_a_subscription_over_the_limit_is_refused_as_its_operations_error(database_url):
    app = create_app(settings_for(database_url, max_query_cost=2))
    register = 'mutation { register(input: {email: "ws@example.com", password: "long enough pw"})'
    with TestClient(app) as http:
        token = http.post(
            "/graphql", json={"query": register + " { ... on AuthPayload { token } } }"}
        ).json()["data"]["register"]["token"]
        with http.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as socket:
            socket.send_json(
                {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
            )
            assert socket.receive_json() == {"type": "connection_ack"}
            socket.send_json(
                {"id": "1", "type": "subscribe", "payload": {"query": COSTLY_SUBSCRIPTION}}
            )
            refused = socket.receive_json()
            # One transaction fewer is within the limit: it runs, and finds no such account.
            cheaper = COSTLY_SUBSCRIPTION.replace("b: transaction { id }", "")
            socket.send_json({"id": "2", "type": "subscribe", "payload": {"query": cheaper}})
            ran = socket.receive_json()
    assert (refused["type"], refused["id"]) == ("error", "1")
    assert refused["payload"][0]["extensions"] == {
        "code": "QUERY_TOO_COSTLY",
        "cost": 3,
        "maxCost": 2,
    }
    assert ran["id"] == "2", ran
    assert ran["payload"]["errors"][0]["extensions"]["code"] == "NOT_FOUND"


@pytest.fixture
def server(database_url):
    running = Server(environment(database_url)).start()
    yield running
    running.stop()


async def test_a_real_server_refuses_nested_pages_at_once_and_goes_on_answering(server):
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        gql = await GraphQLClient(http).signed_up("alice@example.com")
        for number in range(100):
            await gql.open_account(name=f"A{number}")
        started = time.monotonic()
        body = await gql.request(NESTED_PAGES)
        took = time.monotonic() - started
        listed = await gql.request("{ accounts(first: 100) { totalCount } }")
    assert refusal(body) == TOO_COSTLY
    # Generous for a busy machine: the refusal runs no resolver; the query ran for minutes.
    assert took < 10
    assert listed["data"]["accounts"]["totalCount"] == 100


def fan_out(levels):
    """Fragments that each spread the next one twice: 2**levels viewers in a few tokens."""
    spreads = " ".join(
        f"fragment F{n} on Query {{ ...F{n + 1} ...F{n + 1} }}" for n in range(levels)
    )
    return f"{{ ...F0 }} {spreads} fragment F{levels} on Query {{ viewer {{ email }} }}"


async def test_fragments_that_fan_out_are_refused_before_validation_walks_them(gql):
    # 18 levels would keep the depth and alias limits busy for seconds, 60 for ever.
    for levels in (18, 60):
        body = await gql.request(fan_out(levels))
        [error] = body["errors"]
        assert "fragments spread into more than 10000 selections" in error["message"]
    # 10 levels (1024 viewers, about 4000 selections) validate, and cost what they read.
    body = await gql.request(fan_out(10))
    assert "errors" not in body and body["extensions"]["cost"]["requestedQueryCost"] == 1024


async def test_fragments_that_spread_each_other_get_the_usual_error(gql):
    body = await gql.request("{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }")
    assert "Cannot spread fragment 'A' within itself" in body["errors"][0]["message"]


async def test_a_field_selected_over_and_over_at_one_place_is_refused_before_validation(gql):
    """Validation compares every pair of same-named fields at one place: 400 `viewer { id }`
    (4 KB, inside every other limit) took a second of processor time, answering no one."""
    body = await gql.request("{" + " viewer { id }" * 400 + " }")
    [error] = body["errors"]
    assert "would compare more than 2000 pairs" in error["message"]
    # The same fields in 150 fragments spread at one place are as many pairs.
    fragments = " ".join(f"fragment F{n} on Query {{ viewer {{ id }} }}" for n in range(150))
    spreads = " ".join(f"...F{n}" for n in range(150))
    body = await gql.request(f"{{ {spreads} }} {fragments}")
    assert "would compare more than 2000 pairs" in body["errors"][0]["message"]
    # So are 220 fragments of distinct fields spread at one place: 24,090 pairs of them.
    fragments = " ".join(f"fragment F{n} on Query {{ x{n} }}" for n in range(220))
    spreads = " ".join(f"...F{n}" for n in range(220))
    body = await gql.request(f"{{ {spreads} }} {fragments}")
    assert "would compare more than 2000 pairs" in body["errors"][0]["message"]
    # Forty times is within the bound, and a fragment spread many times counts once.
    body = await gql.request("{" + " viewer { id }" * 40 + " }")
    assert "errors" not in body
