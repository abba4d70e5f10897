"""The bankql command: serve, migrate, schema, create-admin."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import sys
from collections.abc import Sequence

from domain.errors import DomainError
from domain.model import Role
from domain.services import UserService
from gql.settings import ConfigurationError, Settings
from persistence.database import make_engine, make_session_factory
from persistence.migrate import upgrade

logger = logging.getLogger("bankql")
ADMIN_PASSWORD_VARIABLE = "BANKQL_ADMIN_PASSWORD"  # noqa: S105 (a variable name)


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
    """Check the settings, apply pending migrations, then serve GraphQL until stopped."""
    import uvicorn

    from gql.app import create_app

    app = create_app(settings)
    migrate(settings)
    logger.info("serving GraphQL on http://%s:%d/graphql", settings.host, settings.port)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level.lower())


def schema() -> None:
    """Print the served schema in SDL."""
    from gql.schema import build_schema

    sys.stdout.write(build_schema().as_str() + "\n")


async def _create_admin(settings: Settings, email: str, password: str) -> str:
    from gql.context import password_hashing, sql_unit_of_work

    engine = make_engine(settings.database_url)
    try:
        users = UserService(
            sql_unit_of_work(make_session_factory(engine), password_hashing(settings))
        )
        admin = await users.register(email=email, password=password, role=Role.ADMIN)
    finally:
        await engine.dispose()
    return admin.email


def create_admin(settings: Settings, email: str) -> None:
    """Create an administrator; the password comes from the environment or a prompt."""
    password = os.environ.get(ADMIN_PASSWORD_VARIABLE)
    if password is None:
        password = getpass.getpass("Password for the new administrator: ")
        if getpass.getpass("Repeat it: ") != password:
            raise SystemExit("The passwords differ; nothing was created.")
    try:
        created = asyncio.run(_create_admin(settings, email, password))
    except DomainError as error:
        field = getattr(error, "field", None)
        prefix = f"{field}: " if field else ""
        raise SystemExit(f"{prefix}{error.message} Nothing was created.") from None
    logger.info("created administrator %s", created)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bankql", description="A GraphQL bank backend.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="migrate, then serve GraphQL at /graphql")
    serve_parser.add_argument("--host", help="interface to listen on (default 127.0.0.1)")
    serve_parser.add_argument("--port", type=int, help="port to listen on (default 8000)")
    commands.add_parser("migrate", help="upgrade the database to the newest schema")
    commands.add_parser("schema", help="print the GraphQL schema (SDL)")
    admin_parser = commands.add_parser(
        "create-admin",
        help=f"create an administrator (password from a prompt or ${ADMIN_PASSWORD_VARIABLE})",
    )
    admin_parser.add_argument("--email", required=True)
    args = parser.parse_args(argv)

    settings = Settings()
    logging.basicConfig(level=settings.log_level, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "schema":
            schema()
        elif args.command == "migrate":
            migrate(settings)
        elif args.command == "create-admin":
            create_admin(settings, args.email)
        else:
            overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v}
            serve(settings.model_copy(update=overrides))
    except ConfigurationError as error:
        raise SystemExit(f"bankql cannot start: {error}") from None


if __name__ == "__main__":
    main()
