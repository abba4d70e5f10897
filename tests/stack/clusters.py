"""A PostgreSQL primary and a streaming standby of it, started under a temporary folder.

Both are clusters of their own (initdb, pg_basebackup -R) on free ports of 127.0.0.1, with
trust authentication for local and 127.0.0.1 connections, replication included, and fsync
off for speed: nothing here is meant to survive the test run. The primary holds a migrated
`bankql` database that the standby replays.

The PostgreSQL server refuses to run as root: when the tests run as root, every server
binary runs as the `postgres` OS user instead, in a folder it owns.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import psycopg

from tests.databases import migrated

DATABASE = "bankql"
SUPERUSER = "postgres"
# The OS user the server runs as when the tests run as root.
SERVER_OS_USER = "postgres"
START_TIMEOUT_S = 30
# Every table bankql writes, emptied between tests that want a clean ledger.
BANKQL_TABLES = ["entries", "transactions", "holds", "accounts", "users", "sign_in_failures"]
BANKQL_TABLES += ["sessions", "retired_refresh_tokens"]


class StackUnavailable(RuntimeError):
    """The PostgreSQL server binaries are not on this machine."""


def binaries_dir() -> Path:
    """Where initdb, pg_ctl and pg_basebackup live, from `pg_config --bindir`."""
    pg_config = shutil.which("pg_config")
    if pg_config is None:
        raise StackUnavailable("pg_config is not on PATH, so no PostgreSQL cluster can be made")
    found = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
    bindir = Path(found.stdout.strip())
    missing = [
        name for name in ("initdb", "pg_ctl", "pg_basebackup") if not (bindir / name).exists()
    ]
    if found.returncode != 0 or missing:
        raise StackUnavailable(f"the PostgreSQL server binaries are missing in {bindir}: {missing}")
    return bindir


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Cluster:
    """One PostgreSQL server: its data folder, port and URLs."""

    def __init__(self, stack: PostgresStack, name: str, port: int) -> None:
        self.stack = stack
        self.name = name
        self.port = port
        self.data = stack.root / name
        self.log = stack.root / f"{name}.log"

    def url(self, database: str = DATABASE) -> str:
        """A SQLAlchemy URL for bankql (psycopg, async)."""
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def conninfo(self, database: str = DATABASE) -> str:
        """A libpq connection string, for psycopg directly."""
        return f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname={database}"

    def connect(self, database: str = DATABASE) -> psycopg.Connection:
        return psycopg.connect(self.conninfo(database), autocommit=True, connect_timeout=5)

    def scalar(self, sql: str, parameters: Sequence[object] = ()) -> object:
        """One value from a statement run in a connection of its own."""
        with self.connect() as connection:
            row = connection.execute(sql, parameters).fetchone()
            return None if row is None else row[0]

    def start(self) -> None:
        self.stack.run(
            "pg_ctl", "start", "-w", "-t", str(START_TIMEOUT_S), "-D", self.data, "-l", self.log
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: "fast" (clean shutdown) or "immediate" (as if it crashed)."""
        self.stack.run("pg_ctl", "stop", "-w", "-m", mode, "-D", self.data)

    def is_running(self) -> bool:
        status = self.stack.run("pg_ctl", "status", "-D", self.data, check=False)
        return status.returncode == 0

    def is_in_recovery(self) -> bool:
        return bool(self.scalar("SELECT pg_is_in_recovery()"))

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""


