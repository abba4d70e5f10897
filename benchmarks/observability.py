"""What metrics and traces cost each request, in CPU of the server's own process.

    .venv/bin/python -m benchmarks.observability [--sqlite] [--requests 2000] [--rounds 3]

On a temporary database (PostgreSQL from BANKQL_TEST_POSTGRES_URL, or SQLite), one app
each with metrics off, with metrics on, and with metrics and tracing on (spans made and
then dropped, as a busy collector would take them) answers the same signed-in read of one
account, called straight through ASGI with no HTTP client in between. Each app serves
`--requests` reads in a round, the apps taking turns, and the best round of each is
printed: CPU microseconds per request of this process (the app, and SQLite's thread when on
SQLite; not PostgreSQL's own processes), and the difference from metrics off.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from starlette.applications import Starlette

from benchmarks.databases import on_temporary_database
from gql.server.app import create_app
from persistence.database import make_engine
from persistence.migrate import upgrade
from tests.api.graphql import post_scope
from tests.conftest import settings_for

READ = "query Read($id: ID!) { account(id: $id) { id name balance { amount currency } } }"
REGISTER = """mutation($input: RegisterInput!) { register(input: $input) {
  ... on AuthPayload { token } } }"""
OPEN = """mutation { openAccount(input: {name: "Bench", currency: "EUR", initialDeposit: "10"})
  { ... on AccountPayload { account { id } } } }"""


class Dropped(SpanExporter):
    """Takes every span and keeps none."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


async def call(app: Starlette, body: dict[str, Any], token: str | None = None) -> dict[str, Any]:
    """One POST /graphql straight through ASGI; the decoded answer."""
    payload = json.dumps(body).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"accept", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
    ]
    if token is not None:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    scope = post_scope(headers)
    sent = False
    chunks: list[bytes] = []
    never = asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:  # the client stays until it has its answer
            await never.wait()
        sent = True
        return {"type": "http.request", "body": payload, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    answer: dict[str, Any] = json.loads(b"".join(chunks))
    return answer


async def measure(url: str, requests: int, rounds: int) -> None:
    engine = make_engine(url)
    await upgrade(engine)
    await engine.dispose()
    tracer = TracerProvider()
    tracer.add_span_processor(SimpleSpanProcessor(Dropped()))
    common = {"rate_limit_burst": 1_000_000, "rate_limit_per_second": 100_000}
    apps = {
        "metrics off": create_app(settings_for(url, metrics=False, **common)),
        "metrics on": create_app(settings_for(url, metrics=True, **common)),
        "metrics and tracing on": create_app(
            settings_for(url, metrics=True, tracing=True, **common), tracer_provider=tracer
        ),
    }
    first = apps["metrics off"]
    variables = {"input": {"email": "bench@example.com", "password": "correct horse battery"}}
    token = (await call(first, {"query": REGISTER, "variables": variables}))["data"]["register"][
        "token"
    ]
    account = (await call(first, {"query": OPEN}, token))["data"]["openAccount"]["account"]["id"]
    body = {"query": READ, "variables": {"id": account}}
    best: dict[str, float] = {}
    try:
        for app in apps.values():  # every cache and connection warm
            for _ in range(50):
                assert "errors" not in await call(app, body, token)
        for _ in range(rounds):
            for name, app in apps.items():
                started = time.process_time()
                for _ in range(requests):
                    await call(app, body, token)
                cpu_us = (time.process_time() - started) / requests * 1e6
                best[name] = min(best.get(name, cpu_us), cpu_us)
    finally:
        for app in apps.values():
            await app.state.engine.dispose()
        tracer.shutdown()
    base = best["metrics off"]
    print(
        f"{'':24} CPU per read   vs metrics off   ({url.split(':')[0]}, {requests} reads, "
        f"best of {rounds})"
    )
    for name, cpu_us in best.items():
        print(f"{name:24} {cpu_us:8.0f} us   {cpu_us - base:+8.0f} us ({(cpu_us / base - 1):+.1%})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sqlite", action="store_true")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    on_temporary_database(
        arguments.sqlite, lambda url: measure(url, arguments.requests, arguments.rounds)
    )


if __name__ == "__main__":
    main()
