"""Whatever a client sends is answered as its own mistake: HTTP 400 with a JSON body, a typed
error, or close code 4400 on a WebSocket; never a 500, and never a traceback in the log."""

from __future__ import annotations

import json
import logging

import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from gql.server.app import create_app
from tests.api.graphql import LOGIN, REGISTER
from tests.conftest import settings_for

VIEWER = "{ viewer { email } }"
GRAPHQL_RESPONSE = "application/graphql-response+json"


def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


def with_variables(raw_variables: str) -> bytes:
    return f'{{"query": "{{ __typename }}", "variables": {{"a": {raw_variables}}}}}'.encode()


def faults(caplog) -> list[logging.LogRecord]:
    """What the log says went wrong on the server's side."""
    return [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'"hello"', id="a string"),
        pytest.param(b"5", id="a number"),
        pytest.param(b"null", id="null"),
        pytest.param(b"true", id="true"),
        pytest.param(b'{"query": "{ __typename }", "x": "\xff\xfe"}', id="not UTF-8"),
        pytest.param(with_variables(deep(1_000)), id="nested 1,000 deep"),
        pytest.param(with_variables(deep(100_000)), id="nested 100,000 deep"),
        pytest.param(with_variables("1" * 5_000), id="an integer of 5,000 digits"),
    ],
)
async def test_a_body_that_is_not_a_readable_json_object_is_400(client, caplog, body):
    with caplog.at_level(logging.INFO):
        response = await client.post(
            "/graphql", content=body, headers={"content-type": "application/json"}
        )
    assert response.status_code == 400, response.text
    [error] = response.json()["errors"]
    assert error["message"].startswith("The request")
    assert faults(caplog) == []
    assert (await client.post("/graphql", json={"query": "{ __typename }"})).status_code == 200


@pytest.mark.parametrize("variables", [deep(2_000), "1" * 5_000, "[1", "5"])
async def test_variables_in_a_query_string_that_cannot_be_read_are_400(client, caplog, variables):
    with caplog.at_level(logging.INFO):
        response = await client.get(
            "/graphql", params={"query": "{ __typename }", "variables": variables}
        )
    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["message"]
    assert faults(caplog) == []


DEPOSIT_A_NUMBER = """mutation { deposit(input: {accountId: "QWNjb3VudDox",
  amount: {amount: 12.5, currency: "EUR"}}) { __typename } }"""


@pytest.mark.parametrize(
    ("query", "named"),
    [
        pytest.param(DEPOSIT_A_NUMBER, "Decimal", id="a Decimal written as a number"),
        pytest.param(
            "{ accounts(first: " + "1" * 5_000 + ") { totalCount } }",
            "Int",
            id="an Int of 5,000 digits",
        ),
    ],
)
async def test_a_literal_a_scalar_refuses_is_the_clients_error(gql, caplog, query, named):
    with caplog.at_level(logging.INFO):
        response = await gql.http.post(
            "/graphql", json={"query": query}, headers=gql.headers | {"accept": GRAPHQL_RESPONSE}
        )
        legacy = await gql.request(query)
    assert response.status_code == 400, response.text
    [error] = response.json()["errors"]
    assert f"Expected value of type '{named}'" in error["message"] and "extensions" not in error
    assert legacy["errors"][0]["message"] == error["message"]
    assert faults(caplog) == []


@pytest.mark.parametrize("document", [REGISTER, LOGIN])
async def test_a_password_utf8_cannot_encode_is_a_validation_error(anonymous, caplog, document):
    # Valid JSON: an escaped half of a surrogate pair, as a buggy client could send.
    variables = {"input": {"email": "alice@example.com", "password": "\ud800" * 12}}
    body = json.dumps({"query": document, "variables": variables}, ensure_ascii=True)
    with caplog.at_level(logging.INFO):
        response = await anonymous.http.post(
            "/graphql", content=body, headers={"content-type": "application/json"}
        )
    [result] = response.json()["data"].values()
    assert (result["__typename"], result["field"]) == ("ValidationError", "password")
    assert faults(caplog) == []


@pytest.fixture
def http(database_url):
    """The app in Starlette's test client, which speaks WebSocket too."""
    with TestClient(create_app(settings_for(database_url))) as client:
        yield client


def close_code(http, raw: str) -> int | None:
    """The code the server closes a connection with after this one message; None when it
    ignores the message and still answers a ping."""
    with http.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as socket:
        socket.send_json({"type": "connection_init"})
        assert socket.receive_json() == {"type": "connection_ack"}
        socket.send_text(raw)
        socket.send_json({"type": "ping"})
        try:
            socket.receive_json()
        except WebSocketDisconnect as closed:
            return closed.code
    return None


