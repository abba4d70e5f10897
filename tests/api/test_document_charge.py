"""A document new to the process costs its request's rate-limit bucket a unit per hundred
tokens to parse, and as much to validate: a client sending distinct large documents, each
parsed and validated afresh, is slowed to what its rate allows in work, not in requests;
one sending the same document again and again pays one unit a request, as before."""

from __future__ import annotations

import httpx

from gql.server.app import create_app
from tests.conftest import settings_for
from tests.databases import migrated, sqlite_url


def large(n: int) -> str:
    """A distinct document of about 1,000 tokens: 10 units to parse and 10 to validate,
    besides the request's own."""
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
    answers = await statuses(tmp_path, [large(n) for n in range(8)])
    # 21 units each: the fifth finds 16 left and leaves the bucket owing 5, so the sixth
    # is refused, and so is every one after it until the bucket has refilled.
    assert 429 not in answers[:5]
    assert answers[5:] == [429, 429, 429]


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
        for n in range(8):
            payload = {"query": large(n)}
            socket.send_json({"type": "subscribe", "id": str(n), "payload": payload})
            answer = socket.receive_json()
            codes = [error.get("extensions", {}).get("code") for error in answer["payload"]]
            kinds.append("RATE_LIMITED" if "RATE_LIMITED" in codes else answer["type"])
    assert "RATE_LIMITED" not in kinds[:5]
    assert kinds[5:] == ["RATE_LIMITED"] * 3


async def test_a_large_document_that_does_not_parse_is_charged_by_its_length(tmp_path):
    """It is parsed twice (the second parse gives the client its error) and never
    remembered: 1 + 33 units each for about 20 KB, while a typo in a small one costs 1."""
    broken = ["{ " + f"a{n} " + "__typename " * 1_800 + ")" for n in range(5)]
    answers = await statuses(tmp_path, broken)
    assert 429 not in answers[:3]
    assert answers[3:] == [429, 429]
    (tmp_path / "typos").mkdir()
    typos = await statuses(tmp_path / "typos", ["{ viewer { id " + ")" * n for n in range(60)])
    assert 429 not in typos


async def test_a_long_text_is_charged_by_its_length(tmp_path):
    """Few tokens, but a comment of 250 KB to read: 61 units to parse, 61 to validate."""
    documents = [f"{{ viewer {{ id }} }} # {n}{'x' * 250_000}" for n in range(3)]
    answers = await statuses(tmp_path, documents)
    assert answers == [200, 429, 429]
