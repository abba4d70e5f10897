"""Settings from the environment (prefix BANKQL_) and an optional .env file."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./bankql.db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BANKQL_", env_file=".env", extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL
    host: str = "127.0.0.1"
    port: int = 8000
    graphiql: bool = True
    log_level: str = "INFO"
