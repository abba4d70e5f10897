"""Settings from the environment (prefix BANKQL_) and an optional .env file."""

from __future__ import annotations

import logging
import secrets
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./bankql.db"
MIN_SECRET_KEY_LENGTH = 32

logger = logging.getLogger("bankql")


class ConfigurationError(Exception):
    """A setting that stops the server from starting; the message says which and why."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BANKQL_", env_file=".env", extra="ignore")

    env: Literal["development", "production"] = "production"
    database_url: str = DEFAULT_DATABASE_URL
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    graphiql: bool = True
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    secret_key: SecretStr | None = None
    token_ttl_seconds: int = Field(default=3600, ge=60, le=30 * 24 * 3600)
    password_time_cost: int = Field(default=3, ge=1)
    password_memory_kib: int = Field(default=65536, ge=64)
    password_parallelism: int = Field(default=4, ge=1)

    def signing_key(self) -> str:
        """The token signing key; only development mode may make up a random one."""
        if self.secret_key is not None:
            key = self.secret_key.get_secret_value()
            if len(key) < MIN_SECRET_KEY_LENGTH:
                raise ConfigurationError(
                    f"BANKQL_SECRET_KEY must be at least {MIN_SECRET_KEY_LENGTH} characters long."
                )
            return key
        if self.env == "development":
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
