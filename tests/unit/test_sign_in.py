"""Registration and sign-in: passwords checked outside every unit of work, failures throttled."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest

from domain.errors import HashingBusy, InvalidCredentials, SignInThrottled
from domain.services import UserService
from domain.throttle import SignInThrottle
from tests.fakes import FakePasswordHasher, FakeUnitOfWorkFactory

PASSWORD = "correct horse battery"
WRONG = "wrong horse battery"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class WatchingHasher(FakePasswordHasher):
    """Notes how many units of work were open at each hash and each check."""

    def __init__(self, uow: FakeUnitOfWorkFactory) -> None:
        super().__init__()
        self.uow = uow
        self.open_at_each_call: list[int] = []

    def _note(self) -> None:
        self.open_at_each_call.append(sum(hasattr(made, "working") for made in self.uow.made))

    async def hash(self, password: str) -> str:
        self._note()
        return await super().hash(password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        self._note()
        return await super().verify(password_hash, password)


class BusyHasher(FakePasswordHasher):
    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        raise HashingBusy(2)
        yield


@pytest.fixture
def uow() -> FakeUnitOfWorkFactory:
    return FakeUnitOfWorkFactory()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def users(uow, clock) -> UserService:
    service = UserService(uow, FakePasswordHasher(), SignInThrottle(free_failures=3), clock)
    await service.register(email="alice@example.com", password=PASSWORD)
    return service


async def test_no_unit_of_work_is_open_while_a_password_is_hashed_or_checked(uow):
    hasher = WatchingHasher(uow)
    users = UserService(uow, hasher)
    await users.register(email="alice@example.com", password=PASSWORD)
    await users.sign_in(email="alice@example.com", password=PASSWORD)
    with pytest.raises(InvalidCredentials):
        await users.sign_in(email="alice@example.com", password=WRONG)
    with pytest.raises(InvalidCredentials):
        await users.sign_in(email="nobody@example.com", password=PASSWORD)
    assert hasher.open_at_each_call == [0, 0, 0, 0]


async def test_the_watch_sees_a_unit_of_work_held_across_a_check(uow):
    hasher = WatchingHasher(uow)
    async with uow():
        await hasher.verify(None, PASSWORD)
    assert hasher.open_at_each_call == [1]


async def test_after_the_free_failures_each_attempt_waits_longer(users, clock, uow):
    for _ in range(3):
        with pytest.raises(InvalidCredentials):
            await users.sign_in(email="alice@example.com", password=WRONG)
    waits = []
    for _ in range(5):
        with pytest.raises(SignInThrottled) as throttled:
            await users.sign_in(email="ALICE@example.com", password=PASSWORD)
        waits.append(throttled.value.retry_after_s)
        clock.advance(throttled.value.retry_after_s)
        with pytest.raises(InvalidCredentials):
            await users.sign_in(email="alice@example.com", password=WRONG)
    assert waits == [1, 2, 4, 8, 16]
    assert uow.store.sign_in_failures["alice@example.com"].count == 8


async def test_the_right_password_after_the_wait_signs_in_and_forgets_the_failures(
    users, clock, uow
):
    for _ in range(3):
        with pytest.raises(InvalidCredentials):
            await users.sign_in(email="alice@example.com", password=WRONG)
    clock.advance(1)
    with pytest.raises(InvalidCredentials):
        await users.sign_in(email="alice@example.com", password=WRONG)
    with pytest.raises(SignInThrottled) as throttled:
        await users.sign_in(email="alice@example.com", password=PASSWORD)
    assert throttled.value.retry_after_s == 2
    clock.advance(2)
    assert (await users.sign_in(email="alice@example.com", password=PASSWORD)).user.email
    assert "alice@example.com" not in uow.store.sign_in_failures
    with pytest.raises(InvalidCredentials):  # counted from zero again, so not delayed
        await users.sign_in(email="alice@example.com", password=WRONG)


async def test_an_unknown_address_is_throttled_exactly_like_a_known_one(users):
    for email in ("alice@example.com", "nobody@example.com"):
        for _ in range(3):
            with pytest.raises(InvalidCredentials):
                await users.sign_in(email=email, password=WRONG)
        with pytest.raises(SignInThrottled) as throttled:
            await users.sign_in(email=email, password=WRONG)
        assert throttled.value.retry_after_s == 1


async def test_a_throttled_attempt_checks_no_password(uow, clock):
    hasher = FakePasswordHasher()
    users = UserService(uow, hasher, SignInThrottle(free_failures=1), clock)
    with pytest.raises(InvalidCredentials):
        await users.sign_in(email="a@example.com", password=WRONG)
    with pytest.raises(SignInThrottled):
        await users.sign_in(email="a@example.com", password=WRONG)
    assert hasher.checked == [WRONG]


async def test_failures_older_than_the_window_are_pruned(users, clock, uow):
    with pytest.raises(InvalidCredentials):
        await users.sign_in(email="old@example.com", password=WRONG)
    clock.advance(3601)
    with pytest.raises(InvalidCredentials):
        await users.sign_in(email="new@example.com", password=WRONG)
    assert set(uow.store.sign_in_failures) == {"new@example.com"}


async def test_an_attempt_refused_for_a_busy_hasher_costs_the_database_nothing(uow, clock):
    users = UserService(uow, BusyHasher(), SignInThrottle(free_failures=1), clock)
    for _ in range(3):
        with pytest.raises(HashingBusy):
            await users.sign_in(email="a@example.com", password=WRONG)
    with pytest.raises(HashingBusy):
        await users.register(email="b@example.com", password=PASSWORD)
    assert uow.made == []
