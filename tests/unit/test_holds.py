"""Holds and reversals as the domain and its services decide them, on in-memory storage."""

from datetime import UTC, datetime, timedelta

import pytest

from domain.errors import (
    AccountClosed,
    AccountHasPendingHolds,
    AccountNotFound,
    CaptureExceedsHold,
    CurrencyMismatch,
    Forbidden,
    HoldNotFound,
    HoldNotPending,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidInput,
    LedgerInvariantBroken,
    TransactionNotFound,
    TransactionNotReversible,
)
from domain.holds import Hold, HoldId, HoldStatus, hold_lifetime
from domain.ledger import TransactionKind
from domain.model import Actor, Role, UserId
from domain.money import Currency, Money
from domain.ports import PageRequest
from domain.services import AccountService, AuditService, HoldService, MovementService
from tests.fakes import FakeUnitOfWorkFactory

EUR, USD = Currency.of("EUR"), Currency.of("USD")
ALICE = Actor(UserId(1001), Role.CUSTOMER)
BOB = Actor(UserId(1002), Role.CUSTOMER)
ADMIN = Actor(UserId(1003), Role.ADMIN)
# Now, as the audit reads pending holds as of the real time.
START = datetime.now(UTC).replace(microsecond=0)


def eur(minor_units):
    return Money(minor_units, EUR)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def uow():
    return FakeUnitOfWorkFactory()


@pytest.fixture
def accounts(uow, clock):
    return AccountService(uow, clock=clock)


@pytest.fixture
def movements(uow, clock):
    return MovementService(uow, clock=clock)


@pytest.fixture
def holds(uow, clock):
    return HoldService(uow, longest_hold_s=30 * 24 * 3600, clock=clock)


async def funded(accounts, actor=ALICE, minor_units=10_000, currency=EUR):
    return await accounts.open_account(
        actor=actor, name="Main", currency=currency, initial_deposit=Money(minor_units, currency)
    )


async def audit_ok(uow):
    report = await AuditService(uow).audit(actor=ADMIN)
    return report.ok, report


# The hold itself


def a_hold(**changes):
    values = {
        "id": HoldId(1),
        "account_id": 1,
        "placed_by": UserId(1),
        "amount": eur(500),
        "captured": eur(0),
        "recorded_status": HoldStatus.PENDING,
        "destination_account_id": None,
        "description": None,
        "expires_at": START + timedelta(hours=1),
        "created_at": START,
        "resolved_at": None,
    }
    return Hold(**(values | changes))


def test_a_pending_hold_is_expired_from_its_expiry_on_with_nothing_recorded():
    hold = a_hold()
    assert hold.status_at(START + timedelta(minutes=59)) is HoldStatus.PENDING
    assert hold.pending_at(START) == eur(500)
    expiry = START + timedelta(hours=1)
    assert hold.status_at(expiry) is HoldStatus.EXPIRED
    assert hold.pending_at(expiry) == eur(0)
    assert hold.resolved_at_as_of(expiry) == expiry
    with pytest.raises(HoldNotPending) as refused:
        hold.capture(None, expiry)
    assert refused.value.status == "EXPIRED"


def test_a_capture_takes_at_most_the_amount_and_resolves_once():
    hold = a_hold()
    with pytest.raises(CaptureExceedsHold):
        hold.capture(eur(501), START)
    assert hold.capture(eur(200), START) == eur(200)
    assert (hold.status_at(START), hold.captured, hold.pending_at(START)) == (
        HoldStatus.CAPTURED,
        eur(200),
        eur(0),
    )
    with pytest.raises(HoldNotPending):
        hold.capture(None, START)
    with pytest.raises(HoldNotPending):
        hold.void(START)


def test_a_lifetime_defaults_to_seven_days_and_stays_within_the_longest():
    assert hold_lifetime(None, 30 * 86400) == timedelta(days=7)
    assert hold_lifetime(None, 3600) == timedelta(hours=1)
    assert hold_lifetime(60, 3600) == timedelta(minutes=1)
    for bad in (0, -1, 3601):
        with pytest.raises(InvalidInput) as refused:
            hold_lifetime(bad, 3600)
        assert refused.value.field == "expiresInSeconds"


async def test_spending_reserved_money_is_a_bug_the_account_refuses(accounts):
    account = await funded(accounts, minor_units=1000)
    account.reserved = 800
    with pytest.raises(InsufficientFunds) as refused:
        account.ensure_covers(eur(201))
    assert refused.value.available == eur(200)
    with pytest.raises(LedgerInvariantBroken):
        account.apply(eur(-201))


# Placing, capturing, voiding


