"""Alembic owns the schema: it migrates an empty database to head and matches the tables."""

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError

from domain.model import AccountId, Actor, Role, UserId
from domain.money import MAX_MINOR_UNITS, Currency, Money
from domain.ports import AuditReport
from domain.services import AccountService, MovementService, UserService
from persistence.audit import audit_ledger
from persistence.database import make_engine, make_session_factory
from persistence.migrate import (
    current_revision,
    downgrade,
    head_revision,
    pending_schema_changes,
    upgrade,
)
from persistence.passwords import PasswordHashing
from persistence.unit_of_work import SqlUnitOfWork
from tests.databases import sqlite_url

EUR = Currency.of("EUR")


async def test_migrations_take_an_empty_database_to_head_matching_the_models(empty_url):
    engine = make_engine(empty_url)
    try:
        assert await current_revision(engine) is None
        await upgrade(engine)
        assert await current_revision(engine) == head_revision()
        assert await pending_schema_changes(engine) == []
        await upgrade(engine)  # running again changes nothing
        assert await current_revision(engine) == head_revision()
    finally:
        await engine.dispose()


async def test_a_database_without_migrations_differs_from_the_models(empty_url):
    engine = make_engine(empty_url)
    try:
        assert await pending_schema_changes(engine) != []
    finally:
        await engine.dispose()


async def test_migrations_go_down_to_nothing_and_up_again(empty_url):
    engine = make_engine(empty_url)
    try:
        await upgrade(engine)
        await downgrade(engine, "base")
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda c: inspect(c).get_table_names())
        assert set(tables) <= {"alembic_version"}
        await upgrade(engine)
        assert await pending_schema_changes(engine) == []
    finally:
        await engine.dispose()


async def _users_after_0002(url: str, *, owns_an_account: bool) -> list[tuple[str, object]]:
    engine = make_engine(url)
    try:
        await upgrade(engine, "0001")
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO users (email, role, created_at)"
                    " VALUES ('local@bankql.invalid', 'CUSTOMER', CURRENT_TIMESTAMP)"
                )
            )
            if owns_an_account:
                await connection.execute(
                    text(
                        "INSERT INTO accounts (owner_id, kind, name, currency, balance, status,"
                        " created_at) SELECT id, 'CUSTOMER', 'Old', 'EUR', 0, 'OPEN',"
                        " CURRENT_TIMESTAMP FROM users"
                    )
                )
        await upgrade(engine)
        async with engine.connect() as connection:
            rows = await connection.execute(text("SELECT email, password_hash FROM users"))
            return [tuple(row) for row in rows]
    finally:
        await engine.dispose()


async def test_the_built_in_local_user_goes_away_when_it_owns_nothing(empty_url):
    assert await _users_after_0002(empty_url, owns_an_account=False) == []


async def test_a_local_user_with_accounts_stays_but_can_never_sign_in(empty_url):
    users = await _users_after_0002(empty_url, owns_an_account=True)
    assert users == [("local@bankql.invalid", None)]


async def test_replicas_starting_together_migrate_one_after_another(empty_url):
    engines = [make_engine(empty_url) for _ in range(3)]
    try:
        # Without the migration lock this deadlocks or fails; bounded so it cannot hang CI.
        await asyncio.wait_for(asyncio.gather(*(upgrade(engine) for engine in engines)), 60)
        assert await current_revision(engines[0]) == head_revision()
        assert await pending_schema_changes(engines[0]) == []
    finally:
        for engine in engines:
            await engine.dispose()


async def test_sqlite_files_are_switched_to_wal_with_writers_queued(tmp_path):
    engine = make_engine(sqlite_url(tmp_path / "wal.db"))
    try:
        async with engine.connect() as connection:
            mode = (await connection.exec_driver_sql("PRAGMA journal_mode")).scalar_one()
            timeout = (await connection.exec_driver_sql("PRAGMA busy_timeout")).scalar_one()
        assert (mode, timeout) == ("wal", 10_000)
    finally:
        await engine.dispose()


