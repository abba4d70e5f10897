"""`bankql serve` as real processes on free loopback ports, for tests over HTTP, and a server
in the test's own process where a test must reach inside it."""

from __future__ import annotations

import asyncio
import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator

import uvicorn

from tests.conftest import TEST_SECRET_KEY

BANKQL = [sys.executable, "-m", "gql.server.cli"]
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 15


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def serving_in_process(config: uvicorn.Config) -> AsyncIterator[int]:
    """Serve the config's app on a free loopback port in this event loop; yields the port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    while not server.started:  # noqa: ASYNC110 (the server offers a flag, not an event)
        await asyncio.sleep(0.01)
    try:
        yield listener.getsockname()[1]
    finally:
        server.should_exit = True
        await serving
        listener.close()


def environment(database_url: str, **variables: str) -> dict[str, str]:
    """What a deployment sets, with password hashing made cheap so tests stay quick."""
    return (
        dict(os.environ)
        | {
            "BANKQL_ENV": "development",
            "BANKQL_DATABASE_URL": database_url,
            "BANKQL_SECRET_KEY": TEST_SECRET_KEY,
            "BANKQL_PASSWORD_TIME_COST": "1",
            "BANKQL_PASSWORD_MEMORY_KIB": "64",
            "BANKQL_PASSWORD_PARALLELISM": "1",
        }
        | variables
    )


def run(*arguments: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*BANKQL, *arguments], env=env, capture_output=True, text=True, timeout=60
    )


class Server:
    """One `bankql serve` process; started, stopped gracefully, or killed outright."""

    def __init__(
        self, env: dict[str, str], port: int | None = None, arguments: tuple[str, ...] = ()
    ) -> None:
        # Warnings and errors only: an access log line per request would swamp a load test.
        self.env = env | {"BANKQL_LOG_LEVEL": "WARNING"}
        # Kept across restarts of this server; the file goes when the object does.
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[str] | None = None
        # More of the command line, such as ("--workers", "2").
        self.arguments = arguments

    def start(self) -> Server:
        self.process = subprocess.Popen(
            [*BANKQL, "serve", "--host", "127.0.0.1", "--port", str(self.port), *self.arguments],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
            text=True,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and self.process.poll() is None:
            if self.healthy():
                return self
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"bankql serve did not start on port {self.port}:\n{self.output()}")

    def healthy(self) -> bool:
        """Whether /healthz answers 200. Plain HTTP over a socket: a new HTTP client for
        every look would load the machine's certificates each time, and a look every
        50 ms would then take the processor the starting server needs."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
        try:
            connection.request("GET", "/healthz")
            return connection.getresponse().status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            connection.close()

    def output(self) -> str:
        """What the process wrote to its standard error so far."""
        self.log.seek(0)
        return self.log.read()

    def kill(self) -> None:
        """SIGKILL: no chance to finish anything, as in a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()
