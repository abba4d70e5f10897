"""The database itself guards the ledger: append-only history, no negative customer balance."""

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError

from domain.errors import DuplicateRequest, EmailAlreadyRegistered
from domain.ledger import Idempotency, TransactionKind, move
from domain.limits import MoneyLimits
from domain.model import AccountId, Actor
from domain.money import Currency, Money
from domain.ports import PageRequest
from domain.services import AccountService, EntryWatch, MovementService, UserService
from persistence.passwords import PasswordHashing

EUR = Currency.of("EUR")


async def funded_account(uow_factory, amount=1000):
    user = await UserService(uow_factory, PasswordHashing(1, 64, 1)).register(
        email=f"owner{amount}@example.com", password="long enough password"
    )
    actor = Actor(user.id, user.role)
    account = await AccountService(uow_factory).open_account(
        actor=actor, name="A", currency=EUR, initial_deposit=Money(amount, EUR)
    )
    return actor, account


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE transactions SET amount = amount + 1",
        "DELETE FROM transactions",
        "UPDATE entries SET amount = amount + 1",
        "DELETE FROM entries",
    ],
)
async def test_ledger_rows_cannot_be_updated_or_deleted(engine, uow_factory, statement):
    await funded_account(uow_factory)
    with pytest.raises(DBAPIError, match="append-only"):
        async with engine.begin() as connection:
            await connection.execute(text(statement))


async def test_the_database_refuses_a_negative_customer_balance(engine, uow_factory):
    await funded_account(uow_factory)
    with pytest.raises(IntegrityError):
        async with engine.begin() as connection:
            await connection.execute(
                text("UPDATE accounts SET balance = -1 WHERE kind = 'CUSTOMER'")
            )


async def test_one_key_per_user_is_enforced_by_the_database(uow_factory):
    actor, account = await funded_account(uow_factory)

    async def deposit_with_the_same_key() -> None:
        async with uow_factory() as uow:
            [locked] = (await uow.accounts.lock([account.id])).values()
            funding = await uow.accounts.funding(EUR)
            new = move(
                TransactionKind.DEPOSIT,
                debit=funding,
                credit=locked,
                amount=Money(1, EUR),
                actor_id=actor.user_id,
                description=None,
                idempotency=Idempotency("same-key", "digest"),
                limits=MoneyLimits(),
            )
            await uow.transactions.record(new)
            await uow.commit()

    await deposit_with_the_same_key()
    # The lookup in code is skipped on purpose: the constraint alone must refuse it.
    with pytest.raises(DuplicateRequest):
        await deposit_with_the_same_key()


async def test_uncommitted_work_is_rolled_back(uow_factory):
    _, account = await funded_account(uow_factory)
    async with uow_factory() as uow:
        [locked] = (await uow.accounts.lock([account.id])).values()
        locked.rename("Never saved")
        await uow.accounts.save(locked)
    async with uow_factory() as uow:
        assert (await uow.accounts.get(account.id)).name == "A"


async def test_a_reader_reads_its_snapshot_beside_an_open_writer_and_cannot_commit(
    uow_factory,
):
    _, account = await funded_account(uow_factory)
    async with uow_factory() as writer:
        # The writer holds its lock (on SQLite, the whole database's) and has changed the row.
        [locked] = (await writer.accounts.lock([account.id])).values()
        locked.rename("Being renamed")
        await writer.accounts.save(locked)
        async with uow_factory(read_only=True) as reader:
            seen = await reader.accounts.get(account.id)
            with pytest.raises(RuntimeError, match="read-only"):
                await reader.commit()
        await writer.commit()
    assert seen is not None and seen.name == "A"
    async with uow_factory(read_only=True) as reader:
        assert (await reader.accounts.get(account.id)).name == "Being renamed"


async def test_a_resumed_stream_reads_storage_oldest_first_after_the_given_line(uow_factory):
    actor, account = await funded_account(uow_factory)
    movements = MovementService(uow_factory)
    await movements.withdraw(actor=actor, account_id=account.id, amount=Money(100, EUR))
    await movements.deposit(actor=actor, account_id=account.id, amount=Money(5, EUR))
    await movements.withdraw(actor=actor, account_id=account.id, amount=Money(1, EUR))
    async with uow_factory(read_only=True) as uow:
        [opening, *_] = await uow.transactions.entries_after(account.id, None, 1)
    # One line to a read, so that catching up takes several.
    stream = EntryWatch(uow_factory, 60, batch=1).lines(
        actor=actor, account_id=account.id, after=opening.id
    )
    seen = [await anext(stream) for _ in range(3)]
    await stream.aclose()
    assert [e.amount.minor_units for e in seen] == [-100, 5, -1]
    assert [e.balance_after.minor_units for e in seen] == [900, 905, 904]
    async with uow_factory(read_only=True) as uow:
        newest = await uow.transactions.newest_entry_ids([account.id, AccountId(987654)])
    assert newest == {account.id: seen[-1].id}


async def test_repositories_round_trip_the_domain_objects(uow_factory):
    actor, account = await funded_account(uow_factory, 1234)
    async with uow_factory() as uow:
        stored = await uow.accounts.get(account.id)
        [entry] = (await uow.transactions.entries([account.id], PageRequest(10)))[account.id]
        transaction = await uow.transactions.get(entry.transaction_id)
        assert await uow.transactions.get_entry(entry.id) == entry
        assert await uow.accounts.get(AccountId(999_999)) is None
        assert await uow.users.get(actor.user_id) is not None
    assert stored == account
    assert stored.created_at.tzinfo is not None
    assert (entry.amount, entry.balance_after) == (Money(1234, EUR), Money(1234, EUR))
    assert transaction.kind is TransactionKind.DEPOSIT
    assert transaction.destination_account_id == account.id


async def test_passwords_are_stored_as_argon2id_hashes_only(engine, uow_factory):
    await UserService(uow_factory, PasswordHashing(1, 64, 1)).register(
        email="h@example.com", password="long enough password"
    )
    async with engine.connect() as connection:
        stored = (await connection.execute(text("SELECT password_hash FROM users"))).scalar_one()
    assert stored.startswith("$argon2id$")
    assert "long enough password" not in stored


async def test_one_email_is_one_user_even_when_registered_concurrently(uow_factory):
    users = UserService(uow_factory, PasswordHashing(1, 64, 1))
    outcomes = await asyncio.gather(
        *(
            users.register(email=f"{case}@example.com", password="long enough password")
            for case in ("same", "SAME", "Same", "sAme")
        ),
        return_exceptions=True,
    )
    assert sum(not isinstance(outcome, Exception) for outcome in outcomes) == 1
    assert all(isinstance(o, EmailAlreadyRegistered) for o in outcomes if isinstance(o, Exception))
