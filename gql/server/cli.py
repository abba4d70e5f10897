"""The bankql command: serve, migrate, schema, create-admin."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

from domain.errors import DomainError
from domain.model import Role
from domain.services import UserService
from gql.server.logs import configure_logging
from gql.server.preflight import check_database_url
from gql.server.settings import MAX_WORKERS, ConfigurationError, Settings, load_settings
from persistence.database import make_engine, make_session_factory
from persistence.migrate import upgrade

logger = logging.getLogger("bankql")
HEALTHCHECK_TIMEOUT_S = 3
ADMIN_PASSWORD_VARIABLE = "BANKQL_ADMIN_PASSWORD"  # noqa: S105 (a variable name)
LISTEN_BACKLOG = 2048
MAX_PORT = 65535


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


def listening_socket(host: str, port: int) -> socket.socket:
    """The server's socket, bound before anything says it serves; port 0 takes a free one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as error:
        listener.close()
        raise ConfigurationError(
            f"BANKQL_HOST/BANKQL_PORT: cannot listen on {host}:{port} ({error.strerror}); "
            "choose another port, or stop what holds it"
        ) from None
    listener.listen(LISTEN_BACKLOG)
    listener.set_inheritable(True)
    return listener


def serve(settings: Settings, *, port: int | None = None, reload: bool = False) -> None:
    """Check the settings, apply pending migrations, then serve GraphQL until stopped.

    More than one worker: that many server processes share the one listening socket, each
    with its own app, pool and limits, started again if one dies."""
    import uvicorn

    from gql.server.app import create_app
    from gql.server.connections import bounded_protocol, max_concurrency

    app = create_app(settings)
    migrate(settings)
    if reload:
        serve_reloading(settings)
        return
    workers = settings.worker_count
    listener = listening_socket(settings.host, settings.port if port is None else port)
    host, bound_port = listener.getsockname()[:2]
    logger.info(
        "serving GraphQL on http://%s:%d/graphql with %d process%s",
        host,
        bound_port,
        workers,
        "" if workers == 1 else "es",
    )
    # Our JSON logging stays in charge; each request is logged once, by our middleware.
    # On SIGTERM uvicorn stops accepting and lets in-flight requests finish before exiting.
    options: dict[str, Any] = {
        "log_config": None,
        "access_log": False,
        "server_header": False,
        # A WebSocket message is held to the same size as a request body.
        "ws_max_size": settings.max_body_bytes,
        # Request heads within the receive timeout; at most so many connections at once,
        # a request on any more gets 503.
        "http": bounded_protocol(settings.receive_timeout_s),
        "limit_concurrency": max_concurrency(settings.max_connections),
        # An idle kept-alive connection is closed at the same receive timeout, not at the
        # HTTP server's own 5 s: common clients drop idle connections at 5 s themselves, and
        # when both ends time out together a request can go out on a connection the server
        # is closing at that instant, and get no answer.
        "timeout_keep_alive": settings.receive_timeout_s,
    }
    if workers == 1:
        uvicorn.Server(uvicorn.Config(app, **options)).run(sockets=[listener])
        return
    # Each worker is a new interpreter that builds its app from the same environment (the
    # settings were checked above, and the socket is already bound).
    config = uvicorn.Config(
        "gql.server.app:app_from_environment", factory=True, workers=workers, **options
    )
    with shared_metrics(settings.metrics_enabled):
        supervisor(config, listener).run()


@contextmanager
def shared_metrics(enabled: bool) -> Iterator[None]:
    """With metrics on, the workers write their figures to a folder of their own, made for
    this start and removed after it, where a scrape of any of them finds them all."""
    from gql.server.metrics import MULTIPROCESS_DIRECTORY

    if not enabled:
        yield
        return
    before = os.environ.get(MULTIPROCESS_DIRECTORY)
    directory = tempfile.mkdtemp(prefix="bankql-metrics-")
    os.environ[MULTIPROCESS_DIRECTORY] = directory
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(MULTIPROCESS_DIRECTORY, None)
        else:
            os.environ[MULTIPROCESS_DIRECTORY] = before
        shutil.rmtree(directory, ignore_errors=True)


def supervisor(config: Any, listener: socket.socket) -> Any:
    """uvicorn's supervisor of worker processes, which also tells the metrics of each
    worker that dies or is replaced, so that its open connections stop being counted."""
    from uvicorn.supervisors import Multiprocess

    from gql.server.metrics import dead_worker

    class Supervisor(Multiprocess):
        def _forgetting_gone(self, step: Callable[[], None]) -> None:
            """Run the step, then forget the workers it left behind."""
            before = {process.pid for process in self.processes}
            step()
            for pid in before - {process.pid for process in self.processes}:
                if pid is not None:
                    dead_worker(pid)

        def keep_subprocess_alive(self) -> None:
            self._forgetting_gone(super().keep_subprocess_alive)

        def restart_all(self) -> None:
            self._forgetting_gone(super().restart_all)

    return Supervisor(config, sockets=[listener])


def serve_reloading(settings: Settings) -> None:
    """Development: a server process that starts again whenever the code changes."""
    import uvicorn

    if not settings.development:
        raise ConfigurationError("--reload: only in development (BANKQL_ENV=development)")
    logger.info("serving GraphQL on http://%s:%d/graphql, reloading", settings.host, settings.port)
    root = Path(__file__).resolve().parents[2]
    uvicorn.run(
        "gql.server.app:app_from_environment",
        factory=True,
        reload=True,
        reload_dirs=[str(root / folder) for folder in ("domain", "persistence", "gql")],
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        ws_max_size=settings.max_body_bytes,
    )


