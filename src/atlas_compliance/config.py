"""Settings, read from the environment (and an optional `.env` file)."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
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
    min_retention_days: int = Field(
        default=365, ge=7, le=36_500,
        description="Installation floor of every org's audit retention (days); HIPAA keeps documentation 6 years "
                    "(2,190 days). Written into the database by `db upgrade`.")
    min_hard_delete_delay_days: int = Field(
        default=30, ge=0, le=36_500,
        description="Installation floor of the delay between soft and hard delete (days).")
    service_role: str = Field(default="atlas_service", description="Database role `serve` should connect as.")
    writer_role: str = Field(default="atlas_writer", description="Database role of outside writers (INSERT only).")

    max_login_body_bytes: int = Field(
        default=8 * 1024, ge=1024, description="Largest request body of a login (API and console form), bytes.")
    max_upload_body_bytes: int = Field(
        default=16 * 1024 * 1024, ge=1024, description="Largest body sent to /api/v1/admin/compliance/classifications, bytes.")
    max_body_bytes: int = Field(
        default=64 * 1024, ge=1024, description="Largest request body of the other routes (ingest: 10 MiB), bytes.")
    trusted_proxies: str = Field(
        default="",
        description="Comma-separated addresses or CIDR networks of reverse proxies whose X-Forwarded-For "
        "is believed (default none: the connection's peer is the client address).")

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
    signing_key: Path | None = Field(
        default=None,
        description="PEM file of the Ed25519 key that signs checkpoints; default: data_dir/signing-key.pem, "
                    "generated on first use.",
    )
    checkpoint_dir: Path | None = Field(
        default=None, description="Where `serve` writes signed checkpoints; default: data_dir/checkpoints."
    )
    checkpoint_interval: int = Field(
        default=3600, ge=1, description="Seconds between the checkpoints `serve` writes for every organization."
    )

    @property
    def checkpoints_path(self) -> Path:
        return Path(self.checkpoint_dir or Path(self.data_dir) / "checkpoints").expanduser()


    @field_validator("trusted_proxies")
    @classmethod
    def _valid_networks(cls, value: str) -> str:
        for item in value.split(","):
            if item.strip():
                try:
                    ipaddress.ip_network(item.strip(), strict=False)
                except ValueError:
                    raise ValueError(f"ATLAS_TRUSTED_PROXIES: {item.strip()!r} is not an address or CIDR "
                                     "network, e.g. 10.0.0.0/8,192.0.2.10") from None
        return value

    @property
    def trusted_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return _networks(self.trusted_proxies)


@lru_cache(maxsize=16)
def _networks(text: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in text.split(",") if item.strip())


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
