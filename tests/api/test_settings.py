"""Every setting: its default, its effect, and a clear message when it is wrong."""

import os
import re
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import WebSocketRoute

from gql.server.app import create_app
from gql.server.settings import ConfigurationError, Settings, load_settings
from tests.conftest import TEST_SECRET_KEY, settings_for
from tests.databases import migrated, sqlite_url

ROOT = Path(__file__).resolve().parents[2]
POSTGRES_STYLE_URL = "postgresql+psycopg://bankql@127.0.0.1:1/bankql"
INTROSPECTION = "{ __schema { queryType { name } } }"


def production(**overrides) -> Settings:
    return Settings(
        _env_file=None,
        **(
            {"env": "production", "secret_key": TEST_SECRET_KEY, "database_url": POSTGRES_STYLE_URL}
            | overrides
        ),
    )


async def get(app, path, **kwargs):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        if path == "/graphql" and "json" in kwargs:
            response = await c.post(path, **kwargs)
        else:
            response = await c.get(path, **kwargs)
    await app.state.engine.dispose()
    return response


def test_production_is_the_default_and_hides_graphiql_and_introspection():
    settings = Settings(_env_file=None)
    assert settings.env == "production"
    assert not settings.graphiql_enabled and not settings.introspection_enabled


def test_development_shows_them_and_production_can_be_told_to():
    assert settings_for("sqlite+aiosqlite://").graphiql_enabled
    assert production(graphiql=True, introspection=True).introspection_enabled


async def test_production_serves_no_graphiql_page():
    response = await get(create_app(production()), "/graphql", headers={"accept": "text/html"})
    assert response.status_code == 404 or "graphiql" not in response.text.lower()


async def test_production_refuses_introspection_unless_enabled():
    refused = await get(create_app(production()), "/graphql", json={"query": INTROSPECTION})
    assert "introspection" in refused.json()["errors"][0]["message"].lower()
    allowed = await get(
        create_app(production(introspection=True)), "/graphql", json={"query": INTROSPECTION}
    )
    assert allowed.json()["data"]["__schema"]["queryType"]["name"] == "Query"


def test_production_refuses_sqlite_unless_allowed():
    with pytest.raises(ConfigurationError, match="refuses SQLite"):
        create_app(production(database_url="sqlite+aiosqlite:///./x.db"))
    app = create_app(production(database_url="sqlite+aiosqlite:///./x.db", allow_sqlite=True))
    assert app is not None