def schema() -> None:
    """Print the served schema in SDL."""
    from gql.schema.schema import build_schema

    sys.stdout.write(build_schema().as_str() + "\n")


async def _create_admin(settings: Settings, email: str, password: str) -> str:
    from gql.context import password_hashing, sql_unit_of_work

    engine = make_engine(settings.database_url)
    try:
        users = UserService(
            sql_unit_of_work(make_session_factory(engine)), password_hashing(settings)
        )
        admin = await users.register(email=email, password=password, role=Role.ADMIN)
    finally:
        await engine.dispose()
    return admin.email


def create_admin(settings: Settings, email: str) -> None:
    """Create an administrator; the password comes from the environment or a prompt."""
    password = os.environ.get(ADMIN_PASSWORD_VARIABLE)
    if password is None:
        if not sys.stdin.isatty():
            raise SystemExit(
                f"create-admin needs a password: set {ADMIN_PASSWORD_VARIABLE}, or run it on a "
                "terminal to be asked. Nothing was created."
            )
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


def healthcheck(settings: Settings) -> None:
    """Exit 0 when this machine's server answers /healthz (the container's HEALTHCHECK)."""
    import urllib.request

    url = f"http://127.0.0.1:{settings.port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=HEALTHCHECK_TIMEOUT_S) as response:
            healthy = response.status == 200
    except OSError as error:
        raise SystemExit(f"unhealthy: {error}") from None
    if not healthy:
        raise SystemExit("unhealthy")


def parser() -> argparse.ArgumentParser:
    """The command line; every setting also comes from the environment (BANKQL_...)."""
    top = argparse.ArgumentParser(
        prog="bankql",
        description="A GraphQL bank backend. Settings come from BANKQL_* variables or .env.",
    )
    top.add_argument("--version", action="version", version=f"%(prog)s {version('bankql')}")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, summary: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=summary, description=summary)

    serve_parser = command("serve", "apply pending migrations, then serve GraphQL at /graphql")
    serve_parser.add_argument("--host", help="interface to listen on (default: BANKQL_HOST)")
    serve_parser.add_argument(
        "--port", type=int, help="port to listen on, 0 for a free one (default: BANKQL_PORT)"
    )
    serve_parser.add_argument(
        "--workers",
        metavar="N",
        help="server processes, 1 to 256 (default: BANKQL_WORKERS, else one per CPU in "
        "production and one in development)",
    )
    serve_parser.add_argument(
        "--reload", action="store_true", help="development: restart when the code changes"
    )
    command("migrate", "upgrade the database (BANKQL_DATABASE_URL) to the newest schema")
    command("schema", "print the GraphQL schema in SDL; needs no settings")
    admin_parser = command(
        "create-admin",
        f"create an administrator; the password comes from ${ADMIN_PASSWORD_VARIABLE} or, on "
        "a terminal, from a prompt",
    )
    admin_parser.add_argument(
        "--email", required=True, help="the administrator's sign-in email address"
    )
    command("healthcheck", "exit 0 when the server on this machine answers /healthz")
    return top


def serve_overrides(args: argparse.Namespace) -> dict[str, object]:
    """--host and --port, checked as their variables are; --port 0 takes a free port."""
    if args.port is not None and not 0 <= args.port <= MAX_PORT:
        raise ConfigurationError(
            f"--port: {args.port} is not a port number (1 to {MAX_PORT}, or 0 for a free one)"
        )
    overrides: dict[str, object] = {"host": args.host} if args.host else {}
    if args.workers is not None:
        overrides["workers"] = _workers(args.workers)
    if args.reload:
        if overrides.get("workers", 1) != 1:
            raise ConfigurationError("--workers: --reload runs one process; leave --workers out")
        overrides["workers"] = 1
        if args.port == 0:
            raise ConfigurationError("--port 0 cannot be used with --reload")
        # The reloading process reads its settings again, from the environment.
        os.environ.update({f"BANKQL_{k.upper()}": str(v) for k, v in overrides.items()})
        if args.port is not None:
            os.environ["BANKQL_PORT"] = str(args.port)
            overrides["port"] = args.port
    return overrides


def _workers(given: str) -> int:
    """--workers, checked as BANKQL_WORKERS is."""
    count = int(given) if given.strip().isdigit() else 0
    if not 1 <= count <= MAX_WORKERS:
        raise ConfigurationError(
            f"--workers: {given!r} is not a number of server processes (1 to {MAX_WORKERS})"
        )
    return count


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    if args.command == "schema":
        schema()  # what the code serves, whatever the settings say
        return
    try:
        settings = load_settings()
        if args.command in ("serve", "migrate", "create-admin"):
            asyncio.run(check_database_url(settings.database_url))
        configure_logging(settings.log_level)
        if args.command == "migrate":
            migrate(settings)
        elif args.command == "create-admin":
            create_admin(settings, args.email)
        elif args.command == "healthcheck":
            healthcheck(settings)
        else:
            overrides = serve_overrides(args)
            serve(
                settings.model_copy(update=overrides),
                port=None if args.reload else args.port,
                reload=args.reload,
            )
    except ConfigurationError as error:
        # One line, and the status argparse gives a wrong command line: the call was wrong.
        sys.stderr.write(f"bankql cannot start: {error}\n")
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
