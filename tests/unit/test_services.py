import pytest

from domain.errors import (
    AccountClosed,
    AccountNotFound,
    BalanceOverLimit,
    CurrencyMismatch,
    EmailAlreadyRegistered,
    Forbidden,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidCredentials,
    InvalidInput,
    InvalidValue,
    MovementOverLimit,
    SameAccountTransfer,
)
from domain.ledger import TransactionKind
from domain.limits import MoneyLimits
from domain.model import AccountId, AccountStatus, Actor, Role, SessionId, UserId
from domain.money import MAX_MINOR_UNITS, Currency, Money
from domain.ports import PageRequest
from domain.services import (
    AccountService,
    AuditService,
    MovementService,
    SessionService,
    UserService,
)
from tests.fakes import FakePasswordHasher, FakeUnitOfWorkFactory

EUR, USD = Currency.of("EUR"), Currency.of("USD")
ALICE = Actor(UserId(1001), Role.CUSTOMER)
BOB = Actor(UserId(1002), Role.CUSTOMER)
ADMIN = Actor(UserId(1003), Role.ADMIN)


def eur(minor_units):
    return Money(minor_units, EUR)


@pytest.fixture
def uow():
    return FakeUnitOfWorkFactory()


@pytest.fixture
def accounts(uow):
    return AccountService(uow)


@pytest.fixture
def movements(uow):
    return MovementService(uow)


def balances(uow):
    return {a.id: a.balance.minor_units for a in uow.store.accounts.values()}


def funding_balance(uow, currency=EUR):
    """What the bank's funding account holds: the sum of its lines, as it stores no balance."""
    funding = uow.store.funding[currency]
    lines = [line for line in uow.store.entries.values() if line.account_id == funding.id]
    assert all(line.balance_after is None for line in lines)
    return sum(line.amount.minor_units for line in lines)


async def test_opening_with_an_initial_deposit_records_a_deposit(uow, accounts):
    account = await accounts.open_account(
        actor=ALICE, name="Main", currency=EUR, initial_deposit=eur(1050)
    )
    assert account.balance == eur(1050)
    [transaction] = uow.store.transactions.values()
    assert transaction.kind is TransactionKind.DEPOSIT
    assert transaction.destination_account_id == account.id
    assert funding_balance(uow) == -1050
    assert uow.commits == 1


async def test_opening_with_zero_records_no_transaction(uow, accounts):
    await accounts.open_account(actor=ALICE, name="Main", currency=EUR, initial_deposit=eur(0))
    assert uow.store.transactions == {}


async def test_a_negative_initial_deposit_opens_nothing(uow, accounts):
    with pytest.raises(InvalidValue):
        await accounts.open_account(actor=ALICE, name="Main", currency=EUR, initial_deposit=eur(-1))
    assert uow.store.accounts == {}


async def test_deposit_withdraw_and_transfer_keep_every_unit_of_money(uow, accounts, movements):
    a = await accounts.open_account(actor=ALICE, name="A", currency=EUR)
    b = await accounts.open_account(actor=ALICE, name="B", currency=EUR)
    await movements.deposit(actor=ALICE, account_id=a.id, amount=eur(1000))
    await movements.transfer(actor=ALICE, source=a.id, destination=b.id, amount=eur(300))
    movement = await movements.withdraw(actor=ALICE, account_id=b.id, amount=eur(100))
    assert balances(uow) == {a.id: 700, b.id: 200}
    assert funding_balance(uow) == -900
    assert movement.source is not None and movement.source.balance == eur(200)
    assert movement.destination is None
    assert sum(e.amount.minor_units for e in uow.store.entries.values()) == 0


async def test_an_overdraft_moves_nothing_and_commits_nothing(uow, accounts, movements):
    a = await accounts.open_account(actor=ALICE, name="A", currency=EUR, initial_deposit=eur(100))
    commits = uow.commits
    with pytest.raises(InsufficientFunds):
        await movements.withdraw(actor=ALICE, account_id=a.id, amount=eur(101))
    assert balances(uow) == {a.id: 100}
    assert uow.commits == commits