def test_production_requires_a_real_secret_key():
    with pytest.raises(ConfigurationError, match="BANKQL_SECRET_KEY is not set"):
        create_app(production(secret_key=None))
    with pytest.raises(ConfigurationError, match="at least 32"):
        create_app(production(secret_key="too-short"))


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("BANKQL_PORT", "eighty", "BANKQL_PORT"),
        ("BANKQL_PORT", "70000", "BANKQL_PORT"),
        ("BANKQL_ENV", "staging", "BANKQL_ENV"),
        ("BANKQL_LOG_LEVEL", "LOUD", "BANKQL_LOG_LEVEL"),
        ("BANKQL_TOKEN_TTL_SECONDS", "0", "BANKQL_TOKEN_TTL_SECONDS"),
        ("BANKQL_REFRESH_TOKEN_TTL_SECONDS", "soon", "BANKQL_REFRESH_TOKEN_TTL_SECONDS"),
        ("BANKQL_MAX_BODY_BYTES", "10", "BANKQL_MAX_BODY_BYTES"),
        ("BANKQL_GRAPHIQL", "perhaps", "BANKQL_GRAPHIQL"),
        ("BANKQL_SUBSCRIPTION_POLL_MS", "0", "BANKQL_SUBSCRIPTION_POLL_MS"),
        ("BANKQL_MAX_SUBSCRIPTIONS_PER_CONNECTION", "0", "BANKQL_MAX_SUBSCRIPTIONS_PER_CONNECTION"),
        ("BANKQL_MAX_MOVEMENT_AMOUNT", "0", "BANKQL_MAX_MOVEMENT_AMOUNT"),
        ("BANKQL_MAX_MOVEMENT_AMOUNT", "12.50", "BANKQL_MAX_MOVEMENT_AMOUNT"),
        ("BANKQL_MAX_ACCOUNT_BALANCE", "9223372036854775808", "BANKQL_MAX_ACCOUNT_BALANCE"),
        ("BANKQL_REQUEST_TIMEOUT_S", "0", "BANKQL_REQUEST_TIMEOUT_S"),
        ("BANKQL_REQUEST_TIMEOUT_S", "soon", "BANKQL_REQUEST_TIMEOUT_S"),
        ("BANKQL_RECEIVE_TIMEOUT_S", "-1", "BANKQL_RECEIVE_TIMEOUT_S"),
        ("BANKQL_MAX_CONNECTIONS", "0", "BANKQL_MAX_CONNECTIONS"),
        # A shorter cap would let one address be tried 100 times an hour.
        ("BANKQL_SIGN_IN_MAX_DELAY_SECONDS", "30", "BANKQL_SIGN_IN_MAX_DELAY_SECONDS"),
        ("BANKQL_MAX_CONCURRENT_HASHES", "0", "BANKQL_MAX_CONCURRENT_HASHES"),
        ("BANKQL_RATE_LIMIT_PER_SECOND", "0", "BANKQL_RATE_LIMIT_PER_SECOND"),
        ("BANKQL_MAX_WS_CONNECTIONS", "0", "BANKQL_MAX_WS_CONNECTIONS"),
        ("BANKQL_METRICS", "perhaps", "BANKQL_METRICS"),
        ("BANKQL_METRICS_MAX_OPERATION_NAMES", "-1", "BANKQL_METRICS_MAX_OPERATION_NAMES"),
        ("BANKQL_OTEL_ENDPOINT", "collector:4318", "BANKQL_OTEL_ENDPOINT"),
        ("BANKQL_TRACING_SAMPLE_RATIO", "2", "BANKQL_TRACING_SAMPLE_RATIO"),
        ("BANKQL_REPLICA_DATABASE_URLS", "standby:5432", "BANKQL_REPLICA_DATABASE_URLS"),
        ("BANKQL_REPLICA_DATABASE_URLS", "mysql://r@h/b", "BANKQL_REPLICA_DATABASE_URLS"),
        (
            "BANKQL_REPLICA_DATABASE_URLS",
            "sqlite+aiosqlite:///x.db",
            "BANKQL_REPLICA_DATABASE_URLS",
        ),
    ],
)
def test_each_bad_value_is_named_in_a_clear_message(monkeypatch, variable, value, named):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    assert str(caught.value).startswith(named)


@pytest.mark.parametrize("written", ["debug", "Warning", "ERROR"])
def test_log_levels_are_read_in_any_case(monkeypatch, written):
    monkeypatch.setenv("BANKQL_LOG_LEVEL", written)
    assert load_settings().log_level == written.upper()


