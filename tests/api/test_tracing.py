"""Traces: a span for the HTTP request, one for its GraphQL operation and one per SQL
statement, all of one trace and carrying the request id; never a value the client sent."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.testclient import TestClient

from gql.server.app import create_app
from tests.conftest import settings_for

SECRET_PASSWORD = "s3cret-horse-battery-7f2c"
EMAIL = "traced.person@example.com"
REGISTER = """mutation SignUp($input: RegisterInput!) { register(input: $input) {
  __typename ... on AuthPayload { token } } }"""
# The password written in the document itself, not in a variable.
LOGIN_INLINE = f"""mutation SignIn {{ login(input: {{email: "{EMAIL}",
  password: "{SECRET_PASSWORD}"}}) {{ __typename }} }}"""
VIEWER = "query Who($probe: String) { viewer { email } __typename }"


@pytest.fixture
async def traced(database_url) -> AsyncIterator[tuple[httpx.AsyncClient, InMemorySpanExporter]]:
    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    app = create_app(settings_for(database_url, tracing=True), tracer_provider=provider)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bankql.test") as http:
        yield http, exported
    await app.state.engine.dispose()


def texts(span: ReadableSpan) -> list[str]:
    """Everything a span says: its name, attributes, events and status."""
    said = [span.name, str(span.status.description or "")]
    said += [f"{key}={value}" for key, value in (span.attributes or {}).items()]
    for event in span.events:
        said += [event.name, *(f"{k}={v}" for k, v in (event.attributes or {}).items())]
    return said


def of_request(spans: tuple[ReadableSpan, ...], request_id: str) -> list[ReadableSpan]:
    """The spans of the one trace whose request span carries this request id."""
    (root,) = [
        span
        for span in spans
        if span.instrumentation_scope is not None
        and span.instrumentation_scope.name == "opentelemetry.instrumentation.asgi"
        and (span.attributes or {}).get("bankql.request_id") == request_id
    ]
    assert root.context is not None
    return [
        span for span in spans if span.context and span.context.trace_id == root.context.trace_id
    ]


async def post(http: httpx.AsyncClient, query: str, **variables: Any) -> httpx.Response:
    response = await http.post("/graphql", json={"query": query, "variables": variables})
    assert response.status_code == 200, response.text
    assert "errors" not in response.json(), response.text
    return response


async def test_a_request_is_one_trace_of_request_operation_and_sql(traced):
    http, exported = traced
    response = await post(http, REGISTER, input={"email": EMAIL, "password": SECRET_PASSWORD})
    request_id = response.headers["x-request-id"]
    spans = of_request(exported.get_finished_spans(), request_id)
    by_id = {span.context.span_id: span for span in spans if span.context}

    (request,) = [span for span in spans if span.parent is None]
    assert request.kind.name == "SERVER"
    assert request.attributes["http.route" if "http.route" in request.attributes else "http.target"]
    (operation,) = [span for span in spans if span.name == "GraphQL Operation: SignUp"]
    assert operation.parent is not None and operation.parent.span_id == request.context.span_id
    assert operation.attributes["bankql.request_id"] == request_id
    assert operation.attributes["graphql.operation.type"] == "mutation"
    assert operation.attributes["bankql.outcome"] == "ok"
    assert any(span.name == "GraphQL Resolving: register" for span in spans)

    statements = [span for span in spans if "db.statement" in (span.attributes or {})]
    assert any("INSERT" in str(span.attributes["db.statement"]) for span in statements)
    for statement in statements:
        # Each under the operation, however deep.
        parent = statement
        while parent.parent is not None and parent is not operation:
            parent = by_id[parent.parent.span_id]
        assert parent is operation, statement.name


async def test_no_span_holds_a_value_the_client_sent(traced):
    http, exported = traced
    await post(http, REGISTER, input={"email": EMAIL, "password": SECRET_PASSWORD})
    await post(http, LOGIN_INLINE)
    # Variables travel in the query string on GET.
    response = await http.get(
        "/graphql",
        params={"query": VIEWER, "variables": json.dumps({"probe": SECRET_PASSWORD})},
        headers={"Accept": "application/json", "Authorization": f"Bearer {SECRET_PASSWORD}"},
    )
    assert response.status_code == 200, response.text
    spans = exported.get_finished_spans()
    assert any(span.name == "GraphQL Operation: SignIn" for span in spans)
    assert any(span.name == "GraphQL Operation: Who" for span in spans)
    said = [text for span in spans for text in texts(span)]
    for secret in (SECRET_PASSWORD, EMAIL, "traced.person"):
        leaks = [text for text in said if secret in text]
        assert leaks == [], leaks
    # Nor the client's address (the test client's is 127.0.0.1), on the request spans.
    requests = [span for span in spans if span.parent is None]
    assert len(requests) == 3
    assert [text for span in requests for text in texts(span) if "127.0.0.1" in text] == []


async def test_no_span_holds_an_operation_name_header_or_path_the_client_chose(traced):
    """The operation name the client sent need not name an operation of its document, and
    the User-Agent, the Host and the path are the client's to write: none reaches a span.
    A caller's traceparent still joins its trace."""
    http, exported = traced
    caller_trace = "0af7651916cd43dd8448eb211c80319c"
    response = await http.post(
        "/graphql",
        json={"query": "{ __typename }", "operationName": f"{EMAIL} {SECRET_PASSWORD}"},
        headers={
            "User-Agent": f"probe/1.0 ({EMAIL})",
            "traceparent": f"00-{caller_trace}-b7ad6b7169203331-01",
        },
    )
    # Refused (it names no operation of the document), yet traced.
    assert response.status_code in (200, 400), response.text
    await http.get(f"/accounts/{SECRET_PASSWORD}/statement.csv")
    await http.get(f"/{EMAIL}")
    spans = exported.get_finished_spans()
    said = [text for span in spans for text in texts(span)]
    for secret in (SECRET_PASSWORD, EMAIL, "traced.person"):
        leaks = [text for text in said if secret in text]
        assert leaks == [], leaks
    assert any(
        span.context is not None and format(span.context.trace_id, "032x") == caller_trace
        for span in spans
    )


