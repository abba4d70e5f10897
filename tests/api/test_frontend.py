"""bankql as frontends meet it: the GraphQL-over-HTTP audit, a real client, GraphiQL offline.

These run Node.js scripts from tests/node against a real `bankql serve`. Without Node (or
Chromium, for the browser) they are skipped with the reason; with BANKQL_REQUIRE_NODE=1 or
BANKQL_REQUIRE_BROWSER=1, as CI sets, they fail instead.
"""

import base64
import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from gql.server.graphiql import ASSETS, GraphiQLAssets
from tests.servers import Server, environment

NODE_TESTS = Path(__file__).resolve().parents[1] / "node"
SCREENSHOT = NODE_TESTS / "screenshots" / "graphiql.png"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def unavailable(reason: str, variable: str) -> None:
    if os.environ.get(variable) == "1":
        pytest.fail(f"{reason}, and {variable}=1 requires these tests")
    pytest.skip(reason)


# Long enough for the live statement's part of the journey, short enough to wait out twice.
CLIENT_TOKEN_TTL_S = 5


def node(script: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("node") is None:
        unavailable("Node.js is not installed", "BANKQL_REQUIRE_NODE")
    if not (NODE_TESTS / "node_modules").is_dir():
        unavailable("run `npm ci --prefix tests/node` first", "BANKQL_REQUIRE_NODE")
    return subprocess.run(
        [shutil.which("node") or "node", script, *arguments],
        cwd=NODE_TESTS,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[str]:
    database = tmp_path_factory.mktemp("frontend") / "bank.db"
    env = environment(f"sqlite+aiosqlite:///{database}", BANKQL_SUBSCRIPTION_POLL_MS="50")
    server = Server(env).start()
    yield server.url
    server.stop()


def test_every_must_and_should_of_the_graphql_over_http_audit_passes(served):
    result = node("audit.mjs", f"{served}/graphql")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith(" 0 failed")


@pytest.fixture
def served_briefly(tmp_path) -> Iterator[str]:
    """A server whose access tokens last a few seconds, so that a client sees them lapse."""
    env = environment(
        f"sqlite+aiosqlite:///{tmp_path / 'bank.db'}",
        BANKQL_SUBSCRIPTION_POLL_MS="50",
        BANKQL_TOKEN_TTL_SECONDS=str(CLIENT_TOKEN_TTL_S),
    )
    server = Server(env).start()
    yield server.url
    server.stop()


def test_a_real_client_registers_moves_money_and_reads_the_statement(served_briefly):
    # It also keeps its session alive as a frontend does: refresh on UNAUTHENTICATED, retry.
    result = node("client.mjs", f"{served_briefly}/graphql")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith(" 0 failed")


def test_a_real_client_resumes_its_live_statement_after_a_dropped_connection(served):
    result = node("resume.mjs", f"{served}/graphql")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith(" 0 failed")


def test_graphiql_runs_a_query_and_a_subscription_with_every_other_host_blocked(served):
    if not Path(CHROMIUM).exists():
        unavailable(f"Chromium is not installed at {CHROMIUM}", "BANKQL_REQUIRE_BROWSER")
    if not GraphiQLAssets(None).installed():
        unavailable("run `npm ci --prefix gql/graphiql` first", "BANKQL_REQUIRE_BROWSER")
    SCREENSHOT.parent.mkdir(exist_ok=True)
    result = node("browser.mjs", served, str(SCREENSHOT))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "blocked requests to other hosts: none" in result.stdout
    assert SCREENSHOT.stat().st_size > 0
    print(f"screenshot: {SCREENSHOT}")


async def test_without_its_files_the_graphiql_page_says_how_to_install_them(tmp_path):
    page = GraphiQLAssets(tmp_path).page()
    assert page.status_code == 503
    assert b"npm ci --prefix gql/graphiql" in page.body


async def test_the_page_pins_every_file_by_its_hash(tmp_path):
    for path, _ in ASSETS.values():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("x")
    html = GraphiQLAssets(tmp_path).page().body.decode()
    for name, (_, integrity) in ASSETS.items():
        assert f'src="/graphiql/{name}"' in html or f'href="/graphiql/{name}"' in html
        assert f'integrity="{integrity}"' in html
    assert "http://" not in html and "https://" not in html, "the page names another host"


def test_the_installed_files_match_the_hashes_the_page_names():
    assets = GraphiQLAssets(None)
    if not assets.installed():
        unavailable("run `npm ci --prefix gql/graphiql` first", "BANKQL_REQUIRE_BROWSER")
    for path, integrity in ASSETS.values():
        digest = hashlib.sha384((assets.folder / path).read_bytes()).digest()
        assert f"sha384-{base64.b64encode(digest).decode()}" == integrity, path
