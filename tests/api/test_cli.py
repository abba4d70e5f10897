"""The bankql command as a user runs it: a real process on a free port."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

BANKQL = [sys.executable, "-m", "gql.cli"]
START_TIMEOUT_S = 30


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def environment(database_url: str) -> dict[str, str]:
    return os.environ | {"BANKQL_DATABASE_URL": database_url}


@pytest.fixture
def served(empty_url) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [*BANKQL, "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=environment(empty_url),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            process.kill()
            pytest.fail(f"bankql serve did not start:\n{process.communicate()[0]}")
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_serve_migrates_an_empty_database_and_answers_graphql(served):
    opened = httpx.post(
        f"{served}/graphql",
        json={
            "query": 'mutation { openAccount(input: {name: "Cli", currency: "EUR", '
            'initialDeposit: "2.5"}) { ... on AccountPayload { account { balance '
            "{ amount } } } } }"
        },
        timeout=10,
    ).json()
    assert opened == {"data": {"openAccount": {"account": {"balance": {"amount": "2.50"}}}}}


def test_migrate_brings_a_database_to_head(empty_url):
    result = subprocess.run(
        [*BANKQL, "migrate"], env=environment(empty_url), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "newest schema" in result.stderr
    again = subprocess.run(
        [*BANKQL, "migrate"], env=environment(empty_url), capture_output=True, text=True, timeout=60
    )
    assert again.returncode == 0, again.stderr


def test_schema_prints_sdl():
    result = subprocess.run(
        [*BANKQL, "schema"], capture_output=True, text=True, timeout=60, check=True
    )
    assert "type Query" in result.stdout and "scalar Decimal" in result.stdout
