"""GraphQL over HTTP as its specification asks: media types, status codes, GET only for reads."""

import pytest

GRAPHQL_RESPONSE = "application/graphql-response+json"
POST_HEADERS = {"content-type": "application/json"}


async def post(client, body, accept=None, **headers):
    if accept is not None:
        headers["accept"] = accept
    return await client.post("/graphql", json=body, headers=headers)


async def test_the_graphql_response_media_type_is_answered_in_kind(client):
    response = await post(client, {"query": "{ __typename }"}, GRAPHQL_RESPONSE)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    # A response may carry extensions beside its data; bankql reports the operation's cost.
    assert response.json()["data"] == {"__typename": "Query"}
    assert set(response.json()) == {"data", "extensions"}


@pytest.mark.parametrize("accept", [None, "application/json", "*/*", "text/html;q=0.5, */*"])
async def test_plain_json_is_the_default(client, accept):
    response = await post(client, {"query": "{ __typename }"}, accept)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")


async def test_the_preferred_media_type_wins_by_quality(client):
    accept = f"{GRAPHQL_RESPONSE};q=0.5, application/json"
    response = await post(client, {"query": "{ __typename }"}, accept)
    assert response.headers["content-type"].startswith("application/json")


@pytest.mark.parametrize(
    "body",
    [
        {"query": "{ __typename"},  # does not parse
        {"query": "{ nothing }"},  # does not validate
        {
            "query": "query($n: Int) { accounts(first: $n) { totalCount } }",
            "variables": {"n": "ten"},
        },  # variables do not coerce
    ],
)
async def test_a_request_that_never_ran_is_400_without_data_in_the_graphql_media_type(client, body):
    response = await post(client, body, GRAPHQL_RESPONSE)
    assert response.status_code == 400
    assert "data" not in response.json() and response.json()["errors"]
    legacy = await post(client, body, "application/json")
    assert legacy.status_code == 200 and legacy.json()["errors"]


async def test_an_error_during_execution_keeps_200_and_the_data_entry(client):
    response = await post(client, {"query": "{ accounts { totalCount } }"}, GRAPHQL_RESPONSE)
    assert response.status_code == 200
    body = response.json()
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_get_runs_queries(client):
    response = await client.get(
        "/graphql", params={"query": "{ __typename }"}, headers={"accept": "application/json"}
    )
    assert response.json()["data"] == {"__typename": "Query"}


async def test_get_never_runs_a_mutation(gql):
    query = 'mutation { openAccount(input: {name: "x", currency: "EUR"}) { __typename } }'
    response = await gql.http.get(
        "/graphql", params={"query": query}, headers=gql.headers | {"accept": "application/json"}
    )
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert (await gql.data("{ accounts { totalCount } }"))["accounts"]["totalCount"] == 0


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        ("{ __typename }", "text/plain", 415),
        ("query={ __typename }", "application/x-www-form-urlencoded", 415),
        ("{not json", "application/json", 400),
        ('{"variables": {}}', "application/json", 400),
        ('{"query": 42}', "application/json", 400),
    ],
)
async def test_malformed_requests_get_the_specifications_status_and_a_json_body(
    client, content, content_type, status
):
    response = await client.post(
        "/graphql", content=content, headers={"content-type": content_type}
    )
    assert response.status_code == status
    assert response.json()["errors"][0]["message"]


async def test_a_client_accepting_no_json_gets_406(client):
    response = await post(client, {"query": "{ __typename }"}, "text/csv")
    assert response.status_code == 406


async def test_other_methods_get_405(client):
    assert (await client.put("/graphql", content=b"{}")).status_code == 405
