"""The context getter is the composition root: swapping it moves the whole API to other storage."""

from datetime import timedelta

import httpx

from gql.context import build_context, viewer_of
from gql.server.app import create_app
from gql.server.auth import TokenCodec
from tests.api.graphql import GraphQLClient
from tests.conftest import TEST_SECRET_KEY, settings_for
from tests.fakes import FakeUnitOfWorkFactory


async def test_the_api_runs_unchanged_on_in_memory_storage(tmp_path):
    storage = FakeUnitOfWorkFactory()

    settings = settings_for(f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}")
    tokens = TokenCodec(TEST_SECRET_KEY, timedelta(hours=1))

    async def in_memory_context(request, _response):
        return build_context(storage, tokens, viewer_of(request, tokens))

    app = create_app(settings, context_getter=in_memory_context)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bankql.test") as http:
        gql = await GraphQLClient(http).signed_up("memory@example.com")
        account = await gql.open_account(initial_deposit="3")
        await gql.deposit(account["id"], "1.5")
        assert await gql.balance(account["id"]) == "4.50"
    await app.state.engine.dispose()
    assert storage.commits >= 2
    assert not (tmp_path / "unused.db").exists()
