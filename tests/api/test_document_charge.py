"""A document new to the process costs its request's rate-limit bucket a unit per hundred
tokens: a client sending distinct large documents, each parsed and validated afresh, is
slowed to what its rate allows in work, not in requests; one sending the same document
again and again pays one unit a request, as before."""

from __future__ import annotations

import httpx

from gql.server.app import create_app
from tests.conftest import settings_for
from tests.databases import migrated, sqlite_url


def large(n: int) -> str:
    """A distinct document of about 1,000 tokens: 10 units besides the request's own."""
    return "{ " + " ".join(f"f{n}_{i}" for i in range(1_000)) + " }"


async def statuses(tmp_path, documents: list[str]) -> list[int]:
    url = sqlite_url(tmp_path / "charge.db")
    await migrated(url)
    # 100 requests at once for a client without a token, and next to no refill.
    app = create_app(
        settings_for(url, anonymous_rate_limit_burst=100, anonymous_rate_limit_per_second=0.001)
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        answers = [
            (await client.post("/graphql", json={"query": document})).status_code
            for document in documents
        ]
    await app.state.engine.dispose()
    return answers


async def test_distinct_large_documents_draw_on_the_rate_by_their_size(tmp_path):
    answers = await statuses(tmp_path, [large(n) for n in range(12)])
    # 11 units each: the tenth finds one unit left, takes it and leaves the bucket owing
    # ten, and the eleventh is refused.
    assert 429 not in answers[:10]
    assert answers[10:] == [429, 429]


async def test_a_document_the_process_remembers_costs_one_unit_a_request(tmp_path):
    answers = await statuses(tmp_path, [large(0)] * 40)
    assert 429 not in answers


def test_over_websocket_a_new_document_draws_on_the_rate_too(tmp_path):
    import asyncio

    from starlette.testclient import TestClient

    url = sqlite_url(tmp_path / "charge-ws.db")
    asyncio.run(migrated(url))
    settings = settings_for(
        url, anonymous_rate_limit_burst=100, anonymous_rate_limit_per_second=0.001
    )
    kinds = []
    with (
        TestClient(create_app(settings)) as client,
        client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as socket,
    ):
        socket.send_json({"type": "connection_init"})
        assert socket.receive_json() == {"type": "connection_ack"}
        for n in range(12):
            payload = {"query": large(n)}
            socket.send_json({"type": "subscribe", "id": str(n), "payload": payload})
            answer = socket.receive_json()
            codes = [error.get("extensions", {}).get("code") for error in answer["payload"]]
            kinds.append("RATE_LIMITED" if "RATE_LIMITED" in codes else answer["type"])
    assert "RATE_LIMITED" not in kinds[:10]
    assert kinds[10:] == ["RATE_LIMITED", "RATE_LIMITED"]
