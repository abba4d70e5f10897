"""Random bytes, random JSON and random deep structures thrown at /graphql, over HTTP and over
WebSocket: every answer is a client error or a result, never a 500, a dropped connection or
a traceback in the log, and the server still serves a customer afterwards."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote_from_bytes

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from gql.server.app import create_app
from tests.api.graphql import (
    ACCOUNT,
    ACCOUNTS,
    DEPOSIT,
    LOGIN,
    OPEN,
    REGISTER,
    STATEMENT,
    TRANSFER,
)
from tests.conftest import settings_for

FUZZ = settings(
    max_examples=150,
    deadline=None,
    database=None,  # nothing written to the checkout; a failure prints how to reproduce it
    # One app serves every example on purpose: what one example leaves, the next meets.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
DOCUMENTS = [REGISTER, LOGIN, OPEN, DEPOSIT, TRANSFER, ACCOUNT, ACCOUNTS, STATEMENT]
SUBSCRIPTION = "subscription($id: ID!) { accountEntries(accountId: $id) { id } }"
PROTOCOL = ["graphql-transport-ws"]
# What a connection may be closed with for a message the protocol forbids: 4400 for an
# invalid one, 4409 for an operation id in use, 4429 for a second connection_init.
CLIENT_CLOSE_CODES = {4400, 4409, 4429}

# Text of every kind, halves of surrogate pairs included: JSON may escape them.
texts = st.text(st.characters(codec=None), max_size=40)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=24,
)
queries = st.sampled_from([*DOCUMENTS, SUBSCRIPTION]) | texts
# Shaped like a request, with any value in any field.
requests = st.fixed_dictionaries(
    {},
    optional={
        "query": queries | json_values,
        "variables": st.fixed_dictionaries({}, optional={"input": json_values, "id": texts})
        | json_values,
        "operationName": texts | json_values,
        "extensions": json_values,
    },
)


@st.composite
def deep_json(draw: st.DrawFn, most: int = 100_000) -> str:
    """A structure nested up to 100,000 deep, alone or inside a request's fields."""
    # Half of them deeper than a thousand, where recursive parsers give up.
    levels = draw(st.integers(1, 1_000) | st.integers(1_000, most))
    opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}"), ('[{"a":', "}]")]))
    inside = opener * levels + draw(st.sampled_from(["1", '""', "null", "[]"])) + closer * levels
    place = draw(st.sampled_from(["{}", '{"query": "{ __typename }", "variables": {"a": %s}}']))
    return inside if place == "{}" else place % inside


def encoded(value: object, ascii_only: bool) -> bytes:
    """JSON text as bytes; unescaped halves of surrogate pairs make it invalid UTF-8."""
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


bodies = (
    st.binary(max_size=300)
    | st.builds(encoded, json_values, st.booleans())
    | st.builds(encoded, requests, st.booleans())
    | deep_json().map(str.encode)
)