async def test_someone_elses_account_looks_like_no_account(uow, accounts, movements):
    a = await accounts.open_account(actor=ALICE, name="A", currency=EUR, initial_deposit=eur(100))
    with pytest.raises(AccountNotFound):
        await movements.withdraw(actor=BOB, account_id=a.id, amount=eur(1))
    with pytest.raises(AccountNotFound):
        await accounts.rename_account(actor=BOB, account_id=a.id, name="mine")
    assert await accounts.account(actor=BOB, account_id=a.id) is None
    assert (await accounts.account(actor=ADMIN, account_id=a.id)) is not None


async def test_a_transfer_may_credit_another_owners_account_but_not_show_it(accounts, movements):
    a = await accounts.open_account(actor=ALICE, name="A", currency=EUR, initial_deposit=eur(100))
    b = await accounts.open_account(actor=BOB, name="B", currency=EUR)
    movement = await movements.transfer(actor=ALICE, source=a.id, destination=b.id, amount=eur(40))
    assert movement.source is not None and movement.destination is None
    statement = await accounts.statement(actor=BOB, account_id=b.id, page=PageRequest(10))
    assert [e.amount for e in statement.items] == [eur(40)]


async def test_transfers_to_the_same_or_a_missing_account_are_refused(accounts, movements):
    a = await accounts.open_account(actor=ALICE, name="A", currency=EUR, initial_deposit=eur(100))
    with pytest.raises(SameAccountTransfer):
        await movements.transfer(actor=ALICE, source=a.id, destination=a.id, amount=eur(1))
    with pytest.raises(AccountNotFound) as caught:
        await movements.transfer(
            actor=ALICE, source=a.id, destination=AccountId(999), amount=eur(1)
        )
    assert caught.value.account_id == 999


async def foreign_accounts(uow, accounts):
    """Accounts Alice may not read, one of each kind, and Alice's own account with 100."""
    mine = await accounts.open_account(
        actor=ALICE, name="A", currency=EUR, initial_deposit=eur(100)
    )
    closed = await accounts.open_account(actor=BOB, name="Closed", currency=EUR)
    await accounts.close_account(actor=BOB, account_id=closed.id)
    dollars = await accounts.open_account(actor=BOB, name="Dollars", currency=USD)
    full = await accounts.open_account(actor=BOB, name="Full", currency=EUR)
    uow.store.accounts[full.id].balance = eur(MAX_MINOR_UNITS)  # one more cent overflows it
    [funding] = [account.id for account in uow.store.funding.values()]
    return mine, [closed.id, dollars.id, full.id, funding, AccountId(999)]


async def test_a_destination_the_sender_may_not_read_is_refused_as_if_it_did_not_exist(
    uow, accounts, movements
):
    mine, foreign = await foreign_accounts(uow, accounts)
    commits, before = uow.commits, balances(uow)
    for destination in foreign:
        with pytest.raises(AccountNotFound) as caught:
            await movements.transfer(
                actor=ALICE, source=mine.id, destination=destination, amount=eur(1)
            )
        assert (caught.value.account_id, caught.value.message) == (destination, "No such account.")
    assert (uow.commits, balances(uow)) == (commits, before)


async def test_the_senders_own_refusals_come_before_anything_about_the_destination(
    uow, accounts, movements
):
    mine, foreign = await foreign_accounts(uow, accounts)
    shut = await accounts.open_account(actor=ALICE, name="Shut", currency=EUR)
    await accounts.close_account(actor=ALICE, account_id=shut.id)
    for destination in foreign:
        for source, amount, refusal in [
            (shut.id, eur(1), AccountClosed),
            (mine.id, Money(1, USD), CurrencyMismatch),
            (mine.id, eur(101), InsufficientFunds),
        ]:
            with pytest.raises(refusal):
                await movements.transfer(
                    actor=ALICE, source=source, destination=destination, amount=amount
                )


async def test_a_destination_the_sender_may_read_keeps_its_own_refusals(uow, accounts, movements):
    bobs = await accounts.open_account(actor=BOB, name="B", currency=EUR)
    await accounts.close_account(actor=BOB, account_id=bobs.id)
    mine = await accounts.open_account(actor=ADMIN, name="A", currency=EUR, initial_deposit=eur(5))
    dollars = await accounts.open_account(actor=ADMIN, name="D", currency=USD)
    # An administrator reads every customer account, so sees why a transfer was refused.
    with pytest.raises(AccountClosed):
        await movements.transfer(actor=ADMIN, source=mine.id, destination=bobs.id, amount=eur(1))
    with pytest.raises(CurrencyMismatch):
        await movements.transfer(actor=ADMIN, source=mine.id, destination=dollars.id, amount=eur(1))


