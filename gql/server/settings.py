"""Settings from the environment (prefix BANKQL_) and an optional .env file, checked at start."""

from __future__ import annotations

import logging
import os
import re
import secrets
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from domain.money import MAX_MINOR_UNITS
from persistence.database import DEFAULT_POOL_SIZE

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./bankql.db"
MIN_SECRET_KEY_LENGTH = 32
MIB = 1024 * 1024
DEFAULT_SUBSCRIPTION_POLL_MS = 250
DEFAULT_SUBSCRIPTION_CONNECTIONS = 4
DEFAULT_SAFETY_LOOK_MS = 5000
DEFAULT_SUBSCRIPTION_STARTS = 4
DEFAULT_MAX_QUERY_COST = 5000
MAX_WORKERS = 256

logger = logging.getLogger("bankql")


class ConfigurationError(Exception):
    """A setting that stops the server from starting; the message says which and why."""


SEVERAL_HOSTS_EXAMPLE = (
    "postgresql+psycopg://bankql@/bankql?host=db1:5432&host=db2:5432"
    "&target_session_attrs=read-write"
)
WRITABLE_SESSION_ATTRS = ("read-write", "primary")


def check_database_url(url: str) -> None:
    """A URL that lists several servers must do so in the form SQLAlchemy reads, and ask for
    the writable one, or writes could go to a standby. ValueError says what to write
    instead; other mistakes are left to the preflight check, which names them."""
    try:
        parsed = make_url(url)
    except Exception:  # SQLAlchemy's ArgumentError, or ValueError for a port it cannot read
        netloc = url.partition("://")[2].partition("/")[0]
        if "," in netloc:
            raise ValueError(
                "lists several hosts in a form that cannot be read: write "
                f"{SEVERAL_HOSTS_EXAMPLE}, not host1:5432,host2:5432"
            ) from None
        return  # any other mistake in its form is put in words before a command starts
    hosts = parsed.query.get("host", ())
    several = len(hosts) > 1 if isinstance(hosts, tuple) else "," in hosts
    if several and parsed.query.get("target_session_attrs") not in WRITABLE_SESSION_ATTRS:
        raise ValueError(
            "lists several hosts without target_session_attrs=read-write, so writes could "
            f"go to a standby: write {SEVERAL_HOSTS_EXAMPLE}"
        )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BANKQL_", env_file=".env", extra="ignore")

    env: Literal["development", "production"] = "production"
    database_url: str = DEFAULT_DATABASE_URL
    allow_sqlite: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    graphiql: bool | None = None
    introspection: bool | None = None
    # Where GraphiQL's installed files are; the project's gql/graphiql/node_modules if unset.
    graphiql_assets: Path | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    secret_key: SecretStr | None = None
    # How long an access token lasts, and a refresh token unless traded for a new pair first.
    # Tiny values are allowed, for tests of expiry.
    token_ttl_seconds: int = Field(default=900, ge=1, le=30 * 24 * 3600)
    refresh_token_ttl_seconds: int = Field(default=30 * 24 * 3600, ge=1, le=365 * 24 * 3600)
    password_time_cost: int = Field(default=3, ge=1)
    password_memory_kib: int = Field(default=65536, ge=64)
    password_parallelism: int = Field(default=4, ge=1)
    # Hashes one process runs at once (each takes a core; unset: the number of CPUs), and
    # how long a sign-in waits for a turn before it is refused as RATE_LIMITED.
    max_concurrent_hashes: int | None = Field(default=None, ge=1, le=256)
    hash_wait_ms: int = Field(default=2000, ge=0, le=30_000)
    # Failed sign-ins to one email address before each further attempt waits, and the
    # longest wait; at least 60 s, so that no address allows 100 guesses an hour.
    sign_in_free_failures: int = Field(default=5, ge=1, le=10)
    sign_in_max_delay_seconds: int = Field(default=60, ge=60, le=3600)
    # Requests per second and burst, per signed-in user and per client address without a
    # token; kept in each process's memory.
    rate_limit_per_second: float = Field(default=100, gt=0, le=100_000)
    rate_limit_burst: int = Field(default=400, ge=1, le=1_000_000)
    anonymous_rate_limit_per_second: float = Field(default=20, gt=0, le=100_000)
    anonymous_rate_limit_burst: int = Field(default=200, ge=1, le=1_000_000)
    # Open WebSocket connections per signed-in user (and, without a sign-in, per client
    # address), and per process.
    max_ws_connections_per_user: int = Field(default=10, ge=1, le=100_000)
    # Below max_connections by default, so that however many WebSocket connections are
    # open, a hundred connections are left for HTTP requests.
    max_ws_connections: int = Field(default=900, ge=1, le=1_000_000)
    max_body_bytes: int = Field(default=MIB, ge=1024)
    max_query_depth: int = Field(default=12, ge=1)
    max_aliases: int = Field(default=15, ge=0)
    max_tokens: int = Field(default=2000, ge=10)
    # Most an operation may cost, as gql/schema/cost.py counts: database reads times page sizes.
    max_query_cost: int = Field(default=DEFAULT_MAX_QUERY_COST, ge=1, le=100_000_000)
    # How often a subscription looks for newly committed statement lines, and how many
    # subscriptions one WebSocket connection may hold at once.
    subscription_poll_ms: int = Field(default=DEFAULT_SUBSCRIPTION_POLL_MS, ge=10, le=60_000)
    max_subscriptions_per_connection: int = Field(default=20, ge=1)
    # Most database connections the subscriptions of one process hold at once, of its pool:
    # the rest stay free for requests however many streams start together.
    subscription_connections: int = Field(default=DEFAULT_SUBSCRIPTION_CONNECTIONS, ge=1, le=15)
    # Server processes `bankql serve` starts (unset: one per CPU in production, one in
    # development); the PostgreSQL connections each keeps open, all told, never more; and
    # whether repeated statements are prepared (off behind a pooler in transaction mode).
    workers: int | None = Field(default=None, ge=1, le=MAX_WORKERS)
    db_pool_size: int = Field(default=DEFAULT_POOL_SIZE, ge=2, le=1000)
    prepared_statements: bool = True
    # On PostgreSQL, committed lines are pushed at once; this slow look finds any whose
    # announcement was lost. The listening connection goes to this URL if set (straight to
    # the server, past any pooler), else to the database URL.
    subscription_safety_look_ms: int = Field(default=DEFAULT_SAFETY_LOOK_MS, ge=10, le=600_000)
    listen_database_url: str | None = None
    # Streaming standbys of the database, comma-separated: reads go to one that has caught
    # up with them (see persistence/replicas.py), else to the database URL.
    replica_database_urls: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Most lines one stream holds that its client has not taken; past it the stream ends.
    subscription_queue_limit: int = Field(default=1000, ge=1, le=1_000_000)
    # Subscriptions of one process that may be parsed, checked and signed in at once; more
    # wait their turn, so that thousands sent at once do not hold up every other request.
    subscription_starts: int = Field(default=DEFAULT_SUBSCRIPTION_STARTS, ge=1, le=100_000)
    # Most subscriptions one process holds at once, over all its connections.
    max_subscriptions: int = Field(default=20_000, ge=1, le=1_000_000)
    # The largest single movement and the largest balance of a customer account, in whole
    # units of the currency moved (1000 is 1000.00 EUR or 1000 JPY); unset, only 64 bits of
    # minor units bound them.
    max_movement_amount: int | None = Field(default=None, ge=1, le=MAX_MINOR_UNITS)
    max_account_balance: int | None = Field(default=None, ge=1, le=MAX_MINOR_UNITS)
    # The longest a hold may last before it expires (a placeHold without expiresInSeconds
    # lasts 7 days, or this if shorter), and the longest period one statement may cover.
    max_hold_seconds: int = Field(default=30 * 24 * 3600, ge=60, le=366 * 24 * 3600)
    max_statement_days: int = Field(default=366, ge=1, le=3660)
    # How long the server works on one request (or one subscription event) before it stops
    # the work and answers TIMEOUT; how long a client may take to send its headers or its
    # body; and how many connections one process serves at once. Fractions are allowed.
    request_timeout_s: float = Field(default=10, ge=0.05, le=3600)
    receive_timeout_s: float = Field(default=10, ge=0.05, le=3600)
    max_connections: int = Field(default=1000, ge=1, le=1_000_000)
    # Browser origins allowed to call the API, comma-separated; none by default.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # GET /metrics in Prometheus' text format (unset: on in development only), and how many
    # distinct operation names one process labels its figures with before the rest are
    # counted as "other".
    metrics: bool | None = None
    metrics_max_operation_names: int = Field(default=100, ge=0, le=10_000)
    # Traces of each request, its GraphQL operation and its SQL, sent over OTLP/HTTP to this
    # collector, for this share of the requests that arrive without a sampled parent trace.
    tracing: bool = False
    otel_endpoint: str = "http://127.0.0.1:4318/v1/traces"
    tracing_sample_ratio: float = Field(default=1.0, ge=0, le=1)

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_in_any_case(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("database_url", "listen_database_url")
    @classmethod
    def _readable_url(cls, url: str | None) -> str | None:
        if url is not None:
            check_database_url(url)
        return url

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins_are_origins(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            if origin != "*" and not re.fullmatch(r"https?://[^/\s]+", origin):
                raise ValueError(f"{origin!r} is not an origin such as https://app.example.com")
        return origins

    @field_validator("otel_endpoint")
    @classmethod
    def _endpoint_is_a_url(cls, endpoint: str) -> str:
        if not re.fullmatch(r"https?://[^/\s]+(/\S*)?", endpoint):
            raise ValueError(f"{endpoint!r} is not a URL such as http://collector:4318/v1/traces")
        return endpoint

    @field_validator("replica_database_urls", mode="before")
    @classmethod
    def _split_replica_urls(cls, value: object) -> object:
        if isinstance(value, str):
            return [url.strip() for url in value.split(",") if url.strip()]
        return value

    @field_validator("replica_database_urls")
    @classmethod
    def _replicas_are_postgresql(cls, urls: list[str]) -> list[str]:
        for url in urls:
            shown = _without_password(url)
            try:
                parsed = make_url(url)
            except ArgumentError:
                raise ValueError(
                    f"{shown!r} is not a database URL; write postgresql+psycopg://user:password"
                    "@host:5432/name for each standby, separated by commas"
                ) from None
            if parsed.drivername not in ("postgresql+psycopg", "postgresql+psycopg_async"):
                raise ValueError(
                    f"{shown!r}: a replica is a PostgreSQL standby reached with the psycopg 3 "
                    "driver: write postgresql+psycopg://user:password@host:5432/name"
                )
        return urls

    @property
    def development(self) -> bool:
        return self.env == "development"

    @property
    def graphiql_enabled(self) -> bool:
        """GraphiQL is served in development, and in production only when asked for."""
        return self.graphiql if self.graphiql is not None else self.development

    @property
    def hash_concurrency(self) -> int:
        """Half the CPUs unless set: a storm of sign-ins leaves the other half to everyone else."""
        return self.max_concurrent_hashes or max(1, (os.cpu_count() or 1) // 2)

    @property
    def worker_count(self) -> int:
        """Server processes: as set, else one per CPU in production and one in development."""
        if self.workers is not None:
            return self.workers
        if self.development:
            return 1
        # The CPUs this process may run on, which a container's cpuset narrows.
        usable = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
        return max(1, len(usable) if usable else os.cpu_count() or 1)

    @property
    def metrics_enabled(self) -> bool:
        """/metrics is served in development, and in production only when asked for."""
        return self.metrics if self.metrics is not None else self.development

    @property
    def introspection_enabled(self) -> bool:
        return self.introspection if self.introspection is not None else self.development

    def check_database(self) -> None:
        """Production runs on PostgreSQL unless SQLite is explicitly allowed."""
        if (
            not self.development
            and self.database_url.startswith("sqlite")
            and not (self.allow_sqlite)
        ):
            raise ConfigurationError(
                "BANKQL_ENV=production refuses SQLite: set BANKQL_DATABASE_URL to a PostgreSQL "
                "URL (postgresql+psycopg://...), or BANKQL_ALLOW_SQLITE=true to run on SQLite "
                "anyway, or BANKQL_ENV=development on a developer's machine."
            )

    def signing_key(self) -> str:
        """The token signing key; only development mode may make up a random one."""
        if self.secret_key is not None:
            key = self.secret_key.get_secret_value()
            if len(key) < MIN_SECRET_KEY_LENGTH:
                raise ConfigurationError(
                    f"BANKQL_SECRET_KEY must be at least {MIN_SECRET_KEY_LENGTH} characters long."
                )
            return key
        if self.development:
            logger.warning(
                "BANKQL_SECRET_KEY is not set: development mode signs tokens with a random key, "
                "so every restart signs everyone out"
            )
            return secrets.token_urlsafe(MIN_SECRET_KEY_LENGTH)
        raise ConfigurationError(
            "BANKQL_SECRET_KEY is not set. Set it to a random string of at least "
            f"{MIN_SECRET_KEY_LENGTH} characters (python3 -c 'import secrets; "
            "print(secrets.token_urlsafe(32))'), or set BANKQL_ENV=development to use a "
            "throwaway key."
        )


def _without_password(url: str) -> str:
    """The URL as it may be shown in a message: with any password hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def load_settings() -> Settings:
    """Settings from the environment; ConfigurationError names every bad value."""
    try:
        return Settings()
    except ValidationError as error:
        problems = [
            f"BANKQL_{'_'.join(map(str, issue['loc'])).upper()}: {issue['msg']}"
            for issue in error.errors()
        ]
        raise ConfigurationError("; ".join(problems)) from None
