"""How much one abusive client slows everyone else down: a victim's latency, alone and attacked.

    .venv/bin/python -m benchmarks.abuse [--seconds 12] [--rate 20] [--scale 1] \\
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

Creates a temporary PostgreSQL database on the server at --database-url (by default
BANKQL_TEST_POSTGRES_URL, else the one at 127.0.0.1:5432) and runs each phase on a fresh
`bankql serve` process, one process as production runs it (BANKQL_ENV=production, default
password hashing), on a loopback port. In every phase a signed-in victim asks `{viewer{id}}`
--rate times a second for --seconds: once alone, then during each attack in turn (a costly
query, a login storm, distinct large documents, slow clients, a WebSocket flood). Every
attack comes from 127.0.0.1 and is bounded by --seconds and by its size (times --scale).
After each attack the victim keeps asking until its answers are back to normal. Prints a
Markdown table of the victim's latency and of how the server answered the attack, then stops
the server and drops the database.
The script only watches what comes back, so it runs against any version of the server.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import secrets
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import websockets

from tests.databases import POSTGRES_URL_VARIABLE, PostgresDatabase
from tests.servers import Server, environment

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
PASSWORD = "correct horse battery"  # noqa: S105 (the throwaway users' password)
VIEWER = "{viewer{id}}"
COSTLY = (
    "{accounts(first:100){edges{node{owner{accounts(first:100){edges{node{owner"
    "{accounts(first:1){edges{node{id}}}}}}}}}}}}"
)
REGISTER = """mutation($input: RegisterInput!) {
  register(input: $input) { __typename ... on AuthPayload { token } } }"""
LOGIN = "mutation($input: LoginInput!) { login(input: $input) { __typename } }"
OPEN = """mutation($input: OpenAccountInput!) {
  openAccount(input: $input) { __typename ... on AccountPayload { account { id } } } }"""
SUBSCRIBE = "subscription($id: ID!) { accountEntries(accountId: $id) { id } }"

# The size of each attack, before --scale.
ATTACKER_ACCOUNTS = 100
COSTLY_CLIENTS = 20
ABANDON_AFTER_S = 3
LOGIN_CLIENTS = 60
NEW_DOCUMENT_CLIENTS = 4
NEW_DOCUMENT_FIELDS = " viewer{id}" * 400  # 1,602 tokens, inside the token limit
LOGIN_TIMEOUT_S = 10
MAX_REQUESTS = 20_000
SLOW_SOCKETS = 300  # of each kind: partial headers, partial body
TRICKLE_EVERY_S = 2
WEBSOCKETS = 300
SUBSCRIPTIONS_EACH = 5
OPENING_AT_ONCE = 20
OPEN_TIMEOUT_S = 5

VICTIM_CONNECTIONS = 10
VICTIM_TIMEOUT_S = 10
WARM_UP_REQUESTS = 10
NORMAL_IN_A_ROW = 5
NORMAL_TIMES_ALONE = 2  # an answer is normal again within this many times the p95 alone,
NORMAL_AT_LEAST_S = 0.05  # or within this, whichever is more
RECOVERY_LIMIT_S = 60
SETUP_ATTEMPTS = 30


def now() -> float:
    return asyncio.get_running_loop().time()


def production_environment(database_url: str) -> dict[str, str]:
    """What a production deployment sets: its own key, and the default password hashing."""
    env = environment(
        database_url, BANKQL_ENV="production", BANKQL_SECRET_KEY=secrets.token_urlsafe(32)
    )
    return {name: value for name, value in env.items() if not name.startswith("BANKQL_PASSWORD")}


@asynccontextmanager
async def serving(env: dict[str, str]) -> AsyncIterator[Server]:
    """A server process, stopped whatever happens; nothing else runs while it starts or stops."""
    server = Server(env)
    try:
        server.start()
        yield server
    finally:
        server.stop()


# --- How the server answered -------------------------------------------------------------


def answered_as(response: httpx.Response) -> str:
    """The status and the error code or result type in the body, such as "200 QUERY_TOO_COSTLY"."""
    try:
        body = response.json()
    except ValueError:
        return str(response.status_code)
    detail = ""
    if isinstance(body, dict) and body.get("errors"):
        error = body["errors"][0]
        detail = (error.get("extensions") or {}).get("code") or "error"
    elif isinstance(body, dict) and isinstance(body.get("data"), dict):
        results = [value for value in body["data"].values() if isinstance(value, dict)]
        detail = results[0].get("__typename", "") if results else ""
    return f"{response.status_code} {detail}".strip()


def failed_as(error: httpx.HTTPError) -> str:
    if isinstance(error, httpx.TimeoutException):
        return "abandoned"
    if isinstance(error, httpx.ConnectError):
        return "refused"
    return "closed"


async def post(
    http: httpx.AsyncClient, query: str, token: str | None = None, **variables: Any
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await http.post(
        "/graphql", json={"query": query, "variables": variables}, headers=headers
    )


async def answer_label(
    http: httpx.AsyncClient, query: str, token: str | None = None, **variables: Any
) -> str:
    try:
        return answered_as(await post(http, query, token, **variables))
    except httpx.HTTPError as error:
        return failed_as(error)


# --- The plan and the people -------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    seconds: float  # each phase
    rate: float  # the victim's requests a second
    scale: float  # times the size of each attack

    def scaled(self, count: int) -> int:
        return max(1, round(count * self.scale))


@dataclass(frozen=True)
class People:
    victim_token: str
    attacker_email: str
    attacker_token: str
    attacker_accounts: list[str]


async def setup_data(http: httpx.AsyncClient, query: str, **variables: Any) -> dict[str, Any]:
    """The data of a setup request, waiting out a rate limit should the server have one."""
    for _ in range(SETUP_ATTEMPTS):
        response = await post(http, query, **variables)
        if response.status_code != 429 and "RATE_LIMITED" not in response.text:
            break
        try:
            await asyncio.sleep(min(10.0, float(response.headers.get("retry-after", "1"))))
        except ValueError:
            await asyncio.sleep(1)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


async def sign_up(http: httpx.AsyncClient, email: str) -> str:
    data = await setup_data(http, REGISTER, input={"email": email, "password": PASSWORD})
    assert data["register"]["__typename"] == "AuthPayload", data
    token: str = data["register"]["token"]
    return token


async def open_accounts(http: httpx.AsyncClient, token: str, count: int) -> list[str]:
    http.headers["Authorization"] = f"Bearer {token}"
    accounts = []
    for number in range(count):
        data = await setup_data(http, OPEN, input={"name": f"A{number}", "currency": "EUR"})
        assert data["openAccount"]["__typename"] == "AccountPayload", data
        accounts.append(data["openAccount"]["account"]["id"])
    return accounts


async def sign_up_people(server: Server, plan: Plan) -> People:
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        victim = await sign_up(http, "victim@example.com")
        attacker = await sign_up(http, "attacker@example.com")
        owned = await open_accounts(http, attacker, plan.scaled(ATTACKER_ACCOUNTS))
    return People(victim, "attacker@example.com", attacker, owned)


# --- The victim ---------------------------------------------------------------------------


@dataclass
class Victim:
    """One signed-in client asking {viewer{id}} at a steady rate."""

    http: httpx.AsyncClient
    rate: float

    async def ask(self) -> float:
        """Seconds to a good answer; infinity for anything else or no answer in time."""
        started = time.perf_counter()
        try:
            async with asyncio.timeout(VICTIM_TIMEOUT_S):
                response = await self.http.post("/graphql", json={"query": VIEWER})
            good = response.status_code == 200 and response.json()["data"]["viewer"]["id"]
        except (httpx.HTTPError, TimeoutError, ValueError, KeyError, TypeError):
            good = False
        return time.perf_counter() - started if good else math.inf

    async def warm_up(self) -> None:
        for _ in range(WARM_UP_REQUESTS):
            await self.ask()

    async def measure(self, seconds: float) -> list[float]:
        """Ask on schedule for that long, each request on time however slow the others are."""
        start = now()
        async with asyncio.TaskGroup() as group:
            asking = []
            for number in range(max(1, round(seconds * self.rate))):
                await asyncio.sleep(start + number / self.rate - now())
                asking.append(group.create_task(self.ask()))
        return [task.result() for task in asking]

    async def back_to_normal(self, normal_s: float) -> float | None:
        """Seconds until answers come within normal_s again, several in a row; None if never."""
        start, first_good, in_a_row = now(), 0.0, 0
        while now() - start < RECOVERY_LIMIT_S:
            asked = now()
            if await self.ask() <= normal_s:
                first_good = first_good if in_a_row else asked - start
                in_a_row += 1
                if in_a_row == NORMAL_IN_A_ROW:
                    return first_good
            else:
                in_a_row = 0
            await asyncio.sleep(asked + 1 / self.rate - now())
        return None


@asynccontextmanager
async def victim_of(server: Server, people: People, rate: float) -> AsyncIterator[Victim]:
    async with httpx.AsyncClient(
        base_url=server.url,
        headers={"Authorization": f"Bearer {people.victim_token}"},
        limits=httpx.Limits(max_connections=VICTIM_CONNECTIONS),
    ) as http:
        victim = Victim(http, rate)
        await victim.warm_up()
        yield victim


# --- The attacks --------------------------------------------------------------------------


@dataclass
class Attack:
    """What one attack sent, and how the server answered each part of it."""

    unit: str
    attempts: int = 0
    answers: Counter[str] = field(default_factory=Counter)

    @property
    def sent(self) -> str:
        return f"{self.attempts} {self.unit}"


AttackRun = Callable[[Server, People, float], Coroutine[Any, Any, Attack]]


async def hammer(
    server: Server,
    clients: int,
    give_up_after_s: float,
    deadline: float,
    send: Callable[..., Awaitable[str]],
) -> Attack:
    """Clients each sending send(http, n) one after another until the deadline or the cap."""
    attack = Attack("requests")

    async def client(number: int) -> None:
        while now() < deadline and attack.attempts < MAX_REQUESTS:
            attack.attempts += 1
            attack.answers[await send(http, number)] += 1

    limits = httpx.Limits(max_connections=clients)
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=give_up_after_s, limits=limits) as http,
        asyncio.TaskGroup() as group,
    ):
        for number in range(clients):
            group.create_task(client(number))
    return attack


def costly_queries(clients: int) -> AttackRun:
    async def run(server: Server, people: People, deadline: float) -> Attack:
        async def send(http: httpx.AsyncClient, _: int) -> str:
            return await answer_label(http, COSTLY, people.attacker_token)

        return await hammer(server, clients, ABANDON_AFTER_S, deadline, send)

    return run


def login_storm(clients: int) -> AttackRun:
    """Wrong passwords: half the clients for the attacker's email, half for ever new ones."""

    async def run(server: Server, people: People, deadline: float) -> Attack:
        async def send(http: httpx.AsyncClient, number: int) -> str:
            email = people.attacker_email if number % 2 else f"{uuid.uuid4().hex}@example.com"
            credentials = {"email": email, "password": "not the password at all"}
            return await answer_label(http, LOGIN, input=credentials)

        return await hammer(server, clients, LOGIN_TIMEOUT_S, deadline, send)

    return run