async def test_currency_and_closed_checks(accounts, movements):
    a = await accounts.open_account(actor=ALICE, name="A", currency=EUR, initial_deposit=eur(100))
    d = await accounts.open_account(actor=ALICE, name="D", currency=USD)
    with pytest.raises(CurrencyMismatch):
        await movements.deposit(actor=ALICE, account_id=a.id, amount=Money(5, USD))
    with pytest.raises(CurrencyMismatch):
        await movements.transfer(actor=ALICE, source=a.id, destination=d.id, amount=eur(5))
    await accounts.close_account(actor=ALICE, account_id=d.id)
    with pytest.raises(AccountClosed):
        await movements.deposit(actor=ALICE, account_id=d.id, amount=Money(5, USD))


@pytest.mark.parametrize("amount", [0, -5])
async def test_movements_need_a_positive_amount(accounts, movements, amount):
    a = await accounts.open_account(actor=ALICE, name="A", currency=EUR)
    with pytest.raises(InvalidValue):
        await movements.deposit(actor=ALICE, account_id=a.id, amount=eur(amount))


async def test_a_retried_key_replays_the_first_transaction(uow, accounts, movements):
    a = await accounts.open_account(actor=ALICE, name="A", currency=EUR)
    first = await movements.deposit(
        actor=ALICE, account_id=a.id, amount=eur(5), idempotency_key="k"
    )
    again = await movements.deposit(
        actor=ALICE, account_id=a.id, amount=eur(5), idempotency_key="k"
    )
    assert again.transaction == first.transaction
    assert balances(uow) == {a.id: 5}
    with pytest.raises(IdempotencyConflict):
        await movements.deposit(actor=ALICE, account_id=a.id, amount=eur(6), idempotency_key="k")
    with pytest.raises(IdempotencyConflict):
        await movements.deposit(
            actor=ALICE, account_id=a.id, amount=eur(5), idempotency_key="k", description="other"
        )


async def test_a_key_refused_with_an_error_can_be_used_again(uow, accounts, movements):
    a = await accounts.open_account(actor=ALICE, name="A", currency=EUR)
    with pytest.raises(InsufficientFunds):
        await movements.withdraw(actor=ALICE, account_id=a.id, amount=eur(5), idempotency_key="k")
    await movements.deposit(actor=ALICE, account_id=a.id, amount=eur(5), idempotency_key="k")
    assert balances(uow) == {a.id: 5}


async def test_keys_belong_to_one_user(uow, accounts, movements):
    a = await accounts.open_account(actor=ALICE, name="A", currency=EUR)
    b = await accounts.open_account(actor=BOB, name="B", currency=EUR)
    await movements.deposit(actor=ALICE, account_id=a.id, amount=eur(5), idempotency_key="k")
    await movements.deposit(actor=BOB, account_id=b.id, amount=eur(7), idempotency_key="k")
    assert balances(uow) == {a.id: 5, b.id: 7}


async def test_closing_needs_an_empty_account_and_is_final(accounts, movements):
    a = await accounts.open_account(actor=ALICE, name="A", currency=EUR, initial_deposit=eur(1))
    await movements.withdraw(actor=ALICE, account_id=a.id, amount=eur(1))
    closed = await accounts.close_account(actor=ALICE, account_id=a.id)
    assert closed.status is AccountStatus.CLOSED
    with pytest.raises(AccountClosed):
        await accounts.close_account(actor=ALICE, account_id=a.id)


async def test_listing_pages_through_own_accounts_and_admins_see_all(accounts):
    mine = [await accounts.open_account(actor=ALICE, name=f"A{i}", currency=EUR) for i in range(3)]
    await accounts.open_account(actor=BOB, name="B", currency=EUR)
    first = await accounts.accounts(actor=ALICE, status=None, page=PageRequest(2))
    assert [a.id for a in first.items] == [mine[0].id, mine[1].id]
    assert first.has_next and not first.has_previous
    rest = await accounts.accounts(actor=ALICE, status=None, page=PageRequest(2, mine[1].id))
    assert [a.id for a in rest.items] == [mine[2].id] and not rest.has_next and rest.has_previous
    everyone = PageRequest(0)
    assert (await accounts.accounts(actor=ADMIN, status=None, page=everyone)).total == 4
    assert (
        await accounts.accounts(actor=BOB, status=None, page=everyone, owner_id=ALICE.user_id)
    ).total == 0