async def test_a_hold_lowers_the_available_balance_not_the_balance(accounts, movements, holds, uow):
    account = await funded(accounts)
    placed = await holds.place(actor=ALICE, account_id=account.id, amount=eur(7000))
    assert placed.account.balance == eur(10_000)
    assert placed.account.available == eur(3000)
    assert (await holds.reserved(actor=ALICE, account_ids=[account.id])) == {account.id: 7000}
    with pytest.raises(InsufficientFunds) as refused:
        await movements.withdraw(actor=ALICE, account_id=account.id, amount=eur(3001))
    assert refused.value.available == eur(3000)
    other = await accounts.open_account(actor=ALICE, name="Other", currency=EUR)
    with pytest.raises(InsufficientFunds):
        await movements.transfer(
            actor=ALICE, source=account.id, destination=other.id, amount=eur(3001)
        )
    with pytest.raises(InsufficientFunds):
        await holds.place(actor=ALICE, account_id=account.id, amount=eur(3001))
    await movements.withdraw(actor=ALICE, account_id=account.id, amount=eur(3000))
    assert uow.store.accounts[account.id].balance == eur(7000)
    assert (await audit_ok(uow))[0]


async def test_a_partial_capture_moves_what_it_names_and_releases_the_rest(accounts, holds, uow):
    payer = await funded(accounts)
    shop = await accounts.open_account(actor=BOB, name="Shop", currency=EUR)
    placed = await holds.place(
        actor=ALICE, account_id=payer.id, amount=eur(5000), destination=shop.id, description="Hotel"
    )
    captured = await holds.capture(actor=ALICE, hold_id=placed.hold.id, amount=eur(4200))
    transaction = captured.movement.transaction
    assert (transaction.kind, transaction.amount, transaction.hold_id) == (
        TransactionKind.TRANSFER,
        eur(4200),
        placed.hold.id,
    )
    assert transaction.description == "Hotel"
    assert captured.hold.status_at(START) is HoldStatus.CAPTURED
    assert captured.hold.transaction_id == transaction.id
    assert uow.store.accounts[payer.id].balance == eur(5800)
    assert uow.store.accounts[shop.id].balance == eur(4200)
    assert (await holds.reserved(actor=ALICE, account_ids=[payer.id]))[payer.id] == 0
    with pytest.raises(HoldNotPending) as again:
        await holds.capture(actor=ALICE, hold_id=placed.hold.id)
    assert again.value.status == "CAPTURED"
    assert (await audit_ok(uow))[0]


async def test_a_capture_without_destination_is_a_withdrawal_of_all_it_holds(accounts, holds, uow):
    payer = await funded(accounts)
    placed = await holds.place(actor=ALICE, account_id=payer.id, amount=eur(2500))
    captured = await holds.capture(actor=ALICE, hold_id=placed.hold.id)
    assert captured.movement.transaction.kind is TransactionKind.WITHDRAWAL
    assert captured.movement.transaction.amount == eur(2500)
    assert uow.store.accounts[payer.id].balance == eur(7500)
    assert (await audit_ok(uow))[0]


async def test_capture_refusals(accounts, holds, uow):
    payer = await funded(accounts)
    placed = await holds.place(actor=ALICE, account_id=payer.id, amount=eur(1000))
    with pytest.raises(CaptureExceedsHold) as over:
        await holds.capture(actor=ALICE, hold_id=placed.hold.id, amount=eur(1001))
    assert (over.value.pending, over.value.requested) == (eur(1000), eur(1001))
    with pytest.raises(CurrencyMismatch):
        await holds.capture(actor=ALICE, hold_id=placed.hold.id, amount=Money(5, USD))
    with pytest.raises(HoldNotFound):
        await holds.capture(actor=BOB, hold_id=placed.hold.id)
    with pytest.raises(HoldNotFound):
        await holds.void(actor=BOB, hold_id=placed.hold.id)
    with pytest.raises(HoldNotFound):
        await holds.capture(actor=ALICE, hold_id=HoldId(999_999))
    assert uow.store.accounts[payer.id].balance == eur(10_000)
    assert uow.store.holds[placed.hold.id].recorded_status is HoldStatus.PENDING


async def test_a_void_releases_everything_once(accounts, holds, uow):
    payer = await funded(accounts)
    placed = await holds.place(actor=ALICE, account_id=payer.id, amount=eur(9000))
    voided = await holds.void(actor=ALICE, hold_id=placed.hold.id)
    assert voided.hold.status_at(START) is HoldStatus.VOIDED
    assert voided.account.available == eur(10_000)
    with pytest.raises(HoldNotPending) as again:
        await holds.void(actor=ALICE, hold_id=placed.hold.id)
    assert again.value.status == "VOIDED"
    assert uow.store.accounts[payer.id].balance == eur(10_000)


