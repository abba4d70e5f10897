import pytest

from domain.errors import AccountNotFound, TransientConflict
from domain.model import AccountId, Actor, Role, UserId
from domain.money import Currency, Money
from domain.services import AccountService, MovementService
from domain.services.retry import MAX_ATTEMPTS, retrying
from tests.fakes import FakeUnitOfWork, FakeUnitOfWorkFactory

ALICE = Actor(UserId(1), Role.CUSTOMER)
EUR = Currency.of("EUR")


class Flaky:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise TransientConflict()
        return "done"


async def test_a_transient_conflict_is_retried_until_it_passes():
    flaky = Flaky(failures=MAX_ATTEMPTS - 1)
    assert await retrying(flaky, base_delay_s=0) == "done"
    assert flaky.calls == MAX_ATTEMPTS


async def test_retries_are_bounded_and_the_last_conflict_propagates():
    flaky = Flaky(failures=MAX_ATTEMPTS)
    with pytest.raises(TransientConflict):
        await retrying(flaky, base_delay_s=0)
    assert flaky.calls == MAX_ATTEMPTS


async def test_other_failures_are_not_retried():
    calls = 0

    async def refused():
        nonlocal calls
        calls += 1
        raise AccountNotFound(AccountId(1))

    with pytest.raises(AccountNotFound):
        await retrying(refused, base_delay_s=0)
    assert calls == 1


class ConflictingUnitOfWork(FakeUnitOfWork):
    """Fails its commit the way a deadlocked database transaction would."""

    conflicts_left = 0

    async def commit(self) -> None:
        if ConflictingUnitOfWork.conflicts_left > 0:
            ConflictingUnitOfWork.conflicts_left -= 1
            raise TransientConflict()
        await super().commit()


class ConflictingFactory(FakeUnitOfWorkFactory):
    def __call__(self, *, read_only: bool = False) -> FakeUnitOfWork:
        uow = ConflictingUnitOfWork(self.store, read_only=read_only)
        self.made.append(uow)
        return uow


async def test_a_movement_undone_by_the_database_is_applied_once_on_retry():
    uow = ConflictingFactory()
    account = await AccountService(uow).open_account(actor=ALICE, name="A", currency=EUR)
    ConflictingUnitOfWork.conflicts_left = 2
    await MovementService(uow).deposit(actor=ALICE, account_id=account.id, amount=Money(5, EUR))
    assert uow.store.accounts[account.id].balance == Money(5, EUR)
    assert len(uow.store.transactions) == 1


async def test_a_movement_that_keeps_conflicting_writes_nothing():
    uow = ConflictingFactory()
    account = await AccountService(uow).open_account(actor=ALICE, name="A", currency=EUR)
    ConflictingUnitOfWork.conflicts_left = MAX_ATTEMPTS
    with pytest.raises(TransientConflict):
        await MovementService(uow).deposit(actor=ALICE, account_id=account.id, amount=Money(5, EUR))
    assert uow.store.accounts[account.id].balance == Money(0, EUR)
    assert uow.store.transactions == {}
