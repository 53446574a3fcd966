"""Settings, read from the environment (and an optional `.env` file)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Runtime configuration.

    Every field maps to an environment variable: ``database_url`` to ``DATABASE_URL``, the
    others to ``ATLAS_<NAME>`` (e.g. ``ATLAS_PORT``).
    """

    model_config = SettingsConfigDict(env_prefix="ATLAS_", env_file=".env", extra="ignore")

    database_url: str | None = Field(
        default=None,
        validation_alias="DATABASE_URL",
        description="PostgreSQL URL. Unset: an embedded PostgreSQL is started in data_dir.",
    )
    data_dir: Path = Field(default=Path(".atlas-data"), description="Embedded database and secrets.")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    log_level: str = "INFO"
    session_ttl: int = Field(default=7 * 24 * 3600, ge=60, description="Login session lifetime, seconds.")
    pool_min_size: int = Field(default=1, ge=1)
    pool_max_size: int = Field(default=10, ge=1)
    db_timeout: float = Field(default=5.0, gt=0, description="Seconds to wait for a database connection.")
    statement_timeout_ms: int = Field(default=120_000, ge=0)
    login_max_failures: int = Field(default=10, ge=1)
    login_window_seconds: int = Field(default=15 * 60, ge=1)
    parse_workers: int = Field(
        default=0, ge=0, le=256,
        description="Processes that analyse ingested SQL off the event loop; 0: one per CPU.")
    parse_max_bytes: int = Field(
        default=256 * 1024, ge=1024,
        description="A statement larger than this (bytes of UTF-8) is stored unanalysed: 'too complex to analyse'.")
    parse_seconds: float = Field(
        default=2.0, gt=0, le=600,
        description="Wall-clock seconds the analysis of one statement may take before it is stored unanalysed.")
    secure_cookies: bool | None = Field(
        default=None, description="Force the Secure cookie flag; default: on when the request is HTTPS."
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