def faults(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


@pytest.fixture
def http(database_url) -> Iterator[TestClient]:
    # Thousands of malformed documents, each charged as one at the token limit, would put
    # the client far over its rate: what is fuzzed here is how each one is answered.
    rates = {
        "rate_limit_burst": 1_000_000,
        "rate_limit_per_second": 100_000,
        "anonymous_rate_limit_burst": 1_000_000,
        "anonymous_rate_limit_per_second": 100_000,
    }
    with TestClient(create_app(settings_for(database_url, **rates))) as client:
        yield client


@pytest.fixture
def token(http) -> str:
    variables = {"input": {"email": "fuzz@example.com", "password": "correct horse battery"}}
    body = http.post("/graphql", json={"query": REGISTER, "variables": variables}).json()
    token: str = body["data"]["register"]["token"]
    return token


def assert_a_client_error_or_a_result(response) -> None:
    assert response.status_code < 500, response.text
    body = response.json()  # always JSON, whatever the status
    assert "errors" in body or "data" in body, body


def assert_still_serving(http: TestClient, token: str) -> None:
    """After all that, a customer can still open an account and read it."""
    headers = {"Authorization": f"Bearer {token}"}
    variables = {"input": {"name": "After", "currency": "EUR", "initialDeposit": "1.5"}}
    opened = http.post("/graphql", json={"query": OPEN, "variables": variables}, headers=headers)
    account = opened.json()["data"]["openAccount"]["account"]
    read = http.post("/graphql", json={"query": ACCOUNT, "variables": {"id": account["id"]}})
    assert read.status_code == 200
    shown = http.post(
        "/graphql", json={"query": ACCOUNT, "variables": {"id": account["id"]}}, headers=headers
    )
    assert shown.json()["data"]["account"]["balance"]["amount"] == "1.50"


def fuzz(caplog, check: Callable[..., None], *strategies: st.SearchStrategy[Any]) -> None:
    """Run check on many drawn examples, each one leaving no fault in the log."""
    caplog.set_level(logging.INFO)

    @FUZZ
    @given(st.tuples(*strategies))
    def example(drawn: tuple[Any, ...]) -> None:
        caplog.clear()
        check(*drawn)
        assert faults(caplog) == []

    example()


def test_random_posts_get_a_client_error_or_a_result(http, token, caplog):
    accepts = st.sampled_from(["application/json", "application/graphql-response+json", "*/*"])

    def post(body: bytes, signed_in: bool, accept: str) -> None:
        headers = {"content-type": "application/json", "accept": accept}
        if signed_in:
            headers["authorization"] = f"Bearer {token}"
        assert_a_client_error_or_a_result(http.post("/graphql", content=body, headers=headers))

    fuzz(caplog, post, bodies, st.booleans(), accepts)
    assert_still_serving(http, token)


def test_random_query_strings_get_a_client_error_or_a_result(http, token, caplog):
    def get(query: bytes, variables: bytes, operation_name: bytes | None) -> None:
        url = f"/graphql?query={quote_from_bytes(query)}&variables={quote_from_bytes(variables)}"
        if operation_name is not None:
            url += f"&operationName={quote_from_bytes(operation_name)}"
        headers = {"accept": "application/json", "authorization": f"Bearer {token}"}
        assert_a_client_error_or_a_result(http.get(url, headers=headers))

    as_bytes = st.binary(max_size=200) | queries.map(lambda q: q.encode("utf-8", "surrogatepass"))
    # Nested no deeper than a URL can carry.
    short_bodies = bodies.filter(lambda body: len(body) < 2_000)
    variables = as_bytes | short_bodies | deep_json(2_000).map(str.encode)
    fuzz(caplog, get, as_bytes, variables, st.none() | as_bytes)
    assert_still_serving(http, token)


messages = (
    st.builds(encoded, json_values, st.just(True)).map(bytes.decode)
    | st.builds(
        encoded,
        st.fixed_dictionaries(
            {"type": st.sampled_from(["subscribe", "complete", "ping", "pong", "connection_init"])},
            optional={"id": texts | json_values, "payload": requests | json_values},
        ),
        st.just(True),
    ).map(bytes.decode)
    | deep_json()
    | texts
    | st.binary(max_size=100)
)


def test_random_websocket_messages_close_with_a_client_code_or_get_answers(http, token, caplog):
    def send(message: str | bytes) -> None:
        with http.websocket_connect("/graphql", subprotocols=PROTOCOL) as socket:
            socket.send_json(
                {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
            )
            assert socket.receive_json() == {"type": "connection_ack"}
            if isinstance(message, bytes):
                socket.send_bytes(message)
            else:
                socket.send_text(message)
            socket.send_json({"type": "ping"})
            try:
                # Whatever the message started answers first; the pong says the server is
                # still reading this connection.
                while socket.receive_json() != {"type": "pong"}:
                    pass
            except WebSocketDisconnect as closed:
                assert closed.code in CLIENT_CLOSE_CODES, (closed.code, closed.reason)

    fuzz(caplog, send, messages)
    assert_still_serving(http, token)
