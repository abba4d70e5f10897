"""The stack itself: the standby replays the primary, can be paused, and takes over."""

from __future__ import annotations

import psycopg
import pytest

from tests.stack.clusters import PostgresStack


def test_the_standby_replays_what_the_primary_writes(postgres_stack: PostgresStack) -> None:
    assert postgres_stack.standby.is_in_recovery()
    assert not postgres_stack.primary.is_in_recovery()
    with postgres_stack.primary.connect() as connection:
        connection.execute("CREATE TABLE IF NOT EXISTS stack_probe (value int)")
        connection.execute("INSERT INTO stack_probe VALUES (1)")
    postgres_stack.wait_for_standby()
    assert postgres_stack.standby.scalar("SELECT count(*) FROM stack_probe") == 1
    # The migrated schema came over with the base backup.
    assert postgres_stack.standby.scalar("SELECT count(*) FROM alembic_version") == 1
    with postgres_stack.primary.connect() as connection:
        connection.execute("DROP TABLE stack_probe")
    postgres_stack.wait_for_standby()


def test_a_paused_standby_serves_an_older_state(postgres_stack: PostgresStack) -> None:
    with postgres_stack.primary.connect() as connection:
        connection.execute("CREATE TABLE IF NOT EXISTS pause_probe (value int)")
    postgres_stack.wait_for_standby()
    postgres_stack.pause_replay()
    try:
        with postgres_stack.primary.connect() as connection:
            connection.execute("INSERT INTO pause_probe VALUES (1)")
        assert postgres_stack.standby.scalar("SELECT count(*) FROM pause_probe") == 0
        with pytest.raises(TimeoutError):
            postgres_stack.wait_for_standby(timeout_s=0.3)
    finally:
        postgres_stack.resume_replay()
    postgres_stack.wait_for_standby()
    assert postgres_stack.standby.scalar("SELECT count(*) FROM pause_probe") == 1
    with postgres_stack.primary.connect() as connection:
        connection.execute("DROP TABLE pause_probe")
    postgres_stack.wait_for_standby()


def test_the_promoted_standby_takes_writes(disposable_stack: PostgresStack) -> None:
    with disposable_stack.primary.connect() as connection:
        connection.execute("CREATE TABLE failover_probe (value int)")
        connection.execute("INSERT INTO failover_probe VALUES (1)")
    disposable_stack.wait_for_standby()
    disposable_stack.stop_primary("immediate")
    with pytest.raises(psycopg.OperationalError):
        disposable_stack.primary.connect()
    disposable_stack.promote_standby()
    with disposable_stack.standby.connect() as connection:
        connection.execute("INSERT INTO failover_probe VALUES (2)")
        assert connection.execute("SELECT count(*) FROM failover_probe").fetchone() == (2,)