async def test_an_expired_hold_frees_its_money_with_no_job(accounts, movements, holds, clock):
    payer = await funded(accounts)
    placed = await holds.place(
        actor=ALICE, account_id=payer.id, amount=eur(10_000), expires_in_s=60
    )
    with pytest.raises(InsufficientFunds):
        await movements.withdraw(actor=ALICE, account_id=payer.id, amount=eur(1))
    clock.now = START + timedelta(seconds=60)
    await movements.withdraw(actor=ALICE, account_id=payer.id, amount=eur(1))
    with pytest.raises(HoldNotPending) as late:
        await holds.capture(actor=ALICE, hold_id=placed.hold.id)
    assert late.value.status == "EXPIRED"
    page = await holds.holds(
        actor=ALICE, account_id=payer.id, status=HoldStatus.EXPIRED, page=PageRequest(10)
    )
    assert [h.id for h in page.items] == [placed.hold.id]


async def test_place_refusals(accounts, holds, uow):
    payer = await funded(accounts)
    dollars = await funded(accounts, currency=USD)
    bobs = await accounts.open_account(actor=BOB, name="Bob", currency=USD)
    with pytest.raises(AccountNotFound):
        await holds.place(actor=BOB, account_id=payer.id, amount=eur(1))
    with pytest.raises(CurrencyMismatch):
        await holds.place(actor=ALICE, account_id=payer.id, amount=Money(1, USD))
    with pytest.raises(CurrencyMismatch):  # the actor's own account in another currency
        await holds.place(actor=ALICE, account_id=payer.id, amount=eur(1), destination=dollars.id)
    with pytest.raises(AccountNotFound):  # someone else's: nothing told about it
        await holds.place(actor=ALICE, account_id=payer.id, amount=eur(1), destination=bobs.id)
    with pytest.raises(InvalidInput):
        await holds.place(actor=ALICE, account_id=payer.id, amount=eur(1), destination=payer.id)
    with pytest.raises(InvalidInput):
        await holds.place(actor=ALICE, account_id=payer.id, amount=eur(1), expires_in_s=0)
    emptied = await accounts.open_account(actor=ALICE, name="Empty", currency=EUR)
    await accounts.close_account(actor=ALICE, account_id=emptied.id)
    with pytest.raises(AccountClosed):
        await holds.place(actor=ALICE, account_id=emptied.id, amount=eur(1))
    assert uow.store.holds == {}


async def test_the_same_key_places_one_hold_and_another_request_conflicts(accounts, holds, uow):
    payer = await funded(accounts)
    request = {"actor": ALICE, "account_id": payer.id, "idempotency_key": "k"}
    first = await holds.place(amount=eur(100), **request)
    again = await holds.place(amount=eur(100), **request)
    assert again.hold.id == first.hold.id
    assert len(uow.store.holds) == 1
    with pytest.raises(IdempotencyConflict):
        await holds.place(amount=eur(101), **request)


async def test_an_account_with_pending_holds_cannot_close(accounts, movements, holds):
    payer = await funded(accounts, minor_units=100)
    placed = await holds.place(actor=ALICE, account_id=payer.id, amount=eur(100))
    with pytest.raises(AccountHasPendingHolds):
        await accounts.close_account(actor=ALICE, account_id=payer.id)
    await holds.capture(actor=ALICE, hold_id=placed.hold.id)
    closed = await accounts.close_account(actor=ALICE, account_id=payer.id)
    assert closed.status.value == "CLOSED"


async def test_holds_of_another_customers_account_are_invisible(accounts, holds):
    payer = await funded(accounts)
    placed = await holds.place(actor=ALICE, account_id=payer.id, amount=eur(100))
    assert await holds.holds_by_ids(actor=BOB, hold_ids=[placed.hold.id]) == {}
    assert placed.hold.id in await holds.holds_by_ids(actor=ADMIN, hold_ids=[placed.hold.id])
    page = await holds.holds(actor=BOB, account_id=payer.id, status=None, page=PageRequest(5))
    assert page.items == []
    assert await holds.reserved(actor=BOB, account_ids=[payer.id]) == {}


# The audit


