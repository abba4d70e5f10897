"""Holds raced from two server processes on one database: captures, voids, withdrawals and
transfers at once. Every hold resolves once, no available balance goes below zero, the audit
stays clean and the total is exact. Bounded in count and time, loopback only."""

import asyncio
import random
import uuid
from typing import Any

import httpx
import pytest

from tests.load.checks import ADMIN_EMAIL, ADMIN_PASSWORD, minor
from tests.load.workload import DOCUMENTS, LOGIN, open_bank, post

HOLDS = {"postgresql": 60, "sqlite": 24}
CONCURRENCY = 12
TIMEOUT = httpx.Timeout(60)
PLACE = """mutation($input: PlaceHoldInput!) { placeHold(input: $input) {
  __typename ... on HoldPayload { hold { id } } } }"""
CAPTURE = """mutation($input: CaptureHoldInput!) { captureHold(input: $input) {
  __typename ... on HoldCapture { movement { transaction { id amount { amount } } } } } }"""
VOID = """mutation($input: VoidHoldInput!) { voidHold(input: $input) { __typename } }"""
HOLD = """query($id: ID!) { node(id: $id) { ... on Hold { status capturedAmount { amount }
  transaction { id } } } }"""
AUDIT = """{ ledgerAudit { ok mismatchedAccountIds unbalancedTransactionIds unbalancedCurrencies
  faultyHoldIds } }"""
ACCOUNTS = """{ accounts(first: 100) { edges { node { id balance { amount }
  availableBalance { amount } } } } }"""


def backend(url: str) -> str:
    return "sqlite" if url.startswith("sqlite") else "postgresql"


def eur(cents: int) -> dict[str, str]:
    return {"amount": f"{cents // 100}.{cents % 100:02d}", "currency": "EUR"}


@pytest.fixture
async def http():
    limits = httpx.Limits(max_connections=2 * CONCURRENCY, keepalive_expiry=2)
    async with httpx.AsyncClient(timeout=TIMEOUT, limits=limits) as client:
        yield client


async def test_holds_raced_on_two_servers_resolve_once_and_keep_the_ledger_exact(
    http, servers, empty_url
):
    rng = random.Random(2026_11_30)
    bases = [server.url for server in servers]
    bank = await open_bank(http, bases[0], rng, users=2, accounts_each=2)
    gate = asyncio.Semaphore(CONCURRENCY)
    withdrawn: list[int] = []  # cents that left the bank (negative: came in), as acknowledged
    holds: list[tuple[str, str, list[dict[str, Any]]]] = []  # (token, hold id, answers)

    async def call(base: str, document: str, token: str, **variables: Any) -> dict[str, Any]:
        async with gate:
            return await post(http, base, document, token, **variables)

    async def one_hold(number: int) -> None:
        token = rng.choice(bank.tokens)
        source, other = rng.sample(bank.accounts[token], 2)
        amount = rng.randint(100, 6000)
        destination = other if number % 2 else None
        # Money keeps coming in, so that the race has holds to fight over.
        topped_up = rng.randint(1, 6000)
        deposit = await call(
            bases[1 - number % 2],
            DOCUMENTS["deposit"],
            token,
            input={"accountId": source, "amount": eur(topped_up)},
        )
        assert deposit["deposit"]["__typename"] == "MoneyMovement"
        withdrawn.append(-topped_up)
        placed = await call(
            bases[number % 2],
            PLACE,
            token,
            input={"accountId": source, "amount": eur(amount), "destinationAccountId": destination},
        )
        if placed["placeHold"]["__typename"] != "HoldPayload":
            assert placed["placeHold"]["__typename"] == "InsufficientFunds"
            return
        hold_id = placed["placeHold"]["hold"]["id"]
        capture_amount = rng.choice([None, rng.randint(1, amount)])
        capture_input: dict[str, Any] = {"holdId": hold_id}
        if capture_amount is not None:
            capture_input["amount"] = eur(capture_amount)
        key = f"w-{uuid.uuid4().hex}"
        withdrawal = rng.randint(1, 4000)
        # Two captures (one on each server), a void, a withdrawal and a transfer, at once.
        answers = await asyncio.gather(
            call(bases[0], CAPTURE, token, input=capture_input),
            call(bases[1], CAPTURE, token, input=capture_input),
            call(bases[number % 2], VOID, token, input={"holdId": hold_id}),
            call(
                bases[1 - number % 2],
                DOCUMENTS["withdraw"],
                token,
                input={"accountId": source, "amount": eur(withdrawal), "idempotencyKey": key},
            ),
            call(
                bases[number % 2],
                DOCUMENTS["transfer"],
                token,
                input={
                    "sourceAccountId": source,
                    "destinationAccountId": other,
                    "amount": eur(rng.randint(1, 4000)),
                },
            ),
        )
        captures = [answers[0]["captureHold"], answers[1]["captureHold"]]
        void = answers[2]["voidHold"]
        holds.append((token, hold_id, [*captures, void]))
        for capture in captures:
            if capture["__typename"] == "HoldCapture" and destination is None:
                withdrawn.append(minor(capture["movement"]["transaction"]["amount"]["amount"]))
        if answers[3]["withdraw"]["__typename"] == "MoneyMovement":
            withdrawn.append(withdrawal)

    try:
        await asyncio.gather(*(one_hold(number) for number in range(HOLDS[backend(empty_url)])))
    except AssertionError as error:
        logs = "\n".join(server.output()[-3000:] for server in servers)
        raise AssertionError(f"{error}\nserver logs:\n{logs}") from error
    assert len(holds) > HOLDS[backend(empty_url)] // 2, "most holds should have been placed"

    for token, hold_id, answers in holds:
        won = [
            a["__typename"] for a in answers if a["__typename"] in ("HoldCapture", "HoldPayload")
        ]
        assert len(won) == 1, (hold_id, answers)  # one capture or the void, never two
        assert {a["__typename"] for a in answers} <= {
            "HoldCapture",
            "HoldPayload",
            "HoldNotPending",
        }
        shown = (await post(http, bases[0], HOLD, token, id=hold_id))["node"]
        assert shown["status"] == ("CAPTURED" if won == ["HoldCapture"] else "VOIDED")
        assert (shown["transaction"] is not None) is (won == ["HoldCapture"])

    login = await post(
        http, bases[1], LOGIN, input={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    )
    admin = login["login"]["token"]
    audit = (await post(http, bases[1], AUDIT, admin))["ledgerAudit"]
    assert audit == {
        "ok": True,
        "mismatchedAccountIds": [],
        "unbalancedTransactionIds": [],
        "unbalancedCurrencies": [],
        "faultyHoldIds": [],
    }
    accounts = (await post(http, bases[1], ACCOUNTS, admin))["accounts"]["edges"]
    assert all(minor(edge["node"]["availableBalance"]["amount"]) >= 0 for edge in accounts)
    total = sum(minor(edge["node"]["balance"]["amount"]) for edge in accounts)
    assert total == bank.initial_deposits_minor - sum(withdrawn)
