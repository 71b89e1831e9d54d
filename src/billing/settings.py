"""One settings class; every field is an environment variable listed in .env.example."""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from billing.core.durations import parse_durations


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
    # Retries after a failed payment: days after the first failure ("3,5,7,10").
    payment_retry_days: str = "3,5,7,10"
    # A pending or unknown payment older than this is reconciled with the gateway.
    payment_reconcile_after_seconds: int = Field(default=300, ge=0)
    # Dunning steps: days after the due date of the oldest unpaid invoice, and the step.
    dunning_schedule: str = "3:reminder,7:warning,14:blocked"

    # Worker (the billing clock).
    run_worker: bool = True
    worker_tick_seconds: float = Field(default=5.0, gt=0)
    worker_batch_size: int = Field(default=500, ge=1)

    # Subscriptions: a paused subscription is canceled after this many days.
    pause_max_days: int = Field(default=90, ge=1)

    # Usage metering: how far in the future an event's timestamp may be, and how many days
    # after a period was invoiced its late events are still accepted (on a supplemental
    # invoice). The tolerance is seconds ("300") or an ISO 8601 duration ("PT5M").
    usage_future_tolerance: timedelta = Field(default=timedelta(minutes=5), ge=timedelta(0))
    usage_late_days: int = Field(default=7, ge=0, le=366)

    # Invoices.
    invoice_number_prefix: str = Field(default="INV-", max_length=16)

    # Tax. builtin: rates from /v1/tax-rates; stripe: Stripe Tax (STRIPE_SECRET_KEY).
    tax_provider: Literal["builtin", "stripe"] = "builtin"
    # The seller's country (ISO 3166-1, e.g. DE). Set to an EU country, it turns on EU reverse
    # charge for business customers in another EU country with a valid VAT id. Unset: only
    # accounts marked tax_exempt=reverse are reverse charged.
    seller_country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")

    # Test clocks: on by default only in the embedded (development) mode.
    test_clocks_enabled: bool | None = None

    # Events and outgoing webhooks.
    event_retention_days: int = Field(default=30, ge=1)
    # Unset: plain-http endpoint URLs are accepted in the embedded (development) mode only.
    webhooks_allow_http: bool | None = None
    # Endpoint URLs resolving to loopback, private or link-local addresses (SSRF guard).
    webhooks_allow_private: bool = False
    webhook_timeout_seconds: float = Field(default=15.0, gt=0, le=300)
    # Delays between a failed delivery and its retries; after the last one it is `failed`.
    webhook_retry_schedule: str = "5s,5m,30m,2h,5h"
    webhook_disable_after_days: float = Field(default=3.0, gt=0)

    # Email. SMTP_URL unset: emails are written to the log instead of being sent.
    smtp_url: str | None = None
    email_from: str = "billing@localhost"
    # Operational alerts (a webhook endpoint disabled) go here; unset: only logged.
    operator_email: str | None = None
    smtp_timeout_seconds: float = Field(default=10.0, gt=0)
    email_batch_size: int = Field(default=50, ge=1)

    @field_validator("smtp_url", mode="after")
    @classmethod
    def _smtp_url_is_valid(cls, value: str | None) -> str | None:
        if value is not None:
            from billing.notifications.smtp import parse_smtp_url

            parse_smtp_url(value)  # raises ValueError with what is wrong
        return value

    @field_validator("payment_retry_days")
    @classmethod
    def _retry_days(cls, value: str) -> str:
        retry_days(value)
        return value

    @field_validator("dunning_schedule")
    @classmethod
    def _dunning(cls, value: str) -> str:
        dunning_steps(value)
        return value

    @field_validator("usage_future_tolerance", mode="before")
    @classmethod
    def _seconds(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().isdigit():
            return int(value.strip())
        return value

    @field_validator(
        "database_url", "redis_url", "jwt_public_key", "smtp_url", "seller_country", mode="before"
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _valid_schedule(cls, value: str) -> str:
        parse_durations(value)
        return value

    @property
    def embedded(self) -> bool:
        return self.database_url is None

    @property
    def test_clocks_active(self) -> bool:
        if self.test_clocks_enabled is None:
            return self.embedded
        return self.test_clocks_enabled

    @property
    def webhooks_http_allowed(self) -> bool:
        if self.webhooks_allow_http is None:
            return self.embedded
        return self.webhooks_allow_http

    @property
    def webhook_retry_delays(self) -> tuple[float, ...]:
        return parse_durations(self.webhook_retry_schedule)


DUNNING_STEPS = ("reminder", "warning", "blocked")


def retry_days(value: str) -> tuple[int, ...]:
    """Parse PAYMENT_RETRY_DAYS ("3,5,7,10"): increasing positive day counts (may be empty)."""
    days = tuple(int(part) for part in value.split(",") if part.strip())
    if any(d <= 0 for d in days) or list(days) != sorted(set(days)):
        raise ValueError("PAYMENT_RETRY_DAYS must be increasing positive days, e.g. 3,5,7,10")
    return days


def dunning_steps(value: str) -> tuple[tuple[int, str], ...]:
    """Parse DUNNING_SCHEDULE ("3:reminder,7:warning,14:blocked") into (days, step) pairs."""
    steps: list[tuple[int, str]] = []
    for part in value.split(","):
        if not part.strip():
            continue
        days, _, step = part.partition(":")
        if step.strip() not in DUNNING_STEPS or int(days) < 0:
            raise ValueError(
                "DUNNING_SCHEDULE entries are DAYS:STEP with STEP one of reminder, warning, "
                "blocked, e.g. 3:reminder,7:warning,14:blocked"
            )
        steps.append((int(days), step.strip()))
    if [d for d, _ in steps] != sorted({d for d, _ in steps}) or len({s for _, s in steps}) != len(
        steps
    ):
        raise ValueError("DUNNING_SCHEDULE days must increase and each step appear once")
    return tuple(steps)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