async def test_the_audit_finds_a_hold_captured_twice_and_an_overheld_account(accounts, holds, uow):
    payer = await funded(accounts)
    placed = await holds.place(actor=ALICE, account_id=payer.id, amount=eur(100))
    await holds.capture(actor=ALICE, hold_id=placed.hold.id)
    assert (await audit_ok(uow))[0]
    # A second capture forged past the service: the audit names the hold.
    stored = uow.store.holds[placed.hold.id]
    stored.recorded_status = HoldStatus.PENDING
    stored.captured = eur(0)
    await holds.capture(actor=ALICE, hold_id=placed.hold.id)
    ok, report = await audit_ok(uow)
    assert not ok and report.faulty_hold_ids == [placed.hold.id]

    other = await funded(accounts, minor_units=500)
    held = await holds.place(actor=ALICE, account_id=other.id, amount=eur(400))
    uow.store.holds[held.hold.id].amount = eur(501)  # more reserved than the balance
    ok, report = await audit_ok(uow)
    assert other.id in report.mismatched_account_ids


# Reversals


async def test_a_reversal_moves_the_amount_back_once(accounts, movements, uow):
    source = await funded(accounts)
    target = await accounts.open_account(actor=BOB, name="B", currency=EUR)
    sent = await movements.transfer(
        actor=ALICE, source=source.id, destination=target.id, amount=eur(3000)
    )
    undone = await movements.reverse(actor=ADMIN, transaction_id=sent.transaction.id)
    reversal = undone.transaction
    assert (reversal.kind, reversal.amount, reversal.reverses_id) == (
        TransactionKind.REVERSAL,
        eur(3000),
        sent.transaction.id,
    )
    assert (reversal.source_account_id, reversal.destination_account_id) == (target.id, source.id)
    assert uow.store.accounts[source.id].balance == eur(10_000)
    assert uow.store.accounts[target.id].balance == eur(0)
    with pytest.raises(TransactionNotReversible):
        await movements.reverse(actor=ADMIN, transaction_id=sent.transaction.id)
    with pytest.raises(TransactionNotReversible):
        await movements.reverse(actor=ADMIN, transaction_id=reversal.id)
    assert (await audit_ok(uow))[0]


async def test_reversal_refusals(accounts, movements, holds, uow):
    account = await funded(accounts, minor_units=1000)
    deposit = await movements.deposit(actor=ALICE, account_id=account.id, amount=eur(500))
    with pytest.raises(Forbidden):
        await movements.reverse(actor=ALICE, transaction_id=deposit.transaction.id)
    from domain.ledger import TransactionId

    with pytest.raises(TransactionNotFound):
        await movements.reverse(actor=ADMIN, transaction_id=TransactionId(999_999))
    await holds.place(actor=ALICE, account_id=account.id, amount=eur(1200))
    with pytest.raises(InsufficientFunds) as short:
        await movements.reverse(actor=ADMIN, transaction_id=deposit.transaction.id)
    assert short.value.available == eur(300)
    withdrawal = await movements.withdraw(actor=ALICE, account_id=account.id, amount=eur(300))
    assert uow.store.accounts[account.id].balance == eur(1200)
    # A withdrawal's money comes back, even into an account whose holds reserve it all.
    await movements.reverse(actor=ADMIN, transaction_id=withdrawal.transaction.id)
    assert uow.store.accounts[account.id].balance == eur(1500)
    assert (await audit_ok(uow))[0]


async def test_a_closed_account_refuses_a_reversal(accounts, movements, uow):
    account = await funded(accounts, minor_units=1000)
    withdrawal = await movements.withdraw(actor=ALICE, account_id=account.id, amount=eur(1000))
    await accounts.close_account(actor=ALICE, account_id=account.id)
    with pytest.raises(AccountClosed):
        await movements.reverse(actor=ADMIN, transaction_id=withdrawal.transaction.id)


async def test_a_capture_can_be_reversed(accounts, movements, holds, uow):
    payer = await funded(accounts)
    placed = await holds.place(actor=ALICE, account_id=payer.id, amount=eur(4000))
    captured = await holds.capture(actor=ALICE, hold_id=placed.hold.id)
    await movements.reverse(actor=ADMIN, transaction_id=captured.movement.transaction.id)
    assert uow.store.accounts[payer.id].balance == eur(10_000)
    assert (await audit_ok(uow))[0]


# Statement periods


def test_a_period_runs_forward_and_no_longer_than_the_longest_statement(uow):
    service = AccountService(uow, longest_statement_days=31)
    service.check_period(START, START)  # empty, and fine
    service.check_period(START, START + timedelta(days=31))
    for end in (START - timedelta(microseconds=1), START + timedelta(days=31, microseconds=1)):
        with pytest.raises(InvalidInput) as refused:
            service.check_period(START, end)
        assert refused.value.field == "to"


async def test_a_statement_of_another_customers_account_is_none(accounts):
    account = await funded(accounts)
    later = START + timedelta(days=1)
    found = await accounts.statement_summary(
        actor=BOB, account_id=account.id, start=START, end=later
    )
    assert found is None
    assert await accounts.balances_at(actor=BOB, account_ids=[account.id], at=later) == {}
