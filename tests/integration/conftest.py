from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from persistence.database import make_engine, make_session_factory
from persistence.unit_of_work import SqlUnitOfWork


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def uow_factory(engine: AsyncEngine):
    sessions = make_session_factory(engine)
    return lambda read_only=False: SqlUnitOfWork(sessions, read_only=read_only)