def new_documents(clients: int) -> AttackRun:
    """Without a token, distinct documents near the token limit: each one parsed and
    checked afresh, none of them helped by what the process remembers."""

    async def run(server: Server, people: People, deadline: float) -> Attack:
        sent = itertools.count()

        async def send(http: httpx.AsyncClient, _: int) -> str:
            # The same fields, spaced differently each time: a new document for the server.
            spacing = " " * (1 + next(sent))
            return await answer_label(http, "{" + spacing + NEW_DOCUMENT_FIELDS + "}")

        return await hammer(server, clients, ABANDON_AFTER_S, deadline, send)

    return run


def status_of(answer: bytes) -> str:
    """The status of an HTTP answer's first bytes, or "closed" for none."""
    if answer.startswith(b"HTTP/"):
        return answer.split(b" ", 2)[1].decode("ascii", "replace")
    return "closed"


async def hold_socket(port: int, opening: bytes, trickle: bytes, deadline: float) -> str:
    """Send the start of a request, then a few more bytes now and then, until the deadline."""
    try:
        connecting = asyncio.open_connection("127.0.0.1", port)
        reader, writer = await asyncio.wait_for(connecting, OPEN_TIMEOUT_S)
    except (OSError, TimeoutError):
        return "refused"
    try:
        writer.write(opening)
        while (remaining := deadline - now()) > 0:
            await writer.drain()
            try:
                answer = await asyncio.wait_for(reader.read(64), min(TRICKLE_EVERY_S, remaining))
            except TimeoutError:
                writer.write(trickle)
                continue
            return status_of(answer)
        return "held to the end"
    except OSError:
        return "closed"
    finally:
        writer.close()


