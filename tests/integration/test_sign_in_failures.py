"""Failed sign-ins live in the database, so that every server process applies one delay."""

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from domain.errors import InvalidCredentials, SignInThrottled
from domain.services import UserService
from domain.throttle import SignInThrottle
from persistence.database import make_engine, make_session_factory
from persistence.passwords import PasswordHashing
from persistence.unit_of_work import SqlUnitOfWork

PASSWORD = "correct horse battery"
WRONG = "wrong horse battery"


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def service(engine, clock, free_failures=3) -> UserService:
    sessions = make_session_factory(engine)
    return UserService(
        lambda read_only=False: SqlUnitOfWork(sessions, read_only=read_only),
        PasswordHashing(1, 64, 1, max_concurrent=4),
        SignInThrottle(free_failures=free_failures),
        clock,
    )


@pytest.fixture
async def two_processes(database_url, engine, clock) -> AsyncIterator[list[UserService]]:
    """Two services on two engines of one database, as two server processes would have."""
    other = make_engine(database_url)
    yield [service(engine, clock), service(other, clock)]
    await other.dispose()


async def stored(engine) -> dict[str, int]:
    async with engine.connect() as connection:
        rows = await connection.execute(text("SELECT email, failures FROM sign_in_failures"))
        return dict(rows.all())


async def test_failures_on_one_process_delay_the_next_attempt_on_the_other(
    two_processes, engine, clock
):
    first, second = two_processes
    await first.register(email="alice@example.com", password=PASSWORD)
    for n in range(3):
        with pytest.raises(InvalidCredentials):
            await two_processes[n % 2].sign_in(email="alice@example.com", password=WRONG)
    assert await stored(engine) == {"alice@example.com": 3}
    waits = []
    for _ in range(3):
        with pytest.raises(SignInThrottled) as throttled:
            await second.sign_in(email="Alice@Example.com", password=PASSWORD)
        waits.append(throttled.value.retry_after_s)
        clock.now += timedelta(seconds=throttled.value.retry_after_s)
        with pytest.raises(InvalidCredentials):
            await first.sign_in(email="alice@example.com", password=WRONG)
    assert waits == [1, 2, 4]
    with pytest.raises(SignInThrottled) as throttled:
        await first.sign_in(email="alice@example.com", password=PASSWORD)
    clock.now += timedelta(seconds=throttled.value.retry_after_s)
    assert (await second.sign_in(email="alice@example.com", password=PASSWORD)).user.email
    assert await stored(engine) == {}


async def test_attempts_arriving_together_cannot_all_slip_past_the_delay(two_processes, engine):
    await two_processes[0].register(email="alice@example.com", password=PASSWORD)
    outcomes = await asyncio.gather(
        *(
            two_processes[n % 2].sign_in(email="alice@example.com", password=WRONG)
            for n in range(10)
        ),
        return_exceptions=True,
    )
    kinds = Counter(type(outcome).__name__ for outcome in outcomes)
    assert kinds == {"InvalidCredentials": 3, "SignInThrottled": 7}
    assert await stored(engine) == {"alice@example.com": 3}


async def test_addresses_whose_last_failure_is_an_hour_old_are_forgotten(
    two_processes, engine, clock
):
    first, _ = two_processes
    for email in ("old@example.com", "old@example.com", "recent@example.com"):
        with pytest.raises(InvalidCredentials):
            await first.sign_in(email=email, password=WRONG)
    assert await stored(engine) == {"old@example.com": 2, "recent@example.com": 1}
    clock.now += timedelta(hours=1, seconds=1)
    with pytest.raises(InvalidCredentials):
        await first.sign_in(email="new@example.com", password=WRONG)
    assert await stored(engine) == {"new@example.com": 1}
