"""GET /metrics: what each kind of request moves, what no label ever holds, that it is off
unless asked for in production, and that the workers of one `bankql serve` are summed."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import httpx
import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families

from gql.server.app import create_app
from gql.server.metrics import OperationNames
from tests.api.graphql import REGISTER, GraphQLClient, post_scope
from tests.api.subscriber import PROTOCOL, Subscriber
from tests.conftest import settings_for
from tests.servers import Server, environment

EMAIL = "metrics.person@example.com"
PASSWORD = "a password nobody else has 5d1f"
READ = "query MetricsRead($id: ID!) { account(id: $id) { id balance { amount } } }"
DEPOSIT = """mutation MetricsDeposit($input: DepositInput!) { deposit(input: $input) {
  __typename } }"""
PUBLIC = "query Public { __typename }"
WAIT_S = 15

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, metric: str, **labels: str) -> float:
    return samples.get((metric, tuple(sorted(labels.items()))), 0.0)


def label_values(samples: Samples) -> set[str]:
    return {label for _, labels in samples for _, label in labels}


async def scrape(http: httpx.AsyncClient) -> tuple[Samples, str]:
    response = await http.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text), response.text


async def eventually(
    http: httpx.AsyncClient, metric: str, expected: float, **labels: str
) -> Samples:
    """The figures once `metric` shows `expected`, which it must within WAIT_S."""
    deadline = time.monotonic() + WAIT_S
    while True:
        samples, _ = await scrape(http)
        if value(samples, metric, **labels) == expected or time.monotonic() > deadline:
            assert value(samples, metric, **labels) == expected, (metric, labels)
            return samples
        await asyncio.sleep(0.1)


async def test_a_scrape_counts_each_kind_of_request_and_names_no_one(database_url):
    # A fresh server, so that every figure starts at zero; three requests a client address
    # may send without a token, and then hardly any.
    env = environment(
        database_url,
        BANKQL_ANONYMOUS_RATE_LIMIT_BURST="3",
        BANKQL_ANONYMOUS_RATE_LIMIT_PER_SECOND="0.001",
    )
    server = Server(env).start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=WAIT_S) as http:
            registered = await GraphQLClient(http).data(
                REGISTER, input={"email": EMAIL, "password": PASSWORD}
            )
            token = registered["register"]["token"]
            alice = GraphQLClient(http, token)
            account = await alice.open_account("Metrics", "EUR", initial_deposit="10.00")
            movement = {"accountId": account["id"], "amount": {"amount": "2.50", "currency": "EUR"}}
            await alice.data(DEPOSIT, input=movement)
            # A retry answers with the first deposit: no second movement.
            for _ in range(2):
                await alice.data(DEPOSIT, input=movement | {"idempotencyKey": "metrics-retry"})
            await alice.data(READ, id=account["id"])
            # The address's burst: one register above, then until refused.
            statuses = [
                (await http.post("/graphql", json={"query": PUBLIC})).status_code for _ in range(3)
            ]
            assert statuses == [200, 200, 429]

            async with Subscriber.connected(server, token=token) as subscriber:
                await subscriber.subscribe(account["id"])
                samples = await eventually(http, "bankql_subscriptions", 1)
                assert value(samples, "bankql_websocket_connections") == 1
            samples = await eventually(http, "bankql_subscriptions", 0)
            samples = await eventually(
                http,
                "bankql_graphql_operations_total",
                1,
                type="subscription",
                name="Lines",
                outcome="ok",
            )
            samples, text = await scrape(http)
    finally:
        server.stop()

    assert value(samples, "bankql_websocket_connections") == 0
    operations = "bankql_graphql_operations_total"
    assert value(samples, operations, type="query", name="MetricsRead", outcome="ok") == 1
    assert value(samples, operations, type="mutation", name="MetricsDeposit", outcome="ok") == 3
    assert value(samples, operations, type="query", name="Public", outcome="ok") == 2
    latency = "bankql_graphql_operation_duration_seconds_count"
    assert value(samples, latency, type="query", name="MetricsRead") == 1
    # Counted by kind and currency: the initial deposit, the deposit, and the retried one once.
    assert value(samples, "bankql_money_movements_total", kind="DEPOSIT", currency="EUR") == 3
    assert value(samples, "bankql_rate_limit_refusals_total", limit="address") == 1
    assert value(samples, "bankql_http_requests_total", route="/graphql", status="429") == 1
    # register, openAccount, 3 deposits, the read, 3 anonymous posts; each made round trips,
    # except the refused one, which never reached the database.
    graphql_requests = value(samples, "bankql_http_requests_total", route="/graphql", status="200")
    assert graphql_requests == 8
    assert value(samples, "bankql_http_request_database_round_trips_count") >= graphql_requests
    assert value(samples, "bankql_http_request_database_round_trips_sum") >= 4 * 6
    assert value(samples, "bankql_db_pool_connections", state="idle") >= 1
    assert ("bankql_db_pool_connections", (("state", "waiting"),)) in samples

    secrets = {token, EMAIL, PASSWORD, "metrics.person", account["id"], "2.50"}
    labels = label_values(samples)
    assert not {secret for secret in secrets for label in labels if secret in label}
    for secret in (token, EMAIL, PASSWORD):
        assert secret not in text


async def test_figures_of_http_requests_and_round_trips(client, app):
    """A signed-in read is four round trips (BEGIN, the viewer, the account, COMMIT), as
    tests/api/test_statement_counts.py pins them; the request's figure says the same."""
    gql = await GraphQLClient(client).signed_up("rounds@example.com")
    account = await gql.open_account("Rounds", initial_deposit="1")
    await gql.data(READ, id=account["id"])
    before, _ = await scrape(client)
    await gql.data(READ, id=account["id"])
    after, _ = await scrape(client)
    trips = "bankql_http_request_database_round_trips"
    # The scrape between is one request of no round trip.
    assert value(after, f"{trips}_count") - value(before, f"{trips}_count") == 2
    assert value(after, f"{trips}_sum") - value(before, f"{trips}_sum") == 4
    requests = "bankql_http_requests_total"
    # Each scrape is counted once it is answered: the first one only.
    assert value(after, requests, route="/metrics", status="200") == 1
    response = await client.get(
        f"/accounts/{account['id']}/statement.csv",
        params={"from": "2026-01-01T00:00:00Z", "to": "2026-02-01T00:00:00Z"},
        headers=gql.headers,
    )
    assert response.status_code == 200
    samples, _ = await scrape(client)
    # The route, never the account's id.
    assert value(samples, requests, route="/accounts/{id}/statement.csv", status="200") == 1
    assert not any(account["id"] in label for label in label_values(samples))


