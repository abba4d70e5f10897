"""Announcements of committed statement lines over PostgreSQL's LISTEN/NOTIFY.

A movement announces the accounts it wrote lines for with NOTIFY in its own transaction, in
the statement that inserts the lines (see the transaction repository), so PostgreSQL
delivers the announcement only if, and once, the lines commit. Each process
listens on one connection of its own, outside the pool: a pooled connection goes back to
the pool between uses, and a pooler that hands out connections per transaction would drop
the LISTEN.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import psycopg

from domain.model import AccountId
from domain.ports import Heard
from persistence.database import connection_parameters

logger = logging.getLogger("bankql.watch")

CHANNEL = "bankql_entries"
# How the listening connection shows in pg_stat_activity.
APPLICATION_NAME = "bankql-listen"
# Waits between attempts to listen again, the last one repeated.
RETRY_S = (0.1, 0.5, 1.0, 2.0, 5.0)


def payload(account_ids: Sequence[int]) -> str:
    """What an announcement of new lines on these accounts says."""
    return ",".join(str(key) for key in sorted(set(account_ids)))


def account_ids(payload: str) -> list[AccountId]:
    return [AccountId(int(part)) for part in payload.split(",") if part.strip().isdigit()]


class PostgresEntryNews:
    """Listens for announcements on a connection of its own, and listens again after it
    is lost; each (re)start is reported as news that may have been missed."""

    def __init__(self, url: str) -> None:
        # Several hosts with target_session_attrs=read-write lead to the primary, the one
        # server whose transactions announce anything; after a failover, to the new one.
        self._parameters = connection_parameters(url)

    async def listen(self, heard: Heard) -> None:
        failures = 0
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    **self._parameters,
                    autocommit=True,
                    application_name=APPLICATION_NAME,
                    # Probes of a silent connection, so that a lost server is noticed.
                    keepalives=1,
                    keepalives_idle=30,
                    keepalives_interval=10,
                ) as connection:
                    await connection.execute(f"LISTEN {CHANNEL}")
                    failures = 0
                    heard(None)
                    async for notification in connection.notifies():
                        heard(account_ids(notification.payload))
            except psycopg.Error as error:
                logger.warning("listening for new statement lines failed: %s", error)
            failures += 1
            await asyncio.sleep(RETRY_S[min(failures, len(RETRY_S)) - 1])
