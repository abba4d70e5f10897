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

from tests.conftest import TEST_SECRET_KEY

BANKQL = [sys.executable, "-m", "gql.cli"]
START_TIMEOUT_S = 30


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def environment(database_url: str, **variables: str) -> dict[str, str]:
    return (
        os.environ
        | {
            "BANKQL_DATABASE_URL": database_url,
            "BANKQL_SECRET_KEY": TEST_SECRET_KEY,
            "BANKQL_PASSWORD_TIME_COST": "1",
            "BANKQL_PASSWORD_MEMORY_KIB": "64",
            "BANKQL_PASSWORD_PARALLELISM": "1",
        }
        | variables
    )


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


def post(base: str, query: str, token: str | None = None) -> dict:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(f"{base}/graphql", json={"query": query}, headers=headers, timeout=10).json()


def run(*arguments: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*BANKQL, *arguments], env=env, capture_output=True, text=True, timeout=60
    )


def test_serve_migrates_an_empty_database_and_answers_graphql(served):
    registered = post(
        served,
        'mutation { register(input: {email: "cli@example.com", password: "long enough pw"}) '
        "{ ... on AuthPayload { token } } }",
    )
    token = registered["data"]["register"]["token"]
    opened = post(
        served,
        'mutation { openAccount(input: {name: "Cli", currency: "EUR", initialDeposit: "2.5"}) '
        "{ ... on AccountPayload { account { balance { amount } } } } }",
        token,
    )
    assert opened == {"data": {"openAccount": {"account": {"balance": {"amount": "2.50"}}}}}


def test_serve_refuses_to_start_without_a_secret_key_outside_development(tmp_path):
    env = environment(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    del env["BANKQL_SECRET_KEY"]
    result = run("serve", "--port", str(free_port()), env=env)
    assert result.returncode != 0
    assert "BANKQL_SECRET_KEY is not set" in result.stderr
    assert not (tmp_path / "x.db").exists()


def test_a_short_secret_key_is_refused(tmp_path):
    env = environment(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", BANKQL_SECRET_KEY="short")
    result = run("serve", "--port", str(free_port()), env=env)
    assert result.returncode != 0 and "at least 32 characters" in result.stderr


def test_development_mode_makes_up_a_key_and_says_so(tmp_path):
    env = environment(f"sqlite+aiosqlite:///{tmp_path / 'dev.db'}", BANKQL_ENV="development")
    del env["BANKQL_SECRET_KEY"]
    check = "from gql.settings import Settings; print(len(Settings().signing_key()))"
    result = subprocess.run(
        [sys.executable, "-c", check], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and int(result.stdout) >= 32
    assert "random key" in result.stderr


def test_create_admin_takes_the_password_from_the_environment_once(empty_url):
    env = environment(empty_url, BANKQL_ADMIN_PASSWORD="administrator password")
    assert run("migrate", env=env).returncode == 0
    created = run("create-admin", "--email", "Root@Example.com", env=env)
    assert created.returncode == 0, created.stderr
    assert "created administrator root@example.com" in created.stderr
    again = run("create-admin", "--email", "root@example.com", env=env)
    assert again.returncode != 0
    assert "already exists" in again.stderr and "Nothing was created" in again.stderr


def test_create_admin_refuses_a_short_password(empty_url):
    env = environment(empty_url, BANKQL_ADMIN_PASSWORD="short")
    assert run("migrate", env=env).returncode == 0
    result = run("create-admin", "--email", "root@example.com", env=env)
    assert result.returncode != 0 and "password" in result.stderr


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
