"""A primary that fails mid-load: bankql follows the promoted standby without a restart.

A real `bankql serve` runs on a URL that lists the primary and the standby with
target_session_attrs=read-write. Clients send deposits, withdrawals and transfers with
idempotency keys and send again, with the same key, whatever got no answer. Mid-load the
primary crashes and, a moment later, the standby is promoted. Replication is synchronous,
so that the standby holds every commit the primary acknowledged.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from domain.errors import StoreUnavailable
from domain.services import UserService
from gql.context import password_hashing, sql_unit_of_work
from gql.server.app import create_app
from persistence.database import make_session_factory
from tests.conftest import settings_for
from tests.load.checks import ADMIN_EMAIL, ADMIN_PASSWORD, check_ledger
from tests.load.workload import NotAcknowledged, Op, open_bank, random_ops, send
from tests.servers import Server, environment, run
from tests.stack.clusters import PostgresStack

CLIENTS = 6
OPS = 240
# The primary crashes once this many movements have been acknowledged.
CRASH_AFTER = OPS // 3
# How long no server takes writes, between the crash and the promotion.
NO_PRIMARY_S = 1.5
RETRY_WAIT_S = 0.2
# Far more than a recovery takes: past it a client gives up on a movement and the test fails.
GIVE_UP_S = 30
# bankql serves writes again within this long of the promotion.
RECOVERY_BOUND_S = 10
READINESS_POLL_S = 0.1


def writable_url(stack: PostgresStack) -> str:
    """Both servers, in the form SQLAlchemy reads, asking for the one that takes writes."""
    hosts = "&".join(f"host=127.0.0.1:{cluster.port}" for cluster in (stack.primary, stack.standby))
    return f"postgresql+psycopg://postgres@/bankql?{hosts}&target_session_attrs=read-write"


def synchronous(stack: PostgresStack) -> None:
    """Every commit waits until the standby has it, so a crash loses nothing acknowledged."""
    with stack.primary.connect() as connection:
        connection.execute("ALTER SYSTEM SET synchronous_standby_names = '*'")
        connection.execute("SELECT pg_reload_conf()")
    deadline = time.monotonic() + 10
    while stack.primary.scalar("SELECT sync_state FROM pg_stat_replication") != "sync":
        assert time.monotonic() < deadline, "the standby did not become synchronous"
        time.sleep(0.05)


@pytest.fixture
def failover_server(disposable_stack: PostgresStack) -> Iterator[Server]:
    synchronous(disposable_stack)
    env = environment(
        writable_url(disposable_stack),
        BANKQL_ADMIN_PASSWORD=ADMIN_PASSWORD,
        BANKQL_REQUEST_TIMEOUT_S="5",
        BANKQL_WORKERS="1",
    )
    created = run("create-admin", "--email", ADMIN_EMAIL, env=env)
    assert created.returncode == 0, created.stderr
    server = Server(env).start()
    try:
        yield server
    finally:
        server.stop()
        # What the server logged, shown with a failure.
        print(server.output()[-6000:])


class Readiness:
    """/readyz polled all along: each answer's status and when it came."""

    def __init__(self, http: httpx.AsyncClient, base: str) -> None:
        self.http, self.base = http, base
        self.answers: list[tuple[float, int]] = []

    async def poll(self) -> None:
        while True:
            try:
                status = (await self.http.get(f"{self.base}/readyz")).status_code
            except httpx.TransportError:
                status = 0
            self.answers.append((time.monotonic(), status))
            await asyncio.sleep(READINESS_POLL_S)

    def between(self, start: float, end: float) -> set[int]:
        return {status for at, status in self.answers if start <= at <= end}