SUBSCRIBE = {"type": "subscribe", "id": "1", "payload": {"query": "{ __typename }"}}


@pytest.mark.parametrize(
    "message",
    [
        [1, 2],
        "hello",
        5,
        None,
        {"type": 5},
        {"type": "unknown"},
        SUBSCRIBE | {"id": [1]},
        SUBSCRIBE | {"payload": [1]},
        SUBSCRIBE | {"payload": {"query": 5}},
        SUBSCRIBE | {"payload": {"query": "{ __typename }", "variables": [1]}},
        SUBSCRIBE | {"payload": {"query": "{ __typename }", "operationName": {}}},
        {"type": "complete", "id": None},
    ],
    ids=repr,
)
def test_a_websocket_message_the_protocol_does_not_know_closes_with_4400(http, caplog, message):
    with caplog.at_level(logging.INFO):
        assert close_code(http, json.dumps(message)) == 4400
    assert faults(caplog) == []
    assert http.post("/graphql", json={"query": "{ __typename }"}).status_code == 200


@pytest.mark.parametrize(
    "raw",
    [
        deep(100_000),
        '{"type": "ping", "payload": {"a": ' + deep(1_000) + "}}",
        '{"type": "ping", "payload": {"a": ' + "1" * 5_000 + "}}",
    ],
    ids=["nested 100,000 deep", "nested 1,000 deep", "an integer of 5,000 digits"],
)
def test_a_websocket_message_that_is_not_readable_json_closes_with_4400(http, caplog, raw):
    with caplog.at_level(logging.INFO):
        assert close_code(http, raw) == 4400
    assert faults(caplog) == []


def test_an_operation_without_a_query_over_websocket_is_the_clients_error(http, caplog):
    with (
        caplog.at_level(logging.INFO),
        http.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as socket,
    ):
        socket.send_json({"type": "connection_init"})
        assert socket.receive_json() == {"type": "connection_ack"}
        socket.send_json(SUBSCRIBE | {"payload": {"query": ""}})
        answer = socket.receive_json()
    [error] = answer["payload"] if answer["type"] == "error" else answer["payload"]["errors"]
    assert error["message"] != "Internal server error"
    assert faults(caplog) == []


def closed_after(socket, message: dict) -> WebSocketDisconnect:
    """How the server closed the connection after this one message; fails if it answered."""
    socket.send_json({"type": "connection_init"})
    assert socket.receive_json() == {"type": "connection_ack"}
    socket.send_json(message)
    with pytest.raises(WebSocketDisconnect) as closed:
        answer = socket.receive_json()
        pytest.fail(f"answered {answer} instead of closing")
    return closed.value


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("0", "Syntax Error: Unexpected Int '0'."),
        ("{ __typename", "Syntax Error: Expected Name, found <EOF>."),
        (
            "{ " + "a " * 3_000 + "}",
            "Syntax Error: Document contains more than 2000 tokens. Parsing aborted.",
        ),
    ],
    ids=["a number", "unclosed", "too many tokens"],
)
def test_a_document_that_does_not_parse_over_websocket_closes_with_4400(
    http, caplog, query, reason
):
    """As the same document over HTTP is 400: the client hears why, and the log stays clean
    (not `complete` alone, with the syntax error logged as a fault)."""
    with (
        caplog.at_level(logging.INFO),
        http.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as socket,
    ):
        closed = closed_after(socket, SUBSCRIBE | {"payload": {"query": query}})
    assert (closed.code, closed.reason) == (4400, reason)
    assert faults(caplog) == []
    over_http = http.post("/graphql", json={"query": query}, headers={"accept": GRAPHQL_RESPONSE})
    assert over_http.status_code == 400
    assert over_http.json()["errors"][0]["message"] == reason


@pytest.mark.parametrize("operation_name", ["Missing", ""])
def test_a_ping_that_arrives_as_an_operation_closes_the_connection_goes_unanswered(
    http, caplog, operation_name
):
    """An operation closes the connection in a task of its own while the connection is
    still reading: a ping that arrives then goes unanswered, and the connection ends with
    the operation's 4400, not with an exception for a pong sent after the close."""
    payload = {"query": "{ __typename }", "operationName": operation_name}
    with (
        caplog.at_level(logging.INFO),
        http.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as socket,
    ):
        closed = closed_after(socket, SUBSCRIBE | {"payload": payload})
        # The connection was waiting for a message when the operation closed it: this one.
        socket.send_json({"type": "ping"})
    assert (closed.code, closed.reason) == (4400, f'Unknown operation named "{operation_name}".')
    assert faults(caplog) == []
    assert http.post("/graphql", json={"query": "{ __typename }"}).status_code == 200


