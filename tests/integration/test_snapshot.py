"""ReadSnapshot: a request's reads see one moment, its own writes, and take turns."""

import asyncio

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from domain.errors import StoreUnavailable
from domain.model import Actor
from domain.money import Currency, Money
from domain.ports import PageRequest
from domain.services import AccountService, MovementService, UserService
from persistence.database import make_session_factory
from persistence.passwords import PasswordHashing
from persistence.snapshot import ReadSnapshot

EUR = Currency.of("EUR")


@pytest.fixture
def snapshot(engine):
    return ReadSnapshot(make_session_factory(engine))


async def opened(uow_factory):
    user = await UserService(uow_factory, PasswordHashing(1, 64, 1)).register(
        email="snap@example.com", password="long enough password"
    )
    actor = Actor(user.id, user.role)
    account = await AccountService(uow_factory).open_account(
        actor=actor, name="A", currency=EUR, initial_deposit=Money(100, EUR)
    )
    return actor, account


async def balance(factory, actor, account):
    found = await AccountService(factory).account(actor=actor, account_id=account.id)
    return found.balance.minor_units


async def test_reads_see_one_moment_until_the_request_writes(uow_factory, snapshot):
    actor, account = await opened(uow_factory)
    request = snapshot.unit_of_work
    assert await balance(request, actor, account) == 100
    # Another request commits a deposit: this request still sees the moment it began with.
    await MovementService(uow_factory).deposit(
        actor=actor, account_id=account.id, amount=Money(5, EUR)
    )
    assert await balance(request, actor, account) == 100
    statement = await AccountService(request).statement(
        actor=actor, account_id=account.id, page=PageRequest(10)
    )
    assert [e.balance_after.minor_units for e in statement.items] == [100]
    # Its own write ends the snapshot, so it reads what it wrote, and the other deposit too.
    here = MovementService(request)
    await here.deposit(actor=actor, account_id=account.id, amount=Money(1, EUR))
    assert await balance(request, actor, account) == 106
    await snapshot.close()
    assert await balance(uow_factory, actor, account) == 106


async def test_concurrent_reads_take_turns_and_a_nested_read_is_refused(uow_factory, snapshot):
    actor, account = await opened(uow_factory)
    request = snapshot.unit_of_work
    balances = await asyncio.gather(*(balance(request, actor, account) for _ in range(10)))
    assert balances == [100] * 10
    async with request(read_only=True):
        with pytest.raises(RuntimeError, match="wait forever"):
            async with request(read_only=True):
                pass
    await snapshot.close()


async def test_ending_the_request_cancels_its_running_read_and_refuses_the_next(
    uow_factory, snapshot, database_url
):
    actor, account = await opened(uow_factory)
    request = snapshot.unit_of_work
    if make_url(database_url).get_backend_name() == "sqlite":
        pytest.skip("a SQLite read never waits: it reads its snapshot beside any writer")
    # A read left running by a request that stopped early, say a batched load still waiting
    # on a table the test has locked.
    libpq = make_url(database_url).set(drivername="postgresql")
    with psycopg.connect(libpq.render_as_string(hide_password=False)) as holder:
        holder.execute("LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE")
        orphan = asyncio.create_task(balance(request, actor, account))
        for _ in range(600):
            if holder.execute(
                "SELECT 1 FROM pg_locks WHERE relation = 'accounts'::regclass AND NOT granted"
            ).fetchall():
                break
            await asyncio.sleep(0.05)
        # Without the cancel, ending would wait for the read, which waits for the lock.
        await asyncio.wait_for(snapshot.end(), 30)
        waiting = holder.execute(
            "SELECT count(*) FROM pg_locks WHERE relation = 'accounts'::regclass AND NOT granted"
        ).fetchone()
        holder.rollback()
    with pytest.raises(asyncio.CancelledError):
        await orphan
    assert waiting == (0,)
    with pytest.raises(RuntimeError, match="the request has ended"):
        await balance(request, actor, account)


async def test_a_read_after_the_request_ended_is_refused(uow_factory, snapshot):
    actor, account = await opened(uow_factory)
    request = snapshot.unit_of_work
    assert await balance(request, actor, account) == 100
    await snapshot.end()
    with pytest.raises(RuntimeError, match="the request has ended"):
        await balance(request, actor, account)


async def test_a_read_a_standby_cancels_is_unavailable_and_the_next_reads_the_primary(
    uow_factory, engine, database_url
):
    """A standby cancels a read whose rows its replay must remove ("conflict with
    recovery", SQLSTATE 40001). Reads are not run again, so that is no conflict between
    writers to retry: the client is told UNAVAILABLE (send again), never an internal
    error, and the request's later reads go to the primary."""
    if make_url(database_url).get_backend_name() == "sqlite":
        pytest.skip("a standby replays a PostgreSQL primary")
    actor, account = await opened(uow_factory)
    sessions = make_session_factory(engine)
    standby_reads = []

    async def standby(options):  # the primary stands in for a standby that has caught up
        standby_reads.append(options)
        session = sessions()
        await session.connection(execution_options=options)
        return session

    snapshot = ReadSnapshot(sessions, standby)
    cancelled = text(
        "DO $$ BEGIN RAISE EXCEPTION 'canceling statement due to conflict with recovery' "
        "USING ERRCODE = 'serialization_failure'; END $$"
    )
    with pytest.raises(StoreUnavailable):
        async with snapshot.unit_of_work(read_only=True) as uow:
            await uow.users._session.exec(cancelled)
    assert len(standby_reads) == 1
    assert await balance(snapshot.unit_of_work, actor, account) == 100
    assert len(standby_reads) == 1
    await snapshot.end()
