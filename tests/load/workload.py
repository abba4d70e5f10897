"""A bank under load over real HTTP: users, accounts, random movements sent with keys, retries.

Used by the concurrency tests and by benchmarks/load.py; every request goes to 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import httpx

MOVEMENT = """
mutation Move($input: %(input)s!) {
  %(field)s(input: $input) {
    __typename
    ... on MoneyMovement { transaction { id } }
  }
}
"""
DOCUMENTS = {
    "deposit": MOVEMENT % {"input": "DepositInput", "field": "deposit"},
    "withdraw": MOVEMENT % {"input": "WithdrawInput", "field": "withdraw"},
    "transfer": MOVEMENT % {"input": "TransferInput", "field": "transfer"},
}
REGISTER = """mutation($input: RegisterInput!) {
  register(input: $input) { ... on AuthPayload { token } } }"""
LOGIN = (
    """mutation($input: LoginInput!) { login(input: $input) { ... on AuthPayload { token } } }"""
)
OPEN = """mutation($input: OpenAccountInput!) {
  openAccount(input: $input) { ... on AccountPayload { account { id } } } }"""
PASSWORD = "load test password"


class NotAcknowledged(Exception):
    """The server gave no answer: the request may or may not have been applied."""


async def post(
    http: httpx.AsyncClient, base: str, document: str, token: str | None = None, **variables: Any
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = await http.post(
            f"{base}/graphql", json={"query": document, "variables": variables}, headers=headers
        )
    except httpx.TransportError as error:
        raise NotAcknowledged(f"{type(error).__name__}: {error}") from error
    if response.status_code != 200:
        raise NotAcknowledged(f"HTTP {response.status_code}: {response.text[:200]}")
    body: dict[str, Any] = response.json()
    codes = {error.get("extensions", {}).get("code") for error in body.get("errors") or ()}
    if codes == {"TIMEOUT"}:
        # Stopped at its deadline: like a lost answer, it may or may not have committed.
        raise NotAcknowledged(f"TIMEOUT: {body['errors'][0]['message']}")
    if body.get("errors"):
        raise AssertionError(f"unexpected top-level error: {body['errors']}")
    return body["data"]  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Op:
    kind: str
    token: str
    account: str
    amount_minor: int
    key: str
    destination: str | None = None
    repeat: str | None = None  # None, "concurrent" or "after"

    def variables(self) -> dict[str, Any]:
        amount = {
            "amount": f"{self.amount_minor // 100}.{self.amount_minor % 100:02d}",
            "currency": "EUR",
        }
        if self.kind == "transfer":
            return {
                "sourceAccountId": self.account,
                "destinationAccountId": self.destination,
                "amount": amount,
                "idempotencyKey": self.key,
            }
        return {"accountId": self.account, "amount": amount, "idempotencyKey": self.key}


@dataclass
class Bank:
    """The customers and accounts of one run, and everything the servers acknowledged."""

    tokens: list[str] = field(default_factory=list)
    accounts: dict[str, list[str]] = field(default_factory=dict)  # token -> account ids
    initial_deposits_minor: int = 0
    results: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    unacknowledged: list[tuple[Op, int]] = field(default_factory=list)
    # Why each of them got no answer, to show when a test finds one it did not expect.
    unanswered_because: list[str] = field(default_factory=list)
    latencies_s: list[float] = field(default_factory=list)

    @property
    def all_accounts(self) -> list[str]:
        return [account for owned in self.accounts.values() for account in owned]


async def open_bank(
    http: httpx.AsyncClient, base: str, rng: random.Random, *, users: int, accounts_each: int
) -> Bank:
    bank = Bank()
    for _ in range(users):
        email = f"user-{uuid.uuid4().hex[:10]}@example.com"
        data = await post(http, base, REGISTER, input={"email": email, "password": PASSWORD})
        token = data["register"]["token"]
        bank.tokens.append(token)
        bank.accounts[token] = []
        for number in range(accounts_each):
            initial = rng.randint(0, 20_000)
            bank.initial_deposits_minor += initial
            opened = await post(
                http,
                base,
                OPEN,
                token,
                input={
                    "name": f"Account {number}",
                    "currency": "EUR",
                    "initialDeposit": f"{initial // 100}.{initial % 100:02d}",
                },
            )
            bank.accounts[token].append(opened["openAccount"]["account"]["id"])
    return bank


def random_ops(bank: Bank, rng: random.Random, count: int, repeat_share: float) -> list[Op]:
    """Movements of up to 200.00 between accounts holding 100.00 on average: many overdraw."""
    ops = []
    for _ in range(count):
        token = rng.choice(bank.tokens)
        account = rng.choice(bank.accounts[token])
        kind = rng.choices(["transfer", "withdraw", "deposit"], weights=[45, 30, 25])[0]
        destination = None
        if kind == "transfer":
            destination = rng.choice([a for a in bank.all_accounts if a != account])
        repeat = None
        if rng.random() < repeat_share:
            repeat = rng.choice(["concurrent", "after"])
        ops.append(
            Op(kind, token, account, rng.randint(1, 20_000), uuid.uuid4().hex, destination, repeat)
        )
    return ops


async def send(http: httpx.AsyncClient, base: str, op: Op) -> dict[str, Any]:
    data = await post(http, base, DOCUMENTS[op.kind], op.token, input=op.variables())
    return data[op.kind]  # type: ignore[no-any-return]


async def run_op(http: httpx.AsyncClient, bank: Bank, bases: list[str], op: Op, first: int) -> None:
    """Send an op to one server and, when it repeats, the same key to the other one."""
    targets = [first] if op.repeat is None else [first, 1 - first]

    async def attempt(index: int) -> None:
        started = time.perf_counter()
        try:
            bank.results[op.key].append(await send(http, bases[index], op))
        except NotAcknowledged as error:
            bank.unacknowledged.append((op, index))
            bank.unanswered_because.append(str(error))
        bank.latencies_s.append(time.perf_counter() - started)

    if op.repeat == "concurrent":
        await asyncio.gather(*(attempt(index) for index in targets))
    else:
        for index in targets:
            await attempt(index)


async def drive(
    http: httpx.AsyncClient,
    bank: Bank,
    bases: list[str],
    ops: list[Op],
    clients: int,
    on_progress: Any = None,
) -> None:
    """`clients` concurrent clients work through the ops, alternating the first server."""
    queue: asyncio.Queue[tuple[int, Op]] = asyncio.Queue()
    for number, op in enumerate(ops):
        queue.put_nowait((number, op))

    async def client() -> None:
        while not queue.empty():
            number, op = queue.get_nowait()
            await run_op(http, bank, bases, op, number % len(bases))
            if on_progress is not None:
                await on_progress(number)

    await asyncio.gather(*(client() for _ in range(clients)))


def acknowledged_movements(bank: Bank) -> dict[str, str]:
    """Key -> transaction id for every key the servers said moved money."""
    moved: dict[str, str] = {}
    for key, results in bank.results.items():
        ids = {r["transaction"]["id"] for r in results if r["__typename"] == "MoneyMovement"}
        assert len(ids) <= 1, f"key {key} answered with transactions {ids}"
        if ids:
            moved[key] = ids.pop()
    return moved


def expected_total_minor(bank: Bank, ops: list[Op]) -> int:
    """Deposits minus withdrawals that the servers acknowledged, each key counted once."""
    moved = acknowledged_movements(bank)
    total = bank.initial_deposits_minor
    for op in ops:
        if op.key in moved:
            total += {"deposit": op.amount_minor, "withdraw": -op.amount_minor}.get(op.kind, 0)
    return total
