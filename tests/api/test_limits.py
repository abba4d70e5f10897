"""Requests too large in any way get a clear error, and the server goes on answering."""

import json

import pytest

from tests.api.graphql import ACCOUNTS

VIEWER = "{ viewer { email } }"


async def still_answers(gql):
    assert (await gql.data(VIEWER))["viewer"]["email"] == "alice@example.com"


async def test_a_body_over_the_limit_is_413(gql):
    padding = "x" * (1024 * 1024)
    body = json.dumps({"query": VIEWER, "variables": {"padding": padding}})
    response = await gql.http.post(
        "/graphql", content=body, headers=gql.headers | {"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert "larger than" in response.json()["errors"][0]["message"]
    await still_answers(gql)


async def test_a_streamed_body_over_the_limit_is_413_without_a_length(gql):
    async def chunks():
        yield b'{"query": "{ viewer { email } }", "variables": {"p": "'
        for _ in range(40):
            yield b"y" * 32768
        yield b'"}}'

    response = await gql.http.post(
        "/graphql", content=chunks(), headers=gql.headers | {"content-type": "application/json"}
    )
    assert response.status_code == 413
    await still_answers(gql)


def nested(depth: int) -> str:
    selection = "id"
    for _ in range(depth):
        selection = f"owner {{ accounts {{ edges {{ node {{ {selection} }} }} }} }}"
    return f"{{ accounts {{ edges {{ node {{ {selection} }} }} }} }}"


async def test_a_query_too_deep_is_refused(gql):
    assert "errors" not in await gql.request(nested(1))
    body = await gql.request(nested(6))
    assert body["data"] is None
    assert "exceeds maximum operation depth" in body["errors"][0]["message"]
    await still_answers(gql)


async def test_too_many_aliases_are_refused(gql):
    aliases = " ".join(f"a{i}: viewer {{ email }}" for i in range(16))
    body = await gql.request(f"{{ {aliases} }}")
    assert body["data"] is None and "aliases" in body["errors"][0]["message"]
    fine = " ".join(f"a{i}: viewer {{ email }}" for i in range(15))
    assert "errors" not in await gql.request(f"{{ {fine} }}")
    await still_answers(gql)


async def test_too_many_tokens_are_refused(gql):
    body = await gql.request("{ viewer { " + "email " * 2500 + "} }")
    assert body["data"] is None
    assert "token" in body["errors"][0]["message"].lower()
    await still_answers(gql)


async def test_a_page_over_100_is_refused(gql):
    body = await gql.request(ACCOUNTS, first=101)
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    await still_answers(gql)


async def test_batched_requests_are_not_accepted(gql):
    batch = [{"query": VIEWER}, {"query": VIEWER}]
    response = await gql.http.post("/graphql", json=batch, headers=gql.headers)
    assert response.status_code == 400
    await still_answers(gql)


@pytest.mark.parametrize(
    ("content", "content_type"),
    [("{not json", "application/json"), ('{"variables": {}}', "application/json")],
)
async def test_malformed_requests_get_a_client_error(gql, content, content_type):
    response = await gql.http.post(
        "/graphql", content=content, headers=gql.headers | {"content-type": content_type}
    )
    assert 400 <= response.status_code < 500
    await still_answers(gql)