def test_every_parse_of_a_clients_document_stops_at_the_token_limit(http, monkeypatch):
    """Reading what a document does before running it (a mutation by GET, a subscription
    over WebSocket) parses it too: unbounded, a document of a megabyte of tokens held the
    process for seconds before the limit was ever checked."""
    from graphql.language import parser

    limits: list[int | None] = []
    real_init = parser.Parser.__init__

    def recording_init(self, source, *args, **options):
        limits.append(options.get("max_tokens"))
        real_init(self, source, *args, **options)

    monkeypatch.setattr(parser.Parser, "__init__", recording_init)
    query = "subscription { " + "a " * 5_000 + "}"
    with http.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as socket:
        closed = closed_after(socket, SUBSCRIBE | {"payload": {"query": query}})
    assert closed.code == 4400 and "more than 2000 tokens" in closed.reason
    over_get = http.get("/graphql", params={"query": query.replace("subscription", "mutation")})
    assert "more than 2000 tokens" in over_get.json()["errors"][0]["message"]
    assert limits and set(limits) == {2000}


def test_several_operations_without_a_name_are_refused_before_anything_runs(http, caplog):
    """The specification asks for `operationName` then. Run as Strawberry would (its first
    operation), a subscription put before a query ran as a query: outside the subscription
    limits, holding a database connection of its own for as long as it streamed."""
    document = (
        "subscription S($id: ID!) { accountEntries(accountId: $id) { id } } query Q { __typename }"
    )
    payload = {"query": document, "variables": {"id": "QWNjb3VudDox"}}
    with (
        caplog.at_level(logging.INFO),
        http.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as socket,
    ):
        socket.send_json({"type": "connection_init"})
        assert socket.receive_json() == {"type": "connection_ack"}
        socket.send_json(SUBSCRIBE | {"payload": payload})
        answer = socket.receive_json()
        assert answer["type"] == "error", answer
        assert [error["message"] for error in answer["payload"]] == [
            "Must provide operation name if query contains multiple operations."
        ]
        # Named, the query runs as the query it is.
        socket.send_json(SUBSCRIBE | {"id": "2", "payload": payload | {"operationName": "Q"}})
        assert socket.receive_json()["payload"]["data"] == {"__typename": "Query"}
    over_http = http.post(
        "/graphql",
        json={"query": "query A { __typename } query B { __typename }"},
        headers={"accept": GRAPHQL_RESPONSE},
    )
    assert over_http.status_code == 400
    assert over_http.json()["errors"][0]["message"].startswith("Must provide operation name")
    assert faults(caplog) == []


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"operationName": "B" * 200}, 'Unknown operation named "BBBB'),
        ({"operationName": "\ud800"}, 'Unknown operation named "\\ud800".'),
        ({"query": "x" * 300}, "Syntax Error: Unexpected Name 'xxxx"),
    ],
    ids=["a long operation name", "a lone surrogate", "a long name in a syntax error"],
)
def test_a_close_reason_quoting_the_client_fits_its_frame(http, caplog, payload, reason):
    """A close frame carries 123 bytes of reason, in UTF-8: a longer or unencodable one made
    the close itself fail, the client saw the connection drop (1006) and a traceback was
    logged."""
    with (
        caplog.at_level(logging.INFO),
        http.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as socket,
    ):
        closed = closed_after(socket, SUBSCRIBE | {"payload": SUBSCRIBE["payload"] | payload})
    assert closed.code == 4400
    assert closed.reason.startswith(reason)
    assert len(closed.reason.encode()) <= 123
    assert faults(caplog) == []


async def test_an_unknown_operation_name_a_client_cannot_encode_is_400_not_500(client, caplog):
    body = b'{"query": "query A { __typename }", "operationName": "\\ud800"}'
    with caplog.at_level(logging.INFO):
        response = await client.post(
            "/graphql", content=body, headers={"content-type": "application/json"}
        )
    assert response.status_code == 400
    assert response.json() == {"errors": [{"message": 'Unknown operation named "\\ud800".'}]}
    assert faults(caplog) == []
