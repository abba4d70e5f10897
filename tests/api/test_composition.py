"""The context getter is the composition root: swapping it moves the whole API to other storage."""

import httpx

from gql.app import create_app
from gql.context import build_context
from gql.settings import Settings
from tests.api.graphql import GraphQLClient
from tests.fakes import FakeUnitOfWorkFactory


async def test_the_api_runs_unchanged_on_in_memory_storage(tmp_path):
    storage = FakeUnitOfWorkFactory()

    async def in_memory_context(_request, _response):
        return build_context(storage)

    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}")
    app = create_app(settings, context_getter=in_memory_context)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bankql.test") as http:
        gql = GraphQLClient(http)
        account = await gql.open_account(initial_deposit="3")
        await gql.deposit(account["id"], "1.5")
        assert await gql.balance(account["id"]) == "4.50"
    await app.state.engine.dispose()
    assert storage.commits >= 2
    assert not (tmp_path / "unused.db").exists()
