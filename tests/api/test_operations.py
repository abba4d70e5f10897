"""Health and readiness, request ids, and one JSON log line per request that leaks no secret."""

import asyncio
import json
import logging

import httpx
from starlette.testclient import TestClient

from domain.services import AccountService, EntryWatch
from gql.server.app import create_app
from gql.server.logs import JsonFormatter, quiet_libraries
from tests.api.graphql import LOGIN, OPEN
from tests.conftest import settings_for
from tests.databases import migrated


async def test_ready_when_the_database_answers_at_the_newest_schema(client):
    response = await client.get("/readyz")
    assert (response.status_code, response.json()) == (200, {"status": "ready"})


async def test_a_ready_answer_logs_nothing_at_info(client, caplog):
    quiet_libraries()
    with caplog.at_level(logging.INFO):
        assert (await client.get("/readyz")).status_code == 200
    assert [r.getMessage() for r in caplog.records if r.name.startswith("alembic")] == []


async def test_not_ready_before_migrations(tmp_path):
    app = create_app(settings_for(f"sqlite+aiosqlite:///{tmp_path / 'new.db'}"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        response = await c.get("/readyz")
        assert (await c.get("/healthz")).status_code == 200
    await app.state.engine.dispose()
    assert response.status_code == 503
    assert "run migrations" in response.json()["reason"]


async def test_not_ready_when_the_database_does_not_answer():
    url = "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1"
    app = create_app(settings_for(url))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        response = await c.get("/readyz")
    await app.state.engine.dispose()
    assert response.status_code == 503
    assert response.json()["reason"].startswith("the database does not answer")


async def test_a_request_id_is_echoed_or_made_up(client):
    sent = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert sent.headers["x-request-id"] == "abc-123"
    made = await client.get("/healthz")
    assert len(made.headers["x-request-id"]) == 32
    hostile = await client.get("/healthz", headers={"X-Request-ID": "a b/c" + "x" * 200})
    assert hostile.headers["x-request-id"] != "a b/c" + "x" * 200


def request_lines(caplog):
    return [r for r in caplog.records if r.name == "bankql.requests"]


async def test_each_request_is_one_json_line_with_operation_and_outcome(gql, caplog):
    with caplog.at_level(logging.INFO):
        await gql.http.post(
            "/graphql",
            json={"query": "query Me { viewer { email } }", "operationName": "Me"},
            headers=gql.headers | {"X-Request-ID": "req-1"},
        )
    [record] = request_lines(caplog)
    line = json.loads(JsonFormatter().format(record))
    assert line["request_id"] == "req-1"
    assert line["message"] == "request"
    assert (line["operation_name"], line["operation_type"], line["outcome"]) == (
        "Me",
        "query",
        "ok",
    )
    assert line["status"] == 200 and line["duration_ms"] >= 0
    assert (line["method"], line["path"]) == ("POST", "/graphql")


async def test_logs_hold_no_token_password_or_variables(anonymous, gql, caplog):
    quiet_libraries()  # as `bankql serve` does at start
    with caplog.at_level(logging.DEBUG):
        await anonymous.request(
            LOGIN, input={"email": "alice@example.com", "password": "correct horse battery"}
        )
        await gql.open_account(name="Secret name")
    everything = "\n".join(JsonFormatter().format(record) for record in caplog.records)
    assert "correct horse battery" not in everything
    assert gql.token not in everything
    assert "Secret name" not in everything
    outcomes = [json.loads(JsonFormatter().format(r))["outcome"] for r in request_lines(caplog)]
    assert outcomes == ["ok", "ok"]


async def test_an_unexpected_error_is_logged_once_and_the_client_gets_the_request_id(
    gql, monkeypatch, caplog
):
    async def broken(*_args, **_kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(AccountService, "open_account", broken)
    with caplog.at_level(logging.INFO):
        response = await gql.http.post(
            "/graphql",
            json={"query": OPEN, "variables": {"input": {"name": "x", "currency": "EUR"}}},
            headers=gql.headers | {"X-Request-ID": "support-42"},
        )
    [error] = response.json()["errors"]
    assert error["message"] == "Internal server error"
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR", "requestId": "support-42"}
    faults = [r for r in caplog.records if r.exc_info]
    assert len(faults) == 1
    line = json.loads(JsonFormatter().format(faults[0]))
    assert line["request_id"] == "support-42" and "disk on fire" in line["traceback"]
    [request] = request_lines(caplog)
    assert request.outcome == "internal_error"


async def test_a_top_level_client_error_is_logged_as_an_error_outcome(gql, caplog):
    with caplog.at_level(logging.INFO):
        await gql.request("{ accounts(first: 500) { totalCount } }")
    [request] = request_lines(caplog)
    assert request.outcome == "error"


def test_a_subscription_fault_is_masked_and_logged_under_its_connections_request_id(
    tmp_path, monkeypatch, caplog
):
    url = f"sqlite+aiosqlite:///{tmp_path / 'ws.db'}"
    asyncio.run(migrated(url))

    async def broken(self, **_arguments):
        raise RuntimeError("the disk is on fire")
        yield  # an async generator, as the real method is

    monkeypatch.setattr(EntryWatch, "lines", broken)
    app = create_app(settings_for(url))
    register = 'mutation { register(input: {email: "ws@example.com", password: "long enough pw"})'
    subscribe = 'subscription { accountEntries(accountId: "QWNjb3VudDox") { id } }'
    with caplog.at_level(logging.INFO), TestClient(app) as http:
        token = http.post(
            "/graphql", json={"query": register + " { ... on AuthPayload { token } } }"}
        ).json()["data"]["register"]["token"]
        with http.websocket_connect(
            "/graphql", subprotocols=["graphql-transport-ws"], headers={"X-Request-ID": "ws-1"}
        ) as socket:
            bearer = {"Authorization": f"Bearer {token}"}
            socket.send_json({"type": "connection_init", "payload": bearer})
            assert socket.receive_json() == {"type": "connection_ack"}
            socket.send_json({"id": "1", "type": "subscribe", "payload": {"query": subscribe}})
            answer = socket.receive_json()
    [error] = answer["payload"]["errors"] if answer["type"] == "next" else answer["payload"]
    assert error["message"] == "Internal server error"
    assert "fire" not in json.dumps(answer)
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR", "requestId": "ws-1"}
    [logged] = [r for r in caplog.records if r.name == "bankql.errors"]
    assert logged.request_id == "ws-1" and "fire" in str(logged.exc_info[1])
    [line] = [r for r in caplog.records if r.name == "bankql.requests" and r.msg == "websocket"]
    assert line.request_id == "ws-1" and line.path == "/graphql"