async def test_several_owners_accounts_come_a_page_each_and_only_where_the_actor_may_list(
    accounts,
):
    alices = [
        await accounts.open_account(actor=ALICE, name=f"A{i}", currency=EUR) for i in range(3)
    ]
    bobs = await accounts.open_account(actor=BOB, name="B", currency=EUR)
    owners = [ALICE.user_id, BOB.user_id]
    seen = await accounts.accounts_of_owners(
        actor=ADMIN, owner_ids=owners, status=None, page=PageRequest(2)
    )
    assert [a.id for a in seen[ALICE.user_id].items] == [alices[0].id, alices[1].id]
    assert seen[ALICE.user_id].has_next and seen[ALICE.user_id].total == 3
    assert [a.id for a in seen[BOB.user_id].items] == [bobs.id] and seen[BOB.user_id].total == 1
    as_bob = await accounts.accounts_of_owners(
        actor=BOB, owner_ids=owners, status=None, page=PageRequest(2)
    )
    assert as_bob[ALICE.user_id].items == [] and as_bob[ALICE.user_id].total == 0
    assert [a.id for a in as_bob[BOB.user_id].items] == [bobs.id]


async def test_registration_normalises_the_email_and_refuses_a_second_account(uow):
    users = UserService(uow, FakePasswordHasher())
    user = await users.register(email=" Alice@Example.COM ", password="correct horse 1")
    assert user.email == "alice@example.com" and user.role is Role.CUSTOMER
    with pytest.raises(EmailAlreadyRegistered):
        await users.register(email="ALICE@example.com", password="another password")
    assert len(uow.store.users) == 1


@pytest.mark.parametrize(
    ("email", "password", "field"),
    [
        ("not-an-email", "long enough pw", "email"),
        ("a@example.com", "short", "password"),
        ("a@example.com", "x" * 257, "password"),
        ("", "long enough pw", "email"),
    ],
)
async def test_registration_refuses_bad_emails_and_passwords(uow, email, password, field):
    with pytest.raises(InvalidInput) as caught:
        await UserService(uow, FakePasswordHasher()).register(email=email, password=password)
    assert caught.value.field == field
    assert uow.store.users == {}


async def test_sign_in_gives_the_same_refusal_for_a_wrong_password_and_an_unknown_email(uow):
    users = UserService(uow, FakePasswordHasher())
    await users.register(email="alice@example.com", password="correct horse 1")
    assert (await users.sign_in(email="ALICE@example.com", password="correct horse 1")).user.email
    with pytest.raises(InvalidCredentials) as wrong_password:
        await users.sign_in(email="alice@example.com", password="wrong horse 11")
    with pytest.raises(InvalidCredentials) as unknown_email:
        await users.sign_in(email="nobody@example.com", password="correct horse 1")
    assert wrong_password.value.message == unknown_email.value.message


async def test_only_administrators_may_audit(uow):
    with pytest.raises(Forbidden):
        await AuditService(uow).audit(actor=ALICE)
    assert (await AuditService(uow).audit(actor=ADMIN)).ok


async def test_users_see_themselves_and_administrators_see_everyone(uow):
    users = UserService(uow, FakePasswordHasher())
    alice = await users.register(email="alice@example.com", password="correct horse 1")
    me = Actor(alice.id, Role.CUSTOMER)
    assert await users.user(actor=me, user_id=alice.id) == alice
    assert await users.user(actor=BOB, user_id=alice.id) is None
    assert await users.user(actor=ADMIN, user_id=alice.id) == alice
    session = (await SessionService(uow).start(alice, user_agent=None)).session
    assert await users.actor(alice.id, session.id) == me
    assert await users.actor(UserId(424242), session.id) is None
    assert await users.actor(alice.id, SessionId(424242)) is None


