"""A PgBouncer process in transaction mode on a free loopback port, for tests through a pooler."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.databases import REQUIRE_POSTGRES_VARIABLE
from tests.servers import free_port

START_TIMEOUT_S = 10
# PgBouncer refuses to run as root; it changes to this user when started as root.
UNPRIVILEGED_USER = "postgres"
# What a client sees of the server through the pooler: every client gets a connection of
# its own only for the length of one transaction.
DEFAULT_POOL_SIZE = 10


def pgbouncer_binary() -> str:
    """The pgbouncer program, or a skip where it is not installed (a failure in CI, which
    installs it)."""
    binary = shutil.which("pgbouncer") or (
        "/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None
    )
    if binary is None:
        reason = "pgbouncer is not installed (apt-get install pgbouncer)"
        if os.environ.get(REQUIRE_POSTGRES_VARIABLE) == "1":
            pytest.fail(f"{reason}, and {REQUIRE_POSTGRES_VARIABLE}=1 requires it")
        pytest.skip(reason)
    return binary


class PgBouncer:
    """One PgBouncer in transaction mode in front of `server_url`'s server: every database
    of that server is reachable through it under the same name. Trusts its clients: tests
    only, on 127.0.0.1."""

    def __init__(self, server_url: str, pool_size: int = DEFAULT_POOL_SIZE) -> None:
        server = make_url(server_url)
        self.server_host = server.host or "127.0.0.1"
        self.server_port = server.port or 5432
        self.user = server.username or "postgres"
        self.pool_size = pool_size
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="bankql-pgbouncer-"))
        self.log = self.directory / "pgbouncer.log"
        self.process: subprocess.Popen[bytes] | None = None

    def url_for(self, database_url: str) -> str:
        """The same database, reached through this pooler."""
        return (
            make_url(database_url)
            .set(host="127.0.0.1", port=self.port)
            .render_as_string(hide_password=False)
        )

    def _write_config(self) -> Path:
        users = self.directory / "users.txt"
        users.write_text(f'"{self.user}" ""\n')
        config = self.directory / "pgbouncer.ini"
        lines = [
            "[databases]",
            f"* = host={self.server_host} port={self.server_port}",
            "[pgbouncer]",
            "listen_addr = 127.0.0.1",
            f"listen_port = {self.port}",
            "unix_socket_dir =",
            "auth_type = trust",
            f"auth_file = {users}",
            "pool_mode = transaction",
            f"default_pool_size = {self.pool_size}",
            "max_client_conn = 200",
            f"logfile = {self.log}",
            "server_check_delay = 0",
        ]
        if os.geteuid() == 0:
            lines.append(f"user = {UNPRIVILEGED_USER}")
        config.write_text("\n".join(lines) + "\n")
        # The unprivileged user reads the files and writes the log.
        self.directory.chmod(0o777)
        for path in (users, config):
            path.chmod(0o644)
        return config

    def start(self) -> PgBouncer:
        config = self._write_config()
        self.process = subprocess.Popen(
            [pgbouncer_binary(), str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"pgbouncer did not start on port {self.port}:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)
