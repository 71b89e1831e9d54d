"""One settings class; every field is an environment variable listed in .env.example."""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", env_ignore_empty=True
    )

    # Database. Unset: an embedded PostgreSQL is started in BILLING_DATA_DIR.
    database_url: str | None = None
    billing_data_dir: Path = Path(".billing")
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)

    # HTTP server.
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    web_concurrency: int = Field(default=1, ge=1)
    max_request_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)

    # Redis is optional: shared rate limits across replicas.
    redis_url: str | None = None

    # Logging and tracing (OTEL_* variables are read by OpenTelemetry itself).
    log_level: str = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"

    # Auth.
    jwt_public_key: str | None = None
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    api_key_cache_seconds: float = Field(default=30.0, ge=0)
    bootstrap_admin_key: bool | None = None

    # Rate limiting and idempotency.
    rate_limit_per_hour: int = Field(default=1000, ge=1)
    rate_limit_enabled: bool = True
    idempotency_ttl_hours: int = Field(default=24, ge=1)

    # Payments.
    payment_gateway: Literal["sandbox", "stripe"] = "sandbox"
    stripe_secret_key: str | None = None
    stripe_webhook_secret: str | None = None
    stripe_api_base: str = "https://api.stripe.com"

    # Worker (the billing clock).
    run_worker: bool = True
    worker_tick_seconds: float = Field(default=5.0, gt=0)
    worker_batch_size: int = Field(default=500, ge=1)

    # Usage metering: how far in the future an event's timestamp may be, and how many days
    # after a period was invoiced its late events are still accepted (on a supplemental
    # invoice). The tolerance is seconds ("300") or an ISO 8601 duration ("PT5M").
    usage_future_tolerance: timedelta = Field(default=timedelta(minutes=5), ge=timedelta(0))
    usage_late_days: int = Field(default=7, ge=0, le=366)

    # Invoices.
    invoice_number_prefix: str = Field(default="INV-", max_length=16)

    # Test clocks: on by default only in the embedded (development) mode.
    test_clocks_enabled: bool | None = None

    @field_validator("usage_future_tolerance", mode="before")
    @classmethod
    def _seconds(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().isdigit():
            return int(value.strip())
        return value

    @field_validator("database_url", "redis_url", "jwt_public_key", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def embedded(self) -> bool:
        return self.database_url is None

    @property
    def test_clocks_active(self) -> bool:
        if self.test_clocks_enabled is None:
            return self.embedded
        return self.test_clocks_enabled


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
