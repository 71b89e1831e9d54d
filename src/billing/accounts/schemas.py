from __future__ import annotations

import uuid
import zoneinfo
from datetime import datetime
from enum import StrEnum
from functools import cache
from typing import Annotated, Any

from babel import Locale, UnknownLocaleError
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    field_validator,
)

from billing.core.money import is_active_currency
from billing.payments.schemas import PaymentMethodRead


class AccountStatus(StrEnum):
    ACTIVE = "active"
    WARNING = "warning"
    BLOCKED = "blocked"


class TaxExempt(StrEnum):
    NONE = "none"
    EXEMPT = "exempt"
    REVERSE = "reverse"


@cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _currency(value: str) -> str:
    code = value.strip().upper()
    if not is_active_currency(code):
        raise ValueError(f"{value!r} is not an active ISO 4217 currency code")
    return code


def _timezone(value: str) -> str:
    if value not in _zones():
        raise ValueError(f"{value!r} is not an IANA time zone (e.g. 'Europe/Berlin')")
    return value


def _locale(value: str) -> str:
    try:
        return str(Locale.parse(value.replace("-", "_")))
    except (UnknownLocaleError, ValueError) as exc:
        raise ValueError(f"{value!r} is not a known locale (e.g. 'en_US', 'de_DE')") from exc


Currency = Annotated[str, AfterValidator(_currency), Field(examples=["USD"])]
TimeZone = Annotated[str, AfterValidator(_timezone), Field(examples=["Europe/Berlin"])]
LocaleCode = Annotated[str, AfterValidator(_locale), Field(examples=["en_US"])]


def _metadata(value: dict[str, str]) -> dict[str, str]:
    if len(value) > 50:
        raise ValueError("at most 50 keys")
    for key, item in value.items():
        if not 1 <= len(key) <= 40:
            raise ValueError(f"key {key!r} must be 1 to 40 characters")
        if len(item) > 500:
            raise ValueError(f"value of {key!r} is longer than 500 characters")
    return value


Metadata = Annotated[dict[str, str], AfterValidator(_metadata)]


class TaxId(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1, max_length=32, examples=["eu_vat"])
    value: str = Field(min_length=1, max_length=64, examples=["DE123456789"])


class Address(BaseModel):
    model_config = ConfigDict(extra="forbid")

    line1: str | None = Field(default=None, max_length=200)
    line2: str | None = Field(default=None, max_length=200)
    city: str | None = Field(default=None, max_length=100)
    region: str | None = Field(default=None, max_length=100)
    postal_code: str | None = Field(default=None, max_length=32)
    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$", examples=["DE"])


class AccountCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"email": "ada@example.com"},
                {
                    "email": "billing@acme.example",
                    "name": "Acme GmbH",
                    "currency": "EUR",
                    "timezone": "Europe/Berlin",
                    "locale": "de_DE",
                    "address": {"country": "DE", "city": "Berlin"},
                    "metadata": {"crm_id": "4711"},
                    "payment_method": "pm_card_visa",
                },
            ]
        },
    )

    email: EmailStr
    name: str | None = Field(default=None, max_length=200)
    currency: Currency = "USD"
    timezone: TimeZone = "UTC"
    locale: LocaleCode = "en_US"
    tax_exempt: TaxExempt = TaxExempt.NONE
    tax_ids: list[TaxId] = Field(default_factory=list, max_length=10)
    address: Address | None = None
    metadata: Metadata = Field(default_factory=dict)
    payment_method: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        description="A payment method token from the gateway (e.g. `pm_card_visa` in the "
        "sandbox), attached and made the default in the same request.",
    )


class AccountUpdate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "Acme Inc.", "tax_exempt": "exempt"}]},
    )

    email: EmailStr | None = None
    name: str | None = Field(default=None, max_length=200)
    currency: Currency | None = None
    timezone: TimeZone | None = None
    locale: LocaleCode | None = None
    tax_exempt: TaxExempt | None = None
    tax_ids: list[TaxId] | None = Field(default=None, max_length=10)
    address: Address | None = None
    metadata: Metadata | None = None

    @field_validator("email", "currency", "timezone", "locale", "tax_exempt", "tax_ids", "metadata")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        # Sending null for a required attribute is a mistake, not "leave unchanged".
        if value is None:
            raise ValueError("may not be null")
        return value


class AccountRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    object: str = "account"
    id: uuid.UUID
    email: str
    name: str | None
    currency: str
    timezone: str
    locale: str
    status: AccountStatus
    tax_exempt: TaxExempt
    tax_ids: list[TaxId]
    address: Address | None
    metadata: dict[str, str]
    default_payment_method: PaymentMethodRead | None
    created_at: datetime
    updated_at: datetime


class AccountDeleted(BaseModel):
    object: str = "account"
    id: uuid.UUID
    deleted: bool = True
