from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from billing.http.types import DecimalOut

Country = Annotated[str, Field(pattern=r"^[A-Z]{2}$", examples=["DE"])]
Percentage = Annotated[
    Decimal,
    Field(ge=0, le=100, max_digits=7, decimal_places=4, examples=["19"]),
]


class TaxRateCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "country": "DE",
                    "name": "VAT",
                    "percentage": "19",
                    "effective_from": "2026-01-01",
                },
                {
                    "country": "US",
                    "region": "CA",
                    "name": "Sales tax",
                    "percentage": "7.25",
                    "effective_from": "2026-01-01",
                },
            ]
        },
    )

    country: Country = Field(description="ISO 3166-1 alpha-2 country of the buyer.")
    region: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="A region of the country (state, province) as in the account's address; "
        "a region's rate wins over the country's.",
    )
    name: str = Field(min_length=1, max_length=100, examples=["VAT"])
    description: str | None = Field(default=None, max_length=500)
    percentage: Percentage
    inclusive: bool = Field(
        default=False, description="Only exclusive rates (tax added on top) are supported."
    )
    effective_from: date = Field(
        description="Applies to invoices finalized on or after this local date."
    )
    effective_to: date | None = Field(
        default=None, description="Last applies the day before this date; null: open-ended."
    )

    @model_validator(mode="after")
    def _check(self) -> TaxRateCreate:
        if self.inclusive:
            raise ValueError("inclusive tax rates are not supported; send inclusive: false")
        if self.effective_to is not None and self.effective_to <= self.effective_from:
            raise ValueError("effective_to must be after effective_from")
        return self


class TaxRateUpdate(BaseModel):
    """Only what does not change the tax of invoices already finalized with the rate."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"effective_to": "2027-01-01"}]},
    )

    description: str | None = Field(default=None, max_length=500)
    effective_to: date | None = Field(
        default=None, description="End the rate (exclusive); it must not end before it starts."
    )


class TaxRateRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    object: str = "tax_rate"
    id: uuid.UUID
    country: str
    region: str | None
    name: str
    description: str | None
    percentage: DecimalOut
    inclusive: bool
    effective_from: date
    effective_to: date | None
    created_at: datetime
