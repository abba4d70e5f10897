"""ReadRouter: a standby whose connections are all in use is passed over, not queued for,
however many reads arrive at once. The primary stands in for a standby that has caught up
(no standby is needed to show where the reads go)."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.engine import make_url

from persistence.database import make_engine, make_session_factory
from persistence.replicas import PRIMARY, ReadRouter, Replica
from persistence.snapshot import snapshot_options

READS = 4


async def test_reads_arriving_together_never_queue_for_a_busy_standby(engine, database_url):
    if make_url(database_url).get_backend_name() == "sqlite":
        pytest.skip("standbys replay a PostgreSQL primary")
    standby = make_engine(database_url, pool_size=1)
    replica = Replica("stand-in", standby, make_session_factory(standby))
    replica.replayed = 2**62  # caught up with any floor: no look at its position
    router = ReadRouter(engine, make_session_factory(engine), [replica])
    options = snapshot_options("postgresql")
    try:
        # Each read holds its connection until its request ends, as a request's reads do.
        sessions = await asyncio.wait_for(
            asyncio.gather(*(router.open_read(options) for _ in range(READS))), 10
        )
        assert router.served == {"stand-in": 1, PRIMARY: READS - 1}
        for session in sessions:
            await session.close()
    finally:
        await standby.dispose()