def slow_clients(count: int) -> AttackRun:
    """Half stop in the middle of their headers, half in the middle of a declared body."""
    request = b"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    body = b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n" + b'{"query": '

    async def run(server: Server, people: People, deadline: float) -> Attack:
        attack = Attack("sockets", attempts=2 * count)
        async with asyncio.TaskGroup() as group:
            holding = [
                group.create_task(hold_socket(server.port, *kind, deadline))
                for kind in [(request, b"X-Slow: 1\r\n"), (request + body, b" ")]
                for _ in range(count)
            ]
        attack.answers.update(task.result() for task in holding)
        return attack

    return run


async def listen(socket: Any, people: People, deadline: float, attack: Attack) -> str:
    """connection_init, the subscriptions, then every message until the deadline."""
    token = f"Bearer {people.attacker_token}"
    await socket.send(json.dumps({"type": "connection_init", "payload": {"Authorization": token}}))
    reply = json.loads(await asyncio.wait_for(socket.recv(), OPEN_TIMEOUT_S))
    if reply.get("type") != "connection_ack":
        return f"init answered {reply.get('type')}"
    for number in range(SUBSCRIPTIONS_EACH):
        account = people.attacker_accounts[number % len(people.attacker_accounts)]
        payload = {"query": SUBSCRIBE, "variables": {"id": account}}
        await socket.send(json.dumps({"id": str(number), "type": "subscribe", "payload": payload}))
    while (remaining := deadline - now()) > 0:
        try:
            message = json.loads(await asyncio.wait_for(socket.recv(), remaining))
        except TimeoutError:
            break
        if message.get("type") == "error":
            code = (message["payload"][0].get("extensions") or {}).get("code", "error")
            attack.answers[f"subscription {code}"] += 1
    return "held to the end"


