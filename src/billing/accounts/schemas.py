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
    ValidationInfo,
    field_validator,
)
from stdnum.eu import vat as eu_vat
from stdnum.exceptions import ValidationError as TaxIdInvalid

from billing.http.types import Currency, Metadata
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


def _timezone(value: str) -> str:
    if value not in _zones():
        raise ValueError(f"{value!r} is not an IANA time zone (e.g. 'Europe/Berlin')")
    return value


def _locale(value: str) -> str:
    try:
        return str(Locale.parse(value.replace("-", "_")))
    except (UnknownLocaleError, ValueError) as exc:
        raise ValueError(f"{value!r} is not a known locale (e.g. 'en_US', 'de_DE')") from exc


TimeZone = Annotated[str, AfterValidator(_timezone), Field(examples=["Europe/Berlin"])]
LocaleCode = Annotated[str, AfterValidator(_locale), Field(examples=["en_US"])]


class TaxId(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str = Field(
        min_length=1,
        max_length=32,
        examples=["eu_vat"],
        description="Stripe's tax id types; `eu_vat` values are checked (format and check "
        "digits) and stored compact (`DE 136 695 976` -> `DE136695976`).",
    )
    value: str = Field(min_length=1, max_length=64, examples=["DE136695976"])

    @field_validator("value")
    @classmethod
    def _valid_for_type(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("type") != "eu_vat":
            return value
        try:
            compact: str = eu_vat.validate(value)
        except TaxIdInvalid as exc:
            raise ValueError(
                f"{value!r} is not a valid EU VAT number ({str(exc).lower().rstrip('.')}); "
                "send the country prefix and the number, e.g. 'DE136695976'"
            ) from None
        return compact


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
    test_clock_id: uuid.UUID | None = Field(
        default=None,
        description="Attach the account to a test clock: all its billing follows that clock.",
    )
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
    test_clock_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime


class AccountDeleted(BaseModel):
    object: str = "account"
    id: uuid.UUID
    deleted: bool = True