async def test_one_customer_at_the_largest_balance_leaves_room_for_everyone(uow, accounts):
    movements = MovementService(uow)
    full = await accounts.open_account(
        actor=ALICE, name="A", currency=EUR, initial_deposit=eur(MAX_MINOR_UNITS)
    )
    with pytest.raises(BalanceOverLimit):
        await movements.deposit(actor=ALICE, account_id=full.id, amount=eur(1))
    b = await accounts.open_account(actor=BOB, name="B", currency=EUR)
    await movements.deposit(actor=BOB, account_id=b.id, amount=eur(1))
    c = await accounts.open_account(
        actor=BOB, name="C", currency=EUR, initial_deposit=eur(MAX_MINOR_UNITS)
    )
    assert balances(uow) == {full.id: MAX_MINOR_UNITS, b.id: 1, c.id: MAX_MINOR_UNITS}
    assert funding_balance(uow) == -(2 * MAX_MINOR_UNITS + 1)
    assert (await AuditService(uow).audit(actor=ADMIN)).ok


LIMITS = MoneyLimits(max_movement=100, max_balance=150)  # 100.00 and 150.00 EUR


async def test_a_movement_over_the_limit_changes_nothing(uow):
    accounts, movements = AccountService(uow, LIMITS), MovementService(uow, LIMITS)
    with pytest.raises(MovementOverLimit) as caught:
        await accounts.open_account(actor=ALICE, name="A", currency=EUR, initial_deposit=eur(10001))
    assert caught.value.limit == eur(10000)
    assert uow.store.accounts == {}
    a = await accounts.open_account(actor=ALICE, name="A", currency=EUR, initial_deposit=eur(10000))
    b = await accounts.open_account(actor=ALICE, name="B", currency=EUR)
    commits = uow.commits
    for refused in (
        movements.deposit(actor=ALICE, account_id=a.id, amount=eur(10001)),
        movements.withdraw(actor=ALICE, account_id=a.id, amount=eur(10001)),
        movements.transfer(actor=ALICE, source=a.id, destination=b.id, amount=eur(10001)),
        # The limit comes before the account is looked up, as a ValidationError comes first.
        movements.deposit(actor=ALICE, account_id=AccountId(999), amount=eur(10001)),
    ):
        with pytest.raises(MovementOverLimit):
            await refused
    assert balances(uow) == {a.id: 10000, b.id: 0}
    assert uow.commits == commits


async def test_a_credit_beyond_the_largest_balance_changes_nothing(uow):
    accounts, movements = AccountService(uow, LIMITS), MovementService(uow, LIMITS)
    a = await accounts.open_account(actor=ALICE, name="A", currency=EUR, initial_deposit=eur(10000))
    b = await accounts.open_account(actor=BOB, name="B", currency=EUR, initial_deposit=eur(10000))
    own = await accounts.open_account(
        actor=ALICE, name="Own", currency=EUR, initial_deposit=eur(6000)
    )
    commits = uow.commits
    with pytest.raises(BalanceOverLimit) as caught:
        await movements.deposit(actor=ALICE, account_id=a.id, amount=eur(5001))
    assert (caught.value.account_id, caught.value.limit) == (a.id, eur(15000))
    # To a sender who may not read it, a full account looks like none at all.
    with pytest.raises(AccountNotFound):
        await movements.transfer(actor=BOB, source=b.id, destination=a.id, amount=eur(5001))
    with pytest.raises(BalanceOverLimit):
        await movements.transfer(actor=ALICE, source=own.id, destination=a.id, amount=eur(5001))
    assert balances(uow) == {a.id: 10000, b.id: 10000, own.id: 6000}
    assert uow.commits == commits
    await movements.deposit(actor=ALICE, account_id=a.id, amount=eur(5000))
    assert balances(uow) == {a.id: 15000, b.id: 10000, own.id: 6000}


async def test_a_replay_is_answered_even_after_the_limit_is_lowered(uow, accounts):
    a = await accounts.open_account(actor=ALICE, name="A", currency=EUR)
    first = await MovementService(uow).deposit(
        actor=ALICE, account_id=a.id, amount=eur(50000), idempotency_key="k"
    )
    again = await MovementService(uow, LIMITS).deposit(
        actor=ALICE, account_id=a.id, amount=eur(50000), idempotency_key="k"
    )
    assert again.transaction == first.transaction
    assert balances(uow) == {a.id: 50000}
