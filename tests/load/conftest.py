"""Two `bankql serve` processes on one database, with an administrator to audit it."""

from collections.abc import Iterator

import pytest

from tests.load.checks import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.servers import Server, environment, run


@pytest.fixture
def server_env(empty_url) -> dict[str, str]:
    # Twenty clients queue on one SQLite writer on a shared machine: the load tests check
    # exactness, not the deadline, so theirs is far from any wait they make.
    env = environment(
        empty_url, BANKQL_ADMIN_PASSWORD=ADMIN_PASSWORD, BANKQL_REQUEST_TIMEOUT_S="120"
    )
    for command in (["migrate"], ["create-admin", "--email", ADMIN_EMAIL]):
        result = run(*command, env=env)
        assert result.returncode == 0, result.stderr
    return env


@pytest.fixture
def servers(server_env) -> Iterator[list[Server]]:
    started = [Server(server_env).start(), Server(server_env).start()]
    yield started
    for server in started:
        server.stop()