async def test_operation_names_are_bounded_in_shape_and_number(database_url):
    app = create_app(settings_for(database_url, metrics_max_operation_names=2))
    transport = httpx.ASGITransport(app=app)
    long_name = "L" + "o" * 40 + "ng"
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://bankql.test") as http:
            for name in ("First", "Second", "Third", long_name, "First"):
                query = f"query {name} {{ __typename }}"
                assert (await http.post("/graphql", json={"query": query})).status_code == 200
            samples, _ = await scrape(http)
    finally:
        await app.state.engine.dispose()
    operations = "bankql_graphql_operations_total"
    named = {
        dict(labels)["name"]: count
        for (name, labels), count in samples.items()
        if name == operations
    }
    assert named == {"First": 2, "Second": 1, "other": 2}


async def test_a_client_that_leaves_before_its_answer_is_no_500(app, client):
    """A client that hangs up mid-request got no answer at all: counting it as a 500 would
    let anyone raise the error rate an operator is paged for. It is counted as 499, the
    status the request's log line gives it."""
    body = json.dumps(
        {"query": REGISTER, "variables": {"input": {"email": EMAIL, "password": PASSWORD}}}
    ).encode()
    parts = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        # The body, then the client is gone while the mutation works.
        return parts.pop(0) if parts else {"type": "http.disconnect"}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    headers = [(b"content-type", b"application/json"), (b"host", b"bankql.test")]
    scope = post_scope(headers, server=("bankql.test", 80))
    await app(scope, receive, send)
    assert sent == []
    samples, _ = await scrape(client)
    requests = "bankql_http_requests_total"
    assert value(samples, requests, route="/graphql", status="500") == 0
    assert value(samples, requests, route="/graphql", status="499") == 1


def test_operation_name_labels():
    names = OperationNames(most=1)
    assert names.label(None) == "anonymous"
    assert names.label("with space") == "other"
    assert names.label("Kept") == "Kept"
    assert names.label("Another") == "other"
    assert names.label("Kept") == "Kept"
    assert names.label(1) == names.label(["Kept"]) == names.label({}) == "other"


