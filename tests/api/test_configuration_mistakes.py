"""Every mistake in BANKQL_DATABASE_URL is one line that names the variable, and exit status 2."""

import subprocess

import pytest
from sqlalchemy.engine import make_url

from tests.databases import postgres_admin_url
from tests.servers import BANKQL, environment, free_port


def refusal(tmp_path, database_url: str, *command: str) -> str:
    """What bankql says when it refuses to start, after checking that it refused alike."""
    where = tmp_path / "run"
    where.mkdir(parents=True)
    env = environment(database_url, BANKQL_ADMIN_PASSWORD="administrator password")
    done = subprocess.run(
        [*BANKQL, *command],
        env=env,
        cwd=where,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = done.stderr.strip().splitlines()
    assert (done.returncode, len(lines)) == (2, 1), done.stderr
    assert lines[0].startswith("bankql cannot start: BANKQL_DATABASE_URL: "), lines[0]
    assert list(where.iterdir()) == []  # nothing created on the way
    return lines[0]


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("foo", "'foo' is not a database URL; use sqlite+aiosqlite:///./bankql.db or"),
        ("mysql://user:pw@127.0.0.1/bank", "or PostgreSQL (postgresql+psycopg://"),
        ("sqlite:///./x.db", "SQLite needs the asyncio driver: write sqlite+aiosqlite:///./x.db"),
        ("sqlite+aiosqlite:///./missing/x.db", "missing does not exist: create it"),
        ("postgresql+psycopg://postgres@127.0.0.1:{port}/x", "nothing answers at 127.0.0.1:"),
    ],
)
def test_a_wrong_database_url_is_one_line(tmp_path, url, said):
    assert said in refusal(tmp_path, url.format(port=free_port()), "migrate")


def test_a_file_where_the_folder_should_be_is_named(tmp_path):
    (tmp_path / "a-file").write_text("")
    said = refusal(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'a-file' / 'x.db'}", "migrate")
    assert f"{tmp_path / 'a-file'} is not a folder" in said


@pytest.mark.parametrize(
    "command", [["serve", "--port", "0"], ["create-admin", "--email", "a@b.c"]]
)
def test_serve_and_create_admin_refuse_alike(tmp_path, command):
    assert "is not a database URL" in refusal(tmp_path, "foo", *command)


def test_postgresql_mistakes_say_what_to_do(tmp_path):
    admin = make_url(postgres_admin_url())
    missing = admin.set(database="bankql_no_such_database").render_as_string(False)
    assert "'bankql_no_such_database' does not exist" in refusal(tmp_path, missing, "migrate")
    stranger = admin.set(username="bankql_nobody", password="wrong").render_as_string(False)
    assert "refused the user 'bankql_nobody'" in refusal(tmp_path / "again", stranger, "migrate")


def test_every_refusal_of_one_start_is_in_its_one_line(tmp_path):
    env = environment(
        f"sqlite+aiosqlite:///{tmp_path / 'x.db'}",
        BANKQL_ENV="production",
        BANKQL_SECRET_KEY="short",
    )
    done = subprocess.run(
        [*BANKQL, "serve", "--port", "0"], env=env, capture_output=True, text=True, timeout=60
    )
    lines = done.stderr.strip().splitlines()
    assert (done.returncode, len(lines)) == (2, 1), done.stderr
    assert "refuses SQLite" in lines[0] and "BANKQL_SECRET_KEY must be at least" in lines[0]


def test_two_bad_values_are_reported_together(tmp_path):
    env = environment("sqlite+aiosqlite:///x.db", BANKQL_PORT="abc", BANKQL_LOG_LEVEL="LOUD")
    done = subprocess.run(
        [*BANKQL, "migrate"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "BANKQL_PORT:" in done.stderr and "BANKQL_LOG_LEVEL:" in done.stderr