def test_alembic_commands_work_from_the_repository_root(empty_url):
    """A developer's `alembic upgrade head` and `alembic current` use BANKQL_DATABASE_URL."""
    root = Path(__file__).resolve().parents[2]
    alembic = [sys.executable, "-m", "alembic"]
    env = dict(os.environ) | {"BANKQL_DATABASE_URL": empty_url}

    def run(*arguments: str) -> str:
        done = subprocess.run(
            [*alembic, *arguments], cwd=root, env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert run("current").strip() == ""
    run("upgrade", "head")
    assert run("current").strip() == f"{head_revision()} (head)"


async def _inserted(connection, statement: str, **values: object) -> int:
    return int((await connection.execute(text(f"{statement} RETURNING id"), values)).scalar_one())


async def _ledger_as_0002_kept_it(engine) -> dict[str, int]:
    """Two customers' accounts and the funding accounts as 0002 kept them: with a running
    balance, and lines that carry it."""
    await upgrade(engine, "0002")
    keys: dict[str, int] = {}
    async with engine.begin() as connection:
        user = await _inserted(
            connection,
            "INSERT INTO users (email, role, created_at)"
            " VALUES ('old@example.com', 'CUSTOMER', CURRENT_TIMESTAMP)",
        )
        for name, kind, currency, balance, owner in [
            ("eur", "CUSTOMER", "EUR", 700, user),
            ("jpy", "CUSTOMER", "JPY", 5000, user),
            ("funding eur", "FUNDING", "EUR", -700, None),
            ("funding jpy", "FUNDING", "JPY", -5000, None),
        ]:
            keys[name] = await _inserted(
                connection,
                "INSERT INTO accounts (owner_id, kind, name, currency, balance, status,"
                " funding_currency, created_at) VALUES (:owner, :kind, :name, :currency,"
                " :balance, 'OPEN', :funding, CURRENT_TIMESTAMP)",
                owner=owner,
                kind=kind,
                name=name,
                currency=currency,
                balance=balance,
                funding=currency if kind == "FUNDING" else None,
            )
        for kind, currency, amount, debit, credit in [
            ("DEPOSIT", "EUR", 1000, ("funding eur", -1000), ("eur", 1000)),
            ("WITHDRAWAL", "EUR", 300, ("eur", 700), ("funding eur", -700)),
            ("DEPOSIT", "JPY", 5000, ("funding jpy", -5000), ("jpy", 5000)),
        ]:
            transaction = await _inserted(
                connection,
                "INSERT INTO transactions (kind, amount, currency, actor_id, created_at)"
                " VALUES (:kind, :amount, :currency, :actor, CURRENT_TIMESTAMP)",
                kind=kind,
                amount=amount,
                currency=currency,
                actor=user,
            )
            for (account, after), sign in ((debit, -1), (credit, 1)):
                await connection.execute(
                    text(
                        "INSERT INTO entries (transaction_id, account_id, amount,"
                        " balance_after, created_at) VALUES (:t, :a, :amount, :after,"
                        " CURRENT_TIMESTAMP)"
                    ),
                    {"t": transaction, "a": keys[account], "amount": sign * amount, "after": after},
                )
    return keys


async def _audit(engine) -> AuditReport:
    async with make_session_factory(engine)() as session:
        return await audit_ledger(session)


async def _rows(engine, query: str) -> list[tuple[object, ...]]:
    async with engine.connect() as connection:
        return [tuple(row) for row in await connection.execute(text(query))]


def _units_of_work(engine):
    sessions = make_session_factory(engine)
    return lambda read_only=False: SqlUnitOfWork(sessions, read_only=read_only)


FUNDING_LINES = (
    "SELECT entries.amount, entries.balance_after FROM entries JOIN accounts"
    " ON accounts.id = entries.account_id WHERE accounts.kind = 'FUNDING' ORDER BY entries.id"
)


async def test_funding_stops_keeping_a_balance_and_the_audit_stays_clean(empty_url):
    engine = make_engine(empty_url)
    try:
        keys = await _ledger_as_0002_kept_it(engine)
        await upgrade(engine)
        report = await _audit(engine)
        assert report.ok, report
        assert report.accounts_checked == 4
        assert await _rows(engine, "SELECT balance FROM accounts WHERE kind = 'FUNDING'") == [
            (0,),
            (0,),
        ]
        # The lines already written keep what they recorded: the ledger is append-only.
        old_lines = [(-1000, -1000), (300, -700), (-5000, -5000)]
        assert await _rows(engine, FUNDING_LINES) == old_lines

        actor = Actor(UserId(1), Role.CUSTOMER)
        await MovementService(_units_of_work(engine)).deposit(
            actor=actor, account_id=AccountId(keys["eur"]), amount=Money(50, EUR)
        )
        assert await _rows(engine, FUNDING_LINES) == [*old_lines, (-50, None)]
        assert (await _audit(engine)).ok

        # Down again, the funding accounts and their new line get their running balance back.
        await downgrade(engine, "0002")
        assert await _rows(
            engine, "SELECT currency, balance FROM accounts WHERE kind = 'FUNDING' ORDER BY id"
        ) == [("EUR", -750), ("JPY", -5000)]
        assert await _rows(engine, FUNDING_LINES) == [*old_lines, (-50, -750)]
        with pytest.raises(DBAPIError, match="append-only"):
            async with engine.begin() as connection:
                await connection.execute(text("UPDATE entries SET amount = amount"))
        await upgrade(engine)
        assert (await _audit(engine)).ok
        assert await pending_schema_changes(engine) == []
    finally:
        await engine.dispose()


async def test_downgrading_refuses_funding_past_64_bits_and_changes_nothing(empty_url):
    engine = make_engine(empty_url)
    try:
        await upgrade(engine)
        uow = _units_of_work(engine)
        user = await UserService(uow, PasswordHashing(1, 64, 1)).register(
            email="a@example.com", password="long password"
        )
        for name in ("A", "B"):
            await AccountService(uow).open_account(
                actor=Actor(user.id, user.role),
                name=name,
                currency=EUR,
                initial_deposit=Money(MAX_MINOR_UNITS, EUR),
            )
        with pytest.raises(DBAPIError):
            await downgrade(engine, "0002")
        assert await current_revision(engine) == head_revision()
        assert (await _audit(engine)).ok
    finally:
        await engine.dispose()