async def test_a_failed_statement_says_only_its_error_type(traced):
    """A driver's message may quote the row it refused (PostgreSQL's names the email that is
    taken); the span keeps the error's type alone."""
    http, exported = traced
    await post(http, REGISTER, input={"email": EMAIL, "password": SECRET_PASSWORD})
    exported.clear()
    # The same email again: the database's unique index refuses it.
    response = await http.post(
        "/graphql",
        json={
            "query": REGISTER,
            "variables": {"input": {"email": EMAIL, "password": SECRET_PASSWORD}},
        },
    )
    assert response.json()["data"]["register"]["__typename"] == "EmailAlreadyRegistered"
    spans = exported.get_finished_spans()
    (failed,) = [
        span
        for span in spans
        if "error.type" in (span.attributes or {}) and "db.statement" in (span.attributes or {})
    ]
    assert failed.status.status_code.name == "ERROR"
    said = [text for span in spans for text in texts(span)]
    assert not any(EMAIL in text for text in said), said


def test_with_tracing_off_no_tracing_code_is_loaded(tmp_path):
    """A server with tracing off serves a request without importing OpenTelemetry at all."""
    script = f"""
import asyncio, sys, httpx
from gql.server.app import create_app
from gql.server.settings import Settings
from persistence.database import make_engine
from persistence.migrate import upgrade

async def main():
    url = "sqlite+aiosqlite:///{tmp_path / "off.db"}"
    engine = make_engine(url)
    await upgrade(engine)
    await engine.dispose()
    app = create_app(Settings(_env_file=None, env="development", database_url=url))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        response = await http.post("/graphql", json={{"query": "{{ __typename }}"}})
        assert response.status_code == 200
    await app.state.engine.dispose()
    print(sorted(name for name in sys.modules if name.startswith("opentelemetry")))

asyncio.run(main())
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_spans_go_to_the_collector_over_otlp_http(database_url):
    """With no tracer provider given, the app sends its spans in OTLP/HTTP to
    BANKQL_OTEL_ENDPOINT, and sends what is still batched when it stops."""
    received: list[tuple[str, str, bytes]] = []

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, self.headers["Content-Type"], body))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_arguments: Any) -> None:
            pass

    collector = HTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=collector.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{collector.server_address[1]}/v1/traces"
    try:
        app = create_app(settings_for(database_url, tracing=True, otel_endpoint=endpoint))
        with TestClient(app) as http:
            variables = {"input": {"email": "otlp@example.com", "password": SECRET_PASSWORD}}
            response = http.post("/graphql", json={"query": REGISTER, "variables": variables})
            assert response.status_code == 200, response.text
            request_id = response.headers["x-request-id"]
    finally:
        collector.shutdown()
        collector.server_close()
    assert received, "no spans reached the collector"
    assert {(path, kind) for path, kind, _ in received} == {
        ("/v1/traces", "application/x-protobuf")
    }
    sent = b"".join(body for _, _, body in received)
    assert b"GraphQL Operation: SignUp" in sent and request_id.encode() in sent
    assert SECRET_PASSWORD.encode() not in sent and b"otlp@example.com" not in sent


def test_a_websocket_connection_and_its_operations_are_one_trace(database_url):
    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    app = create_app(settings_for(database_url, tracing=True), tracer_provider=provider)
    with (
        TestClient(app) as http,
        http.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as socket,
    ):
        socket.send_json({"type": "connection_init", "payload": {}})
        assert socket.receive_json() == {"type": "connection_ack"}
        query = """mutation OverSocket($password: String!) {
          login(input: {email: "nobody@example.com", password: $password}) { __typename } }"""
        payload = {"query": query, "variables": {"password": SECRET_PASSWORD}}
        socket.send_json({"id": "1", "type": "subscribe", "payload": payload})
        first = socket.receive_json()
        assert first["type"] == "next", first
        assert socket.receive_json() == {"id": "1", "type": "complete"}
    spans = exported.get_finished_spans()
    (connection,) = [span for span in spans if span.parent is None]
    request_id = connection.attributes["bankql.request_id"]
    (operation,) = [span for span in spans if span.name == "GraphQL Operation: OverSocket"]
    assert operation.attributes["bankql.request_id"] == request_id
    assert operation.context.trace_id == connection.context.trace_id
    assert not [text for span in spans for text in texts(span) if SECRET_PASSWORD in text]
