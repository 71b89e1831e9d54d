"""Pure parts of the catalog: monthly normalization and the typed view of a plan's prices."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest

from billing.catalog.models import Aggregation, MeteredComponent, Plan, PlanPrice
from billing.catalog.schemas import PlanCreate
from billing.catalog.service import AVERAGE_DAYS_PER_MONTH, monthly_amount, months_per_period
from billing.core.periods import Interval
from billing.core.pricing import MeteredPrice, PricingModel, Tier, price_metric
from tests.factories.catalog import api_calls_graduated, plan_body, price


def make_plan(
    interval: str = "month", interval_count: int = 1, prices: list[dict[str, Any]] | None = None
) -> Plan:
    """A plan version built the way the service builds it (validated, then dumped to JSON)."""
    data = PlanCreate.model_validate(
        plan_body(interval=interval, interval_count=interval_count, prices=prices or [price()])
    )
    return Plan(
        id=uuid.uuid4(),
        code=data.code,
        version=1,
        name=data.name,
        description=None,
        interval=data.interval.value,
        interval_count=data.interval_count,
        trial_days=0,
        active=True,
        prices=[p.model_dump(mode="json") for p in data.prices],
        metadata_={},
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def test_a_month_is_the_gregorian_average() -> None:
    assert Fraction("30.436875") == AVERAGE_DAYS_PER_MONTH


@pytest.mark.parametrize(
    ("interval", "count", "unit_amount", "expected"),
    [
        ("month", 1, 2900, Fraction(2900)),
        ("year", 1, 34800, Fraction(2900)),
        ("month", 3, 8700, Fraction(2900)),
        ("year", 2, 69600, Fraction(2900)),
        # 700 a week = 100 a day; a month is 30.436875 days on average.
        ("week", 1, 700, Fraction("3043.6875")),
        ("week", 2, 1400, Fraction("3043.6875")),
        ("day", 1, 100, Fraction("3043.6875")),
        ("day", 30, 3000, Fraction("3043.6875")),
        ("year", 1, 10000, Fraction(2500, 3)),  # 833.33…: exact, never rounded
        ("month", 1, 0, Fraction(0)),
    ],
)
def test_monthly_amount(interval: str, count: int, unit_amount: int, expected: Fraction) -> None:
    plan = make_plan(interval, count, [price("USD", unit_amount)])
    assert monthly_amount(plan, "USD") == expected
    assert monthly_amount(plan, "usd") == expected


def test_monthly_amount_uses_the_asked_currency() -> None:
    plan = make_plan("year", 1, [price("USD", 34800), price("JPY", 36000)])
    assert monthly_amount(plan, "JPY") == Fraction(3000)
    with pytest.raises(ValueError, match="no EUR price"):
        monthly_amount(plan, "EUR")


@pytest.mark.parametrize(
    ("interval", "count", "months"),
    [
        (Interval.DAY, 1, Fraction(4800, 146097)),
        (Interval.WEEK, 1, Fraction(7 * 4800, 146097)),
        (Interval.MONTH, 6, Fraction(6)),
        (Interval.YEAR, 3, Fraction(36)),
    ],
)
def test_months_per_period(interval: Interval, count: int, months: Fraction) -> None:
    assert months_per_period(interval, count) == months


def test_price_for_gives_the_typed_price() -> None:
    plan = make_plan(
        prices=[
            price("EUR", 2700),
            price(
                "USD",
                2900,
                metered=[
                    api_calls_graduated(),
                    {
                        "metric": "seats",
                        "aggregation": "unique_count",
                        "property": "user_id",
                        "model": "package",
                        "package_size": "5",
                        "package_amount": 1000,
                        "free_units": 1,
                    },
                ],
            ),
        ]
    )
    assert plan.currencies == ["EUR", "USD"]
    assert plan.price_for("GBP") is None
    assert plan.price_for("eur") == PlanPrice(currency="EUR", unit_amount=2700, metered={})
    assert plan.price_for("USD") == PlanPrice(
        currency="USD",
        unit_amount=2900,
        metered={
            "api_calls": MeteredComponent(
                metric="api_calls",
                aggregation=Aggregation.SUM,
                property=None,
                price=MeteredPrice(
                    model=PricingModel.graduated,
                    tiers=(
                        Tier(Decimal(1000), Decimal(0), 0),
                        Tier(None, Decimal("0.04"), 0),
                    ),
                ),
            ),
            "seats": MeteredComponent(
                metric="seats",
                aggregation=Aggregation.UNIQUE_COUNT,
                property="user_id",
                price=MeteredPrice(
                    model=PricingModel.package,
                    package_size=Decimal(5),
                    package_amount=1000,
                    free_units=Decimal(1),
                ),
            ),
        },
    )


def test_the_typed_price_prices_usage() -> None:
    plan = make_plan(prices=[price(metered=[api_calls_graduated()])])
    usd = plan.price_for("USD")
    assert usd is not None
    # 12,345 calls: 1,000 free, 11,345 x 0.04 cents = 453.8 -> 454 cents.
    amount, exact, _ = price_metric(usd.metered["api_calls"].price, Decimal(12345))
    assert (amount, exact) == (454, Decimal("453.80"))
    assert plan.interval_unit is Interval.MONTH