async def hold_websocket(
    server: Server, people: People, deadline: float, opening: asyncio.Semaphore, attack: Attack
) -> None:
    async with opening:
        if now() >= deadline:
            return
        attack.attempts += 1
        try:
            socket = await websockets.connect(
                server.url.replace("http://", "ws://") + "/graphql",
                subprotocols=[websockets.Subprotocol("graphql-transport-ws")],
                open_timeout=OPEN_TIMEOUT_S,
                close_timeout=1,
            )
        except websockets.InvalidStatus as error:
            attack.answers[str(error.response.status_code)] += 1
            return
        except (OSError, TimeoutError, websockets.WebSocketException):
            attack.answers["refused"] += 1
            return
    try:
        async with socket:
            attack.answers[await listen(socket, people, deadline, attack)] += 1
    except websockets.ConnectionClosed as error:
        attack.answers[f"closed {error.rcvd.code}" if error.rcvd else "closed"] += 1
    except TimeoutError:
        attack.answers["no connection_ack"] += 1


def websocket_flood(count: int) -> AttackRun:
    async def run(server: Server, people: People, deadline: float) -> Attack:
        attack = Attack(f"connections of {SUBSCRIPTIONS_EACH} subscriptions")
        opening = asyncio.Semaphore(OPENING_AT_ONCE)
        async with asyncio.TaskGroup() as group:
            for _ in range(count):
                group.create_task(hold_websocket(server, people, deadline, opening, attack))
        return attack

    return run


# --- The phases and the table -------------------------------------------------------------


@dataclass
class Row:
    phase: str
    latencies_s: list[float]
    attack: Attack | None = None
    recovered_s: float | None = None


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile, so that an unanswered request counts as infinitely slow."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def attacks(plan: Plan) -> list[tuple[str, AttackRun]]:
    costly, logins = plan.scaled(COSTLY_CLIENTS), plan.scaled(LOGIN_CLIENTS)
    documents = plan.scaled(NEW_DOCUMENT_CLIENTS)
    sockets, connections = plan.scaled(SLOW_SOCKETS), plan.scaled(WEBSOCKETS)
    return [
        (
            f"costly query, {costly} clients giving up after {ABANDON_AFTER_S} s",
            costly_queries(costly),
        ),
        (f"login storm, {logins} clients, wrong passwords", login_storm(logins)),
        (
            f"new large documents, {documents} clients without a token",
            new_documents(documents),
        ),
        (
            f"slow clients, {sockets} partial headers + {sockets} partial bodies",
            slow_clients(sockets),
        ),
        (
            f"WebSocket flood, {connections} connections x {SUBSCRIPTIONS_EACH} subscriptions",
            websocket_flood(connections),
        ),
    ]