def test_every_setting_is_in_the_readme_table_and_in_env_example():
    variables = {f"BANKQL_{name.upper()}" for name in Settings.model_fields}
    readme_rows = set(
        re.findall(r"^\| `(BANKQL_[A-Z_]+)` \|", (ROOT / "README.md").read_text(), re.MULTILINE)
    )
    example = set(
        re.findall(r"^#? ?(BANKQL_[A-Z_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE)
    )
    assert readme_rows == variables
    assert example == variables


def test_the_readme_table_states_each_default_the_code_has():
    defaults = {
        f"BANKQL_{name.upper()}": field.get_default(call_default_factory=True)
        for name, field in Settings.model_fields.items()
    }
    rows = re.findall(
        r"^\| `(BANKQL_[A-Z_]+)` \| ([^|]+) \|", (ROOT / "README.md").read_text(), re.MULTILINE
    )
    for variable, shown in rows:
        default = defaults[variable]
        text = shown.strip().strip("`")
        if default is None or default == []:
            assert text.startswith(("none", "on in development")), variable
        else:
            assert text == str(default).lower() or text == str(default), (variable, text)


async def test_limits_and_token_lifetime_follow_their_settings(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'limits.db'}"
    await migrated(url)
    app = create_app(
        settings_for(
            url,
            max_aliases=2,
            max_body_bytes=2048,
            max_query_depth=3,
            max_tokens=40,
            token_ttl_seconds=120,
        )
    )
    register = """mutation { register(input: {email: "t@example.com", password: "long enough pw"})
      { ... on AuthPayload { expiresAt } } }"""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        registered = (await c.post("/graphql", json={"query": register})).json()
        aliases = (
            await c.post(
                "/graphql", json={"query": "{ a: viewer { id } b: viewer { id } c: viewer { id } }"}
            )
        ).json()
        deep = (
            await c.post(
                "/graphql", json={"query": "{ viewer { accounts { edges { node { id } } } } }"}
            )
        ).json()
        tokens = await c.post("/graphql", json={"query": "{ viewer { " + "id " * 40 + "} }"})
        body = await c.post("/graphql", json={"query": "{ viewer { id } }", "pad": "x" * 3000})
    await app.state.engine.dispose()
    expires = registered["data"]["register"]["expiresAt"]
    remaining = (datetime.fromisoformat(expires) - datetime.now(UTC)).total_seconds()
    assert 100 < remaining <= 120
    assert "aliases" in aliases["errors"][0]["message"]
    assert "depth" in deep["errors"][0]["message"]
    assert "token" in tokens.json()["errors"][0]["message"].lower()
    assert body.status_code == 413


async def test_each_subscription_looks_for_new_lines_as_often_as_set(tmp_path):
    app = create_app(settings_for(sqlite_url(tmp_path / "poll.db"), subscription_poll_ms=1234))
    [view] = [route.endpoint for route in app.routes if isinstance(route, WebSocketRoute)]
    request = Request({"type": "http", "method": "GET", "path": "/graphql", "headers": []})
    context = await view.get_context(request, Response())
    another = await view.get_context(request, Response())
    await app.state.engine.dispose()
    assert context.entry_watch.interval_s == 1.234
    assert another.entry_watch is context.entry_watch  # one look serves every subscription


async def test_env_example_starts_as_it_is_copied(tmp_path, monkeypatch):
    for name in list(os.environ):
        if name.startswith("BANKQL_"):
            monkeypatch.delenv(name)
    (tmp_path / ".env").write_text((ROOT / ".env.example").read_text())
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.development
    app = create_app(settings)  # raises ConfigurationError for anything it cannot start with
    await app.state.engine.dispose()


def test_a_pool_too_small_for_the_subscriptions_share_is_refused():
    with pytest.raises(ConfigurationError) as refused:
        create_app(production(db_pool_size=4, subscription_connections=4))
    assert str(refused.value) == (
        "BANKQL_SUBSCRIPTION_CONNECTIONS (4) must be less than BANKQL_DB_POOL_SIZE (4), or "
        "subscriptions could hold every connection requests need."
    )
    app = create_app(production(db_pool_size=5, subscription_connections=4))
    assert app.state.engine.pool.size() == 5


@pytest.mark.parametrize("name", ["BANKQL_WORKERS", "BANKQL_DB_POOL_SIZE"])
def test_pool_and_worker_counts_out_of_range_are_one_clear_line(monkeypatch, name):
    monkeypatch.setenv(name, "0")
    with pytest.raises(ConfigurationError) as refused:
        load_settings()
    assert str(refused.value).startswith(f"{name}: ")


def test_a_wrong_replica_url_is_one_line_that_hides_its_password(monkeypatch):
    good = "postgresql+psycopg://bankql@standby1:5432/bankql"
    monkeypatch.setenv("BANKQL_REPLICA_DATABASE_URLS", f"{good}, postgresql://bankql:hush@s2/b")
    with pytest.raises(ConfigurationError) as refused:
        load_settings()
    said = str(refused.value)
    assert said.startswith("BANKQL_REPLICA_DATABASE_URLS: ") and "\n" not in said
    assert "psycopg 3 driver" in said and "hush" not in said and "***" in said
    monkeypatch.setenv("BANKQL_REPLICA_DATABASE_URLS", f" {good} ,{good}")
    assert load_settings().replica_database_urls == [good, good]


def test_replicas_of_a_sqlite_database_are_refused():
    replica = "postgresql+psycopg://bankql@standby1:5432/bankql"
    settings = production(
        database_url="sqlite+aiosqlite:///./bankql.db",
        allow_sqlite=True,
        replica_database_urls=[replica],
    )
    with pytest.raises(ConfigurationError) as refused:
        create_app(settings)
    assert str(refused.value).startswith("BANKQL_REPLICA_DATABASE_URLS: standbys replay a")


def test_by_default_websocket_connections_leave_connections_for_http_requests():
    """Past BANKQL_MAX_CONNECTIONS every new connection gets 503: if WebSocket connections
    could take all of them, many users' live statements would leave no room for a request."""
    settings = settings_for("sqlite+aiosqlite:///unused.db")
    assert settings.max_connections - settings.max_ws_connections >= 100