class PostgresStack:
    """A primary with a migrated bankql database and one streaming standby of it."""

    def __init__(self) -> None:
        self.bindir = binaries_dir()
        self.as_server_user = os.geteuid() == 0
        self.root = Path(tempfile.mkdtemp(prefix="bankql-stack-"))
        if self.as_server_user:
            server_user = pwd.getpwnam(SERVER_OS_USER)
            os.chown(self.root, server_user.pw_uid, server_user.pw_gid)
        self.primary = Cluster(self, "primary", free_port())
        self.standby = Cluster(self, "standby", free_port())

    # Commands ----------------------------------------------------------------------------

    def run(
        self, binary: str, *arguments: object, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / binary), *map(str, arguments)]
        if self.as_server_user:
            command = ["runuser", "-u", SERVER_OS_USER, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=self.root)
        if check and done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
            )
        return done

    def _append(self, path: Path, lines: list[str]) -> None:
        # The file belongs to the server's OS user; root may write it and keeps the owner.
        with path.open("a") as config:
            config.write("\n".join(lines) + "\n")

    # Life cycle --------------------------------------------------------------------------

    def start(self) -> None:
        """initdb, start the primary, create and migrate bankql, then base-backup and start
        the standby. Takes a few seconds."""
        primary, standby = self.primary, self.standby
        self.run(
            "initdb",
            "-D",
            primary.data,
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--no-sync",
            "--no-instructions",
            "-E",
            "UTF8",
            "--locale=C",
        )
        self._append(
            primary.data / "postgresql.conf",
            [
                "listen_addresses = '127.0.0.1'",
                f"port = {primary.port}",
                f"unix_socket_directories = '{self.root}'",
                "wal_level = replica",
                "max_wal_senders = 10",
                "max_replication_slots = 10",
                "wal_keep_size = '256MB'",
                "hot_standby = on",
                "hot_standby_feedback = on",
                "fsync = off",
                "full_page_writes = off",
                "synchronous_commit = on",
                "shared_buffers = '32MB'",
                "max_connections = 100",
                "wal_receiver_status_interval = '1s'",
                "wal_retrieve_retry_interval = '200ms'",
                "logging_collector = off",
            ],
        )
        primary.start()
        with primary.connect("postgres") as connection:
            connection.execute(f'CREATE DATABASE "{DATABASE}"')
        asyncio.run(migrated(primary.url()))
        self.run(
            "pg_basebackup",
            "-D",
            standby.data,
            "-h",
            "127.0.0.1",
            "-p",
            primary.port,
            "-U",
            SUPERUSER,
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
            "--no-sync",
        )
        # Later lines win: the standby takes its own port over the one copied from the primary.
        self._append(standby.data / "postgresql.conf", [f"port = {standby.port}"])
        standby.start()
        self.wait_for_standby()

    def stop(self) -> None:
        """Stop both servers, whatever state they are in, and remove the folder."""
        try:
            for cluster in (self.standby, self.primary):
                if cluster.data.exists():
                    self.run(
                        "pg_ctl", "stop", "-w", "-m", "immediate", "-D", cluster.data, check=False
                    )
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    # What tests do with it ---------------------------------------------------------------

    def primary_position(self) -> str:
        """Where the primary's WAL ends, records not yet flushed included: the position a
        read asks the primary for before it may go to a standby."""
        return str(self.primary.scalar("SELECT pg_current_wal_insert_lsn()"))

    def wait_for_standby(self, timeout_s: float = 30.0, standby: Cluster | None = None) -> str:
        """Return once the standby has replayed everything the primary has written so far,
        and that position."""
        standby = standby or self.standby
        target = self.primary_position()
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if standby.scalar("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [target]):
                    return target
            except psycopg.OperationalError:
                pass  # still starting
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"the standby did not replay up to {target} within {timeout_s} s:\n"
                    + standby.log_text()[-2000:]
                )
            time.sleep(0.02)

    def stop_primary(self, mode: str = "fast") -> None:
        """Stop the primary: "fast" for a clean shutdown, "immediate" for a crash."""
        self.primary.stop(mode)

    def promote_standby(self, timeout_s: float = 30.0) -> None:
        """Make the standby a primary that accepts writes, and wait until it does."""
        self.run("pg_ctl", "promote", "-w", "-t", str(int(timeout_s)), "-D", self.standby.data)
        deadline = time.monotonic() + timeout_s
        while self.standby.is_in_recovery():
            if time.monotonic() > deadline:
                raise TimeoutError(f"the standby was not promoted within {timeout_s} s")
            time.sleep(0.02)

    def pause_replay(self) -> None:
        """The standby keeps receiving WAL but stops applying it: its reads fall behind."""
        self.standby.scalar("SELECT pg_wal_replay_pause()")
        deadline = time.monotonic() + 10
        while self.standby.scalar("SELECT pg_get_wal_replay_pause_state()") != "paused":
            if time.monotonic() > deadline:
                raise TimeoutError("the standby's replay did not pause")
            time.sleep(0.01)

    def resume_replay(self) -> None:
        self.standby.scalar("SELECT pg_wal_replay_resume()")

    def empty_ledger(self) -> None:
        """Remove every row bankql wrote (on the primary; the standby replays it)."""
        with self.primary.connect() as connection:
            connection.execute(f"TRUNCATE {', '.join(BANKQL_TABLES)} RESTART IDENTITY CASCADE")


@contextmanager
def running_stack() -> Iterator[PostgresStack]:
    """A started primary and standby, always stopped and removed on the way out."""
    stack = PostgresStack()
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
