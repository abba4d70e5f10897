"""The bankql command as a user runs it: a real process on a free port."""

import json
import os
import pty
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers import BANKQL, Server, environment, free_port, run


@pytest.fixture
def served(empty_url) -> Iterator[str]:
    server = Server(environment(empty_url)).start()
    yield server.url
    server.stop()


def post(base: str, query: str, token: str | None = None) -> dict:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(f"{base}/graphql", json={"query": query}, headers=headers, timeout=10).json()


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
    assert opened["data"] == {"openAccount": {"account": {"balance": {"amount": "2.50"}}}}


def test_serve_refuses_to_start_without_a_secret_key_outside_development(tmp_path):
    env = environment(
        f"sqlite+aiosqlite:///{tmp_path / 'x.db'}",
        BANKQL_ENV="production",
        BANKQL_ALLOW_SQLITE="true",
    )
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
    check = "from gql.server.settings import Settings; print(len(Settings().signing_key()))"
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


def answer_prompts(command: list[str], env: dict[str, str], answers: list[str]) -> tuple[int, str]:
    """Run a command on a pseudo-terminal, typing each answer after the next prompt."""
    pid, terminal = pty.fork()
    if pid == 0:  # the child: becomes the command, with the terminal as its own
        os.execve(command[0], command, env)  # noqa: S606 - the project's own command
    output = b""
    for answer in answers:
        while b": " not in output.rsplit(b"\n", 1)[-1]:
            output += os.read(terminal, 1024)
        os.write(terminal, answer.encode() + b"\n")
        output += os.read(terminal, 1024)
    while True:
        try:
            chunk = os.read(terminal, 1024)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), output.decode(errors="replace")


def test_create_admin_asks_for_the_password_twice_on_a_terminal(empty_url):
    env = environment(empty_url)
    env.pop("BANKQL_ADMIN_PASSWORD", None)
    assert run("migrate", env=env).returncode == 0
    command = [*BANKQL, "create-admin", "--email", "typed@example.com"]
    code, output = answer_prompts(command, env, ["typed password 1", "typed password 1"])
    assert code == 0, output
    assert "created administrator typed@example.com" in output
    code, output = answer_prompts(
        [*BANKQL, "create-admin", "--email", "other@example.com"],
        env,
        ["typed password 1", "a different one"],
    )
    assert code != 0 and "differ" in output


def test_create_admin_without_a_terminal_names_the_variable_to_set(empty_url):
    env = environment(empty_url)
    env.pop("BANKQL_ADMIN_PASSWORD", None)
    result = subprocess.run(
        [*BANKQL, "create-admin", "--email", "a@example.com"],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "create-admin needs a password: set BANKQL_ADMIN_PASSWORD, or run it on a terminal to "
        "be asked. Nothing was created."
    ]


def test_version_and_help_for_every_command():
    env = dict(os.environ)
    assert run("--version", env=env).stdout.strip() == "bankql 0.1.0"
    for command in ("serve", "migrate", "schema", "create-admin", "healthcheck"):
        shown = run(command, "--help", env=env)
        assert shown.returncode == 0
        description = shown.stdout.split("\n\n")[1]
        assert len(description.split()) >= 5, (command, description)
    assert "sign-in email" in run("create-admin", "--help", env=env).stdout


def test_schema_needs_no_settings():
    broken = dict(os.environ) | {"BANKQL_PORT": "abc", "BANKQL_ENV": "staging"}
    printed = run("schema", env=broken)
    assert printed.returncode == 0, printed.stderr
    assert "type Query" in printed.stdout


def serving_line(process: subprocess.Popen[str]) -> dict:
    """The first log line that says where the server listens (reading its standard error)."""
    assert process.stderr is not None
    for line in process.stderr:
        if '"serving GraphQL on' in line:
            return json.loads(line)
    raise AssertionError("the server ended without saying where it serves")


def test_port_zero_takes_a_free_port_and_the_log_names_it(tmp_path):
    env = environment(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    process = subprocess.Popen(
        [*BANKQL, "serve", "--port", "0"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        url = serving_line(process)["message"].removeprefix("serving GraphQL on ")
        port = int(url.split(":")[2].split("/")[0])
        assert port not in (0, 8000)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_a_bad_or_taken_port_is_one_line_before_anything_says_serving(tmp_path):
    env = environment(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    refused = run("serve", "--port", "99999", env=env)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        "bankql cannot start: --port: 99999 is not a port number (1 to 65535, or 0 for a free one)"
    ]
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = run("serve", "--port", str(holder.getsockname()[1]), env=env)
    assert taken.returncode == 2
    assert "serving GraphQL" not in taken.stderr
    assert (
        taken.stderr.strip()
        .splitlines()[-1]
        .startswith("bankql cannot start: BANKQL_HOST/BANKQL_PORT: cannot listen on 127.0.0.1:")
    )


def test_reload_serves_and_starts_again_when_the_code_changes(tmp_path):
    env = environment(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    port = free_port()
    process = subprocess.Popen(
        [*BANKQL, "serve", "--reload", "--port", str(port)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert serving_line(process)["message"].endswith(f":{port}/graphql, reloading")
        assert process.stderr is not None
        touched = Path(__file__).resolve().parents[2] / "gql" / "__init__.py"
        seen = []
        for line in process.stderr:
            seen.append(line)
            if "Application startup complete" in line and len(seen) < 100:
                touched.touch()  # the code changed: the server process starts again
            if "Reloading" in line:
                break
        for line in process.stderr:
            if "Application startup complete" in line:
                break
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def test_the_app_factory_reads_its_settings_from_the_environment(monkeypatch, tmp_path):
    from gql.server.app import app_from_environment

    monkeypatch.setenv("BANKQL_ENV", "development")
    monkeypatch.setenv("BANKQL_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    monkeypatch.setenv("BANKQL_SECRET_KEY", "a-secret-key-of-at-least-32-characters!")
    app = app_from_environment()
    assert app.state.engine.url.database == str(tmp_path / "x.db")


def children_of(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def test_workers_serve_one_port_from_that_many_processes(tmp_path):
    env = environment(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    process = subprocess.Popen(
        [*BANKQL, "serve", "--port", "0", "--workers", "2"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = serving_line(process)["message"]
        assert line.endswith("/graphql with 2 processes")
        port = int(line.split(":")[2].split("/")[0])
        answered = 0
        deadline = 60
        while answered < 20 and deadline:
            try:
                answer = httpx.post(
                    f"http://127.0.0.1:{port}/graphql",
                    json={"query": "{ viewer { email } }"},
                    timeout=10,
                )
                assert answer.json()["data"] == {"viewer": None}
                answered += 1
            except httpx.TransportError:
                deadline -= 1
                time.sleep(0.5)
        assert answered == 20
        workers = [
            child
            for child in children_of(process.pid)
            if b"multiprocessing.spawn" in Path(f"/proc/{child}/cmdline").read_bytes()
            and b"resource_tracker" not in Path(f"/proc/{child}/cmdline").read_bytes()
        ]
        assert len(workers) == 2
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.parametrize("given", ["0", "-1", "two", "257"])
def test_a_bad_number_of_workers_is_one_line(tmp_path, given):
    env = environment(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    refused = run("serve", "--port", str(free_port()), "--workers", given, env=env)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        f"bankql cannot start: --workers: {given!r} is not a number of server processes (1 to 256)"
    ]
    assert not (tmp_path / "x.db").exists()


def test_reload_runs_one_process(tmp_path):
    env = environment(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    refused = run("serve", "--reload", "--workers", "2", env=env)
    assert refused.returncode == 2
    assert "--workers: --reload runs one process" in refused.stderr
