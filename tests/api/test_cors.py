"""Browsers on allowed origins may call the API; others get no CORS permission."""

import httpx
import pytest

from gql.server.app import create_app
from gql.server.settings import ConfigurationError, load_settings
from tests.conftest import settings_for

ALLOWED = "https://app.example.com"
REFUSED = "https://evil.example.net"


@pytest.fixture
async def app(database_url):
    application = create_app(settings_for(database_url, cors_origins=[ALLOWED]))
    yield application
    await application.state.engine.dispose()


def preflight(origin: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }


async def test_a_preflight_from_an_allowed_origin_is_granted(client):
    response = await client.options("/graphql", headers=preflight(ALLOWED))
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ALLOWED
    assert "authorization" in response.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in response.headers


async def test_a_preflight_from_another_origin_is_refused(client):
    response = await client.options("/graphql", headers=preflight(REFUSED))
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers


async def test_responses_carry_permission_only_for_allowed_origins(client):
    query = {"query": "{ viewer { email } }"}
    allowed = await client.post("/graphql", json=query, headers={"Origin": ALLOWED})
    refused = await client.post("/graphql", json=query, headers={"Origin": REFUSED})
    assert allowed.headers["access-control-allow-origin"] == ALLOWED
    assert "x-request-id" in allowed.headers["access-control-expose-headers"].lower()
    assert "access-control-allow-origin" not in refused.headers


async def test_no_origin_is_allowed_by_default(database_url):
    app = create_app(settings_for(database_url))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        response = await http.options("/graphql", headers=preflight(ALLOWED))
    await app.state.engine.dispose()
    assert "access-control-allow-origin" not in response.headers


def test_origins_are_read_comma_separated_and_checked(monkeypatch):
    monkeypatch.setenv("BANKQL_CORS_ORIGINS", f"{ALLOWED}, http://localhost:5173")
    assert load_settings().cors_origins == [ALLOWED, "http://localhost:5173"]
    monkeypatch.setenv("BANKQL_CORS_ORIGINS", "app.example.com/path")
    with pytest.raises(ConfigurationError, match="BANKQL_CORS_ORIGINS"):
        load_settings()
