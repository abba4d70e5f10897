"""With introspection off, error messages suggest no name the schema holds; in development,
where the schema is public anyway, they still do."""

import httpx
import pytest

from gql.server.app import create_app
from tests.conftest import settings_for

DEPOSIT = "mutation($input: DepositInput!) { deposit(input: $input) { __typename } }"
MISTYPED_KEY = {
    "accountId": "QWNjb3VudDox",
    "amount": {"amount": "1", "currency": "EUR"},
    "idempotencyKy": "k",
}
# Each a near miss of a real name: a field, an argument, a type, an enum value as a literal
# and as a variable, an input field as a literal and as a variable, a fragment's type.
NEAR_MISSES = [
    ("{ ledgerAudi { ok } }", {}),
    ("{ accounts(frist: 1) { totalCount } }", {}),
    ("query($s: AccountStatu) { accounts(status: $s) { totalCount } }", {}),
    ("{ accounts(status: OPN) { totalCount } }", {}),
    ("query($s: AccountStatus) { accounts(status: $s) { totalCount } }", {"s": "OPN"}),
    (
        'mutation { deposit(input: {accountId: "QWNjb3VudDox", amount: {amount: "1", '
        'currency: "EUR"}, idempotencyKy: "k"}) { __typename } }',
        {},
    ),
    (DEPOSIT, {"input": MISTYPED_KEY}),
    ("{ accounts { edges { node { ... on Acount { id } } } } }", {}),
]


@pytest.fixture
async def production(database_url):
    """The app as production runs it: introspection off (SQLite allowed for the test)."""
    app = create_app(settings_for(database_url, env="production", allow_sqlite=True))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bankql.test") as http:
        yield http
    await app.state.engine.dispose()


async def errors_for(http, query, variables):
    response = await http.post("/graphql", json={"query": query, "variables": variables})
    assert response.status_code == 200
    body = response.json()
    assert body["data"] is None and body["errors"], body
    return [error["message"] for error in body["errors"]]


async def test_production_does_not_name_the_field_that_was_meant(production):
    [message] = await errors_for(production, "{ ledgerAudi { ok } }", {})
    assert message == "Cannot query field 'ledgerAudi' on type 'Query'."


@pytest.mark.parametrize(("query", "variables"), NEAR_MISSES)
async def test_production_suggests_nothing(production, query, variables):
    for message in await errors_for(production, query, variables):
        assert "Did you mean" not in message, message


@pytest.mark.parametrize(("query", "variables"), NEAR_MISSES)
async def test_development_still_suggests(client, query, variables):
    messages = await errors_for(client, query, variables)
    assert any("Did you mean" in message for message in messages), messages
