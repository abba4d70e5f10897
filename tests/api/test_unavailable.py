"""A database out of reach is told to the client as UNAVAILABLE, with when to retry."""

from __future__ import annotations

import logging

import sqlalchemy.exc

from domain.errors import StoreUnavailable
from domain.services import AccountService
from tests.api.graphql import OPEN


async def test_a_lost_database_is_unavailable_with_retry_after_and_no_details(
    gql, monkeypatch, caplog
):
    async def lost(*_args, **_kwargs):
        driver = ConnectionError("server closed the connection unexpectedly\nsecret detail")
        wrapped = sqlalchemy.exc.OperationalError("INSERT ... password_hash", {}, driver)
        raise StoreUnavailable() from wrapped

    monkeypatch.setattr(AccountService, "open_account", lost)
    with caplog.at_level(logging.INFO):
        response = await gql.http.post(
            "/graphql",
            json={"query": OPEN, "variables": {"input": {"name": "x", "currency": "EUR"}}},
            headers=gql.headers | {"X-Request-ID": "lost-1"},
        )
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    [error] = response.json()["errors"]
    assert error["extensions"] == {"code": "UNAVAILABLE", "requestId": "lost-1", "retryAfter": 1}
    assert "same idempotencyKey" in error["message"]
    assert "server closed" not in response.text
    warnings = [r for r in caplog.records if r.name == "bankql.errors"]
    assert [(r.levelname, r.exc_info) for r in warnings] == [("WARNING", None)]
    logged = warnings[0].getMessage()
    assert "server closed the connection unexpectedly" in logged
    assert "password_hash" not in logged and "secret detail" not in logged
    [request] = [r for r in caplog.records if r.getMessage() == "request"]
    assert request.outcome == "unavailable"
