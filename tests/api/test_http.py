import logging

from domain.services import AccountService
from tests.api.graphql import OPEN


async def test_health_answers_ok(client):
    response = await client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_graphiql_is_served_to_browsers(client):
    response = await client.get("/graphql", headers={"accept": "text/html"})
    assert response.status_code == 200
    assert "graphiql" in response.text.lower()


async def test_an_unexpected_fault_is_logged_and_masked(gql, monkeypatch, caplog):
    async def broken(*_args, **_kwargs):
        raise RuntimeError("connection string with password=hunter2")

    monkeypatch.setattr(AccountService, "open_account", broken)
    with caplog.at_level(logging.ERROR, logger="bankql.errors"):
        body = await gql.request(OPEN, input={"name": "x", "currency": "EUR"})
    assert body["data"] is None
    assert [error["message"] for error in body["errors"]] == ["Internal server error"]
    assert "hunter2" not in str(body)
    [record] = caplog.records
    assert record.exc_info is not None and "hunter2" in str(record.exc_info[1])


async def test_a_malformed_document_is_a_top_level_error_not_a_fault(gql, caplog):
    with caplog.at_level(logging.ERROR, logger="bankql.errors"):
        body = await gql.http.post("/graphql", json={"query": "{ accounts { nope } }"})
    assert body.json()["data"] is None
    assert "nope" in body.json()["errors"][0]["message"]
    assert caplog.records == []


async def test_a_wrongly_typed_variable_is_a_top_level_error(gql):
    body = await gql.request("query($n: Int) { accounts(first: $n) { totalCount } }", n="ten")
    assert body["errors"] and body.get("data") is None


async def test_a_variable_a_scalar_refuses_is_the_clients_error_not_a_fault(gql, caplog):
    query = """mutation($a: Decimal!) { deposit(input: {accountId: "QWNjb3VudDox",
      amount: {amount: $a, currency: "EUR"}}) { __typename } }"""
    with caplog.at_level(logging.ERROR, logger="bankql.errors"):
        body = await gql.request(query, a=12.5)
    [error] = body["errors"]
    assert "sent as strings" in error["message"]
    assert error.get("extensions", {}).get("code") != "INTERNAL_SERVER_ERROR"
    assert caplog.records == []


async def test_the_schema_parses_and_validates_a_document_once_unless_told_not_to(monkeypatch):
    import graphql

    from gql.schema import documents, validation
    from gql.schema.schema import build_schema

    parses: list[str] = []
    validations: list[object] = []
    real_parse, real_validate = graphql.parse, validation._validate

    def counting_parse(source, **options):
        parses.append(source)
        return real_parse(source, **options)

    def counting_validate(*args, **kwargs):
        validations.append(args[1])
        return real_validate(*args, **kwargs)

    monkeypatch.setattr(documents.graphql, "parse", counting_parse)
    monkeypatch.setattr(validation, "_validate", counting_validate)
    query = "{ __typename }"
    remembering = build_schema()
    for _ in range(3):
        assert (await remembering.execute(query)).data == {"__typename": "Query"}
    # What the server reads of a document before running it shares the same parse.
    assert remembering.documents.operation_type(query, None) is graphql.OperationType.QUERY
    assert (len(parses), len(validations)) == (1, 1)

    forgetting = build_schema(caches=False)
    for _ in range(3):
        assert (await forgetting.execute(query)).data == {"__typename": "Query"}
    assert len(validations) == 1 + 3