async def test_the_pool_in_use_idle_and_waiting(database_url):
    app = create_app(settings_for(database_url, db_pool_size=2, subscription_connections=1))
    engine = app.state.engine
    pool = engine.sync_engine.pool
    capacity = pool.size() + max(pool._max_overflow, 0)
    transport = httpx.ASGITransport(app=app)
    held = [await engine.connect() for _ in range(capacity)]

    async def connect():
        return await engine.connect()

    waiting = asyncio.create_task(connect())
    try:
        await asyncio.sleep(0.1)
        async with httpx.AsyncClient(transport=transport, base_url="http://bankql.test") as http:
            samples, _ = await scrape(http)
            pool_connections = "bankql_db_pool_connections"
            assert value(samples, pool_connections, state="in_use") == capacity
            assert value(samples, pool_connections, state="waiting") == 1
            await held.pop().close()
            await (await waiting).close()
            samples, _ = await scrape(http)
            assert value(samples, pool_connections, state="in_use") == capacity - 1
            assert value(samples, pool_connections, state="idle") >= 1
            assert value(samples, pool_connections, state="waiting") == 0
    finally:
        for connection in held:
            await connection.close()
        await engine.dispose()


@pytest.mark.parametrize(
    "overrides",
    [{"env": "production", "allow_sqlite": True}, {"metrics": False}],
    ids=["production-default", "turned-off"],
)
async def test_metrics_off_is_a_404(database_url, overrides):
    app = create_app(settings_for(database_url, **overrides))
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://bankql.test") as http:
            assert (await http.get("/metrics")).status_code == 404
            assert (await http.post("/graphql", json={"query": PUBLIC})).status_code == 200
    finally:
        await app.state.engine.dispose()
    assert app.state.metrics is None


def test_production_serves_metrics_when_asked():
    assert settings_for("sqlite://", env="production", metrics=True).metrics_enabled
    assert not settings_for("sqlite://", env="production").metrics_enabled


def _workers(server: Server) -> set[int]:
    """The worker processes of a `bankql serve --workers N`, as they are now."""
    assert server.process is not None
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children")
    found = set()
    for pid in map(int, children.read_text().split()):
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
        if b"spawn_main" in command:
            found.add(pid)
    return found


async def test_two_workers_are_summed_and_a_dead_one_forgotten(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'workers.db'}"
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    # The command makes its folder for the workers' figures in TMPDIR.
    env = environment(url, TMPDIR=str(temporary))
    server = Server(env, arguments=("--workers", "2")).start()
    try:
        (folder,) = temporary.iterdir()
        assert folder.name.startswith("bankql-metrics-")
        async with httpx.AsyncClient(base_url=server.url, timeout=WAIT_S) as http:
            # A new connection for each request, until both workers have answered some.
            sent = 0
            while len(list(folder.glob("counter_*.db"))) < 2:
                assert sent < 500, "one worker answered every request"
                async with httpx.AsyncClient(base_url=server.url) as once:
                    # Not /healthz, which the test's start of the server asks too.
                    assert (await once.get("/readyz")).status_code == 200
                sent += 1
            # Whichever worker answers a scrape, it counts every worker's requests.
            for _ in range(4):
                async with httpx.AsyncClient(base_url=server.url) as once:
                    samples, _ = await scrape(once)
                readyz = value(samples, "bankql_http_requests_total", route="/readyz", status="200")
                assert readyz == sent

            # An open connection on a worker that is killed outright stops being counted.
            socket_url = server.url.replace("http://", "ws://") + "/graphql"
            async with websockets.connect(socket_url, subprotocols=[PROTOCOL]) as socket:
                await socket.send(json.dumps({"type": "connection_init", "payload": {}}))
                assert json.loads(await socket.recv()) == {"type": "connection_ack"}
                await eventually(http, "bankql_websocket_connections", 1)
                killed = _workers(server)
                for pid in killed:
                    os.kill(pid, signal.SIGKILL)
            for _ in range(150):  # the supervisor starts new ones
                if len(_workers(server) - killed) == 2:
                    break
                await asyncio.sleep(0.2)
            await eventually(http, "bankql_websocket_connections", 0)
    finally:
        server.stop()
    # The folder goes with the server.
    assert list(temporary.iterdir()) == []
