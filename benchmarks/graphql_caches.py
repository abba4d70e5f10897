"""How much the parser and validation caches buy, and what they hold.

    .venv/bin/python benchmarks/graphql_caches.py [--requests N] [--documents N]

Runs the real schema in-process on a temporary SQLite database and prints requests per second
with and without the caches; compare the ratio within one run, since absolute figures depend
on the machine. Then it sends `--documents` distinct documents of about 1,900 tokens each
(the most a client may send), as one client trying to fill the caches would, and prints the
memory they hold afterwards: within the caches' byte budget, and remembered without one (as
a cache of 512 entries did, up to 512 documents).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import tempfile
import time
import tracemalloc
from datetime import timedelta
from pathlib import Path

import strawberry

from domain.services import SessionService, UserService
from gql.context import build_context, sql_unit_of_work
from gql.schema import schema as schema_module
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


def large_document(n: int) -> str:
    """A distinct document of about 1,900 tokens, each field unknown: a validation error each."""
    return "{ " + " ".join(f"f{n}_{i}" for i in range(1_900)) + " }"


async def held_by_caches(budget_bytes: int, documents: int, new_context) -> float:
    """MiB still held once `documents` distinct large documents have been sent to a schema
    whose caches have this budget each."""
    real_budget = schema_module.BUDGET_BYTES
    schema_module.BUDGET_BYTES = budget_bytes
    try:
        schema = build_schema()
    finally:
        schema_module.BUDGET_BYTES = real_budget
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for n in range(documents):
        result = await schema.execute(large_document(n), context_value=new_context())
        assert result.errors, "an unknown field is an error"
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return held / (1024 * 1024)


async def main(requests: int, documents: int) -> None:
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
        print(f"with parser and validation caches: {with_caches:8.0f} requests/s")
        print(f"without them:                      {without:8.0f} requests/s")
        print(f"ratio:                             {with_caches / without:8.2f}x")
        budget = schema_module.BUDGET_BYTES
        within = await held_by_caches(budget, documents, getter)
        unbounded = await held_by_caches(2**62, documents, getter)
        await engine.dispose()
    print(f"{documents} distinct documents of ~1,900 tokens, memory held afterwards:")
    print(f"  caches within {budget / 2**20:.0f} MiB each:       {within:8.1f} MiB")
    print(f"  remembered without a budget:   {unbounded:8.1f} MiB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--documents", type=int, default=200)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.requests, arguments.documents))