async def test_bankql_follows_a_failover_mid_load_and_applies_nothing_twice(
    disposable_stack, failover_server
):
    stack, server = disposable_stack, failover_server
    pid = server.process.pid if server.process else None
    rng = random.Random(2026_12_01)
    async with httpx.AsyncClient(timeout=httpx.Timeout(30)) as http:
        bank = await open_bank(http, server.url, rng, users=3, accounts_each=2)
        ops = random_ops(bank, rng, OPS, repeat_share=0)
        acknowledged_at: list[float] = []
        unanswered: list[str] = []
        resent: set[str] = set()
        moments: dict[str, float] = {}
        crash_due = asyncio.Event()

        async def until_acknowledged(op: Op) -> None:
            give_up_at = time.monotonic() + GIVE_UP_S
            while True:
                try:
                    bank.results[op.key].append(await send(http, server.url, op))
                except NotAcknowledged as error:
                    unanswered.append(str(error))
                    resent.add(op.key)
                    assert time.monotonic() < give_up_at, f"never acknowledged: {unanswered[-3:]}"
                    await asyncio.sleep(RETRY_WAIT_S)
                    continue
                acknowledged_at.append(time.monotonic())
                if len(acknowledged_at) == CRASH_AFTER:
                    crash_due.set()
                return

        queue = list(reversed(ops))

        async def client() -> None:
            while queue:
                await until_acknowledged(queue.pop())

        async def failover() -> None:
            await crash_due.wait()
            moments["crashed"] = time.monotonic()
            await asyncio.to_thread(stack.stop_primary, "immediate")
            await asyncio.sleep(NO_PRIMARY_S)
            await asyncio.to_thread(stack.promote_standby)
            moments["promoted"] = time.monotonic()

        readiness = Readiness(http, server.url)
        poller = asyncio.create_task(readiness.poll())
        try:
            await asyncio.gather(failover(), *(client() for _ in range(CLIENTS)))
            # Ready again at once, and it stays so.
            await asyncio.sleep(5 * READINESS_POLL_S)
        finally:
            poller.cancel()
        ended = time.monotonic()

        # The crash came mid-load: requests went unanswered, and were sent again.
        assert resent, "no request failed: the crash did not come mid-load"
        assert len(queue) == 0 and len(acknowledged_at) == OPS
        # Every failure was told as such: UNAVAILABLE (HTTP 503) or a deadline, never a
        # masked internal error (post() fails the test on any other error).
        assert {reason.split(":")[0] for reason in unanswered} <= {"HTTP 503", "TIMEOUT"}
        assert any(reason.startswith("HTTP 503") for reason in unanswered)
        # Writes again without a restart, soon after the promotion.
        assert server.process is not None and server.process.poll() is None
        assert server.process.pid == pid
        after_promotion = [at for at in acknowledged_at if at >= moments["promoted"]]
        assert after_promotion, "no write was acknowledged after the promotion"
        recovered_s = after_promotion[0] - moments["promoted"]
        assert recovered_s < RECOVERY_BOUND_S
        # Not ready while no server took writes, ready before and after.
        assert readiness.between(0, moments["crashed"]) == {200}
        assert 503 in readiness.between(moments["crashed"], moments["promoted"])
        last = max(at for at, _ in readiness.answers)
        assert readiness.between(last, ended) == {200}
        # Every acknowledged movement exactly once, and nothing else; balances agree.
        await check_ledger(http, server.url, writable_url(stack), bank, ops)
    print(
        f"\nfailover: {len(unanswered)} answers UNAVAILABLE/TIMEOUT for {len(resent)} "
        f"movements, all sent again and applied once; writes again {recovered_s:.2f} s "
        "after the promotion"
    )


def _pids(stack: PostgresStack, application: str) -> set[Any]:
    with stack.primary.connect() as connection:
        rows = connection.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", [application]
        ).fetchall()
    return {row[0] for row in rows}


async def test_a_connection_to_a_server_that_turned_read_only_is_dropped(postgres_stack):
    """A primary demoted to read-only, as an old primary that comes back as a standby: a
    write on a pooled connection to it fails as StoreUnavailable (UNAVAILABLE to the
    client, not an internal error), and the pool closes that connection rather than keep
    it, so new ones go where target_session_attrs=read-write finds the writable server.
    /readyz says 503 meanwhile, though the server answers."""
    stack = postgres_stack
    application = "bankql-read-only-probe"
    url = f"{stack.primary.url()}?application_name={application}"
    app = create_app(settings_for(url))
    engine = app.state.engine
    users = UserService(
        sql_unit_of_work(make_session_factory(engine)), password_hashing(settings_for(url))
    )
    transport = httpx.ASGITransport(app=app)
    http = httpx.AsyncClient(transport=transport, base_url="http://bankql.test")
    try:
        assert (await http.get("/readyz")).status_code == 200
        [pooled] = _pids(stack, application)
        with stack.primary.connect() as connection:
            connection.execute("ALTER SYSTEM SET default_transaction_read_only = on")
            connection.execute("SELECT pg_reload_conf()")
        try:
            with pytest.raises(StoreUnavailable):
                await users.register(email="reader@example.com", password="a long password")
            deadline = time.monotonic() + 5
            while pooled in _pids(stack, application):
                assert time.monotonic() < deadline, "the pool kept the read-only connection"
                await asyncio.sleep(0.05)
            not_ready = await http.get("/readyz")
        finally:
            with stack.primary.connect() as connection:
                connection.execute("ALTER SYSTEM RESET default_transaction_read_only")
                connection.execute("SELECT pg_reload_conf()")
        assert not_ready.status_code == 503
        assert "no writable primary" in not_ready.json()["reason"]
        # Writable again: the pool opens a new connection and the write goes through.
        await asyncio.sleep(0.2)
        await users.register(email="writer@example.com", password="a long password")
        assert (await http.get("/readyz")).status_code == 200
    finally:
        await http.aclose()
        await engine.dispose()
        stack.empty_ledger()
