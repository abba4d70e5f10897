"""PostgreSQL's deadlock and serialization failures become a retryable TransientConflict."""

import pytest
from sqlalchemy import text

from domain.errors import TransientConflict
from persistence.database import make_engine, make_session_factory
from persistence.migrate import upgrade
from persistence.unit_of_work import SqlUnitOfWork
from tests.databases import PostgresDatabase, postgres_admin_url


@pytest.fixture
async def postgres_uow():
    database = PostgresDatabase(postgres_admin_url())
    engine = make_engine(database.create())
    await upgrade(engine)
    sessions = make_session_factory(engine)
    yield lambda: SqlUnitOfWork(sessions)
    await engine.dispose()
    database.drop()


@pytest.mark.parametrize("condition", ["serialization_failure", "deadlock_detected"])
async def test_a_transaction_the_database_gave_up_on_is_a_transient_conflict(
    postgres_uow, condition
):
    raise_it = f"DO $$ BEGIN RAISE EXCEPTION 'gave up' USING ERRCODE = '{condition}'; END $$"
    with pytest.raises(TransientConflict):
        async with postgres_uow() as uow:
            await (await uow._session.connection()).execute(text(raise_it))


async def test_other_database_errors_are_not_transient(postgres_uow):
    with pytest.raises(Exception) as caught:
        async with postgres_uow() as uow:
            await (await uow._session.connection()).execute(text("SELECT 1/0"))
    assert not isinstance(caught.value, TransientConflict)
