"""How much the parser and validation caches buy: requests per second with and without them.

    .venv/bin/python benchmarks/graphql_caches.py [--requests N]

Runs the real schema in-process on a temporary SQLite database and prints one line per
configuration; compare the ratio within one run, since absolute figures depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import strawberry

from domain.services import SessionService, UserService
from gql.context import build_context, sql_unit_of_work
from gql.schema.schema import build_schema
from gql.server.auth import TokenCodec
from persistence.database import make_engine, make_session_factory
from persistence.migrate import upgrade
from persistence.passwords import PasswordHashing

DOCUMENT = """
query Statement($first: Int) {
  accounts(first: $first) {
    totalCount
    edges { cursor node { id name currency status balance { amount currency } createdAt } }
    pageInfo { hasNextPage endCursor }
  }
}
"""


async def measure(schema: strawberry.Schema, new_context, requests: int) -> float:
    start = time.perf_counter()
    for _ in range(requests):
        context = new_context()
        result = await schema.execute(DOCUMENT, variable_values={"first": 0}, context_value=context)
        assert result.errors is None, result.errors
    return requests / (time.perf_counter() - start)


async def main(requests: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        engine = make_engine(f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}")
        await upgrade(engine)
        uow = sql_unit_of_work(make_session_factory(engine))
        user = await UserService(uow, PasswordHashing(1, 64, 1)).register(
            email="bench@example.com", password="x" * 12
        )
        tokens = TokenCodec("benchmark-key-" + "x" * 32, timedelta(hours=1))

        started = await SessionService(uow).start(user, user_agent=None)
        signed_in = tokens.verify(tokens.issue(user.id, started.session.id).token)

        def getter():
            return build_context(uow, tokens, signed_in)

        cached, uncached = build_schema(), build_schema(caches=False)
        await measure(cached, getter, 20)  # warm up imports and the connection pool
        with_caches = await measure(cached, getter, requests)
        without = await measure(uncached, getter, requests)
        await engine.dispose()
    print(f"with parser and validation caches: {with_caches:8.0f} requests/s")
    print(f"without them:                      {without:8.0f} requests/s")
    print(f"ratio:                             {with_caches / without:8.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=500)
    asyncio.run(main(parser.parse_args().requests))