async def under_attack(
    env: dict[str, str], people: People, plan: Plan, normal_s: float
) -> AsyncIterator[Row]:
    """Each attack on a fresh server process, so that what one leaves behind, be it work
    still running or a limit still in force, does not count against the next."""
    for name, attack in attacks(plan):
        async with serving(env) as server, victim_of(server, people, plan.rate) as victim:
            deadline = now() + plan.seconds
            async with asyncio.TaskGroup() as group:
                attacking = group.create_task(attack(server, people, deadline))
                latencies_s = await victim.measure(plan.seconds)
            recovered_s = await victim.back_to_normal(normal_s)
        yield Row(name, latencies_s, attacking.result(), recovered_s)


async def measure(database_url: str, plan: Plan) -> list[Row]:
    env = production_environment(database_url)
    async with serving(env) as server:
        people = await sign_up_people(server, plan)
        async with victim_of(server, people, plan.rate) as victim:
            rows = [Row("alone", await victim.measure(plan.seconds))]
    baseline_p95 = percentile(rows[0].latencies_s, 0.95)
    normal_s = max(NORMAL_TIMES_ALONE * baseline_p95, NORMAL_AT_LEAST_S)
    rows += [row async for row in under_attack(env, people, plan, normal_s)]
    return rows


def milliseconds(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if math.isfinite(seconds) else "no answer"


def cells(row: Row, baseline_p95: float) -> list[str]:
    p50, p95 = percentile(row.latencies_s, 0.5), percentile(row.latencies_s, 0.95)
    answered = sum(math.isfinite(latency) for latency in row.latencies_s)
    if math.isfinite(p95):
        ratio = f"{p95 / baseline_p95:.1f}x"
    else:  # more than one request in twenty had no good answer in time
        ratio = f"over {VICTIM_TIMEOUT_S / baseline_p95:.0f}x"
    victim = [row.phase, milliseconds(p50), milliseconds(p95), ratio]
    victim.append(f"{answered}/{len(row.latencies_s)}")
    if row.attack is None:
        return [*victim, "-", "-", "-"]
    answers = ", ".join(f"{label}: {n}" for label, n in row.attack.answers.most_common())
    if row.recovered_s is None:
        recovered = f"not within {RECOVERY_LIMIT_S} s"
    else:
        recovered = f"{row.recovered_s:.1f} s"
    return [*victim, row.attack.sent, answers, recovered]


HEADER = [
    "phase",
    "victim p50",
    "victim p95",
    "p95 / alone",
    "victim answered",
    "attack sent",
    "attack answered as",
    "victim normal again after",
]


def table(rows: list[Row]) -> str:
    baseline_p95 = percentile(rows[0].latencies_s, 0.95)
    lines = [HEADER, ["---"] * len(HEADER), *(cells(row, baseline_p95) for row in rows)]
    return "\n".join(f"| {' | '.join(line)} |" for line in lines)


def positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not above 0")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=positive, default=12, help="length of each phase")
    parser.add_argument("--rate", type=positive, default=20, help="victim requests a second")
    parser.add_argument("--scale", type=positive, default=1.0, help="times each attack's size")
    parser.add_argument(
        "--database-url",
        default=os.environ.get(POSTGRES_URL_VARIABLE, DEFAULT_POSTGRES_URL),
        help="the PostgreSQL server to make the temporary database on",
    )
    args = parser.parse_args()
    database = PostgresDatabase(args.database_url)
    try:
        rows = asyncio.run(measure(database.create(), Plan(args.seconds, args.rate, args.scale)))
    finally:
        database.drop()
    print(
        f"One `bankql serve` process (BANKQL_ENV=production, default password hashing) on "
        f"PostgreSQL, {os.cpu_count()} cores; the victim, signed in, asks `{VIEWER}` "
        f"{args.rate:g} times a second for {args.seconds:g} s in each phase, from 127.0.0.1 "
        "like the attacks.\n"
    )
    print(table(rows))


if __name__ == "__main__":
    main()
