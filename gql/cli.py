"""The bankql command: serve, migrate, schema."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from gql.settings import Settings
from persistence.database import make_engine
from persistence.migrate import upgrade

logger = logging.getLogger("bankql")


async def _migrate(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


def migrate(settings: Settings) -> None:
    """Upgrade the database to the newest schema."""
    asyncio.run(_migrate(settings.database_url))
    logger.info("database is at the newest schema")


def serve(settings: Settings) -> None:
    """Apply pending migrations, then serve GraphQL until stopped."""
    import uvicorn

    from gql.app import create_app

    migrate(settings)
    logger.info("serving GraphQL on http://%s:%d/graphql", settings.host, settings.port)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
    )


def schema() -> None:
    """Print the served schema in SDL."""
    from gql.schema import build_schema

    sys.stdout.write(build_schema().as_str() + "\n")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bankql", description="A GraphQL bank backend.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="migrate, then serve GraphQL at /graphql")
    serve_parser.add_argument("--host", help="interface to listen on (default 127.0.0.1)")
    serve_parser.add_argument("--port", type=int, help="port to listen on (default 8000)")
    commands.add_parser("migrate", help="upgrade the database to the newest schema")
    commands.add_parser("schema", help="print the GraphQL schema (SDL)")
    args = parser.parse_args(argv)

    settings = Settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(levelname)s %(name)s: %(message)s"
    )
    if args.command == "schema":
        schema()
    elif args.command == "migrate":
        migrate(settings)
    else:
        overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
        serve(settings.model_copy(update=overrides))


if __name__ == "__main__":
    main()
