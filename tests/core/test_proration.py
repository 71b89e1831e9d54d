"""Tests for billing.core.proration."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.core.periods import BillingPeriod
from billing.core.proration import (
    ProrationLine,
    cancel_credit,
    change_proration,
    prorate,
    remaining_days,
    used_days,
)

D = date
APRIL = BillingPeriod(D(2025, 4, 1), D(2025, 5, 1))  # 30 days


@pytest.mark.parametrize(
    ("amount", "days", "period_days", "expected"),
    [
        (3000, 20, 30, 2000),
        (6000, 20, 30, 4000),
        # 10.05 x 1/2 = 5.025 → 5.03 (half-up), not 5.02 (banker's).
        (1005, 1, 2, 503),
        (1015, 1, 2, 508),
        # Negative amounts: half away from zero.
        (-1005, 1, 2, -503),
        (-1004, 1, 2, -502),
        (-1000, 1, 3, -333),
        (-2000, 1, 3, -667),
        # Ordinary rounding either way.
        (1000, 1, 3, 333),
        (2000, 1, 3, 667),
        (999, 1, 31, 32),  # 32.2258...
        (2900, 15, 31, 1403),  # 1403.2258...
        (2900, 14, 28, 1450),
        (2900, 14, 29, 1400),
        # Edges.
        (2900, 0, 31, 0),
        (2900, 31, 31, 2900),
        (0, 7, 30, 0),
        # Huge amounts stay exact: 10**30 + 1 halved is a tie, rounded up.
        (10**30 + 1, 1, 2, 5 * 10**29 + 1),
    ],
)
def test_prorate(amount: int, days: int, period_days: int, expected: int) -> None:
    assert prorate(amount, days, period_days) == expected


@pytest.mark.parametrize(
    ("days", "period_days", "message"),
    [
        (1, 0, "period_days must be positive"),
        (1, -30, "period_days must be positive"),
        (-1, 30, "days must be between 0 and 30"),
        (31, 30, "days must be between 0 and 30"),
    ],
)
def test_prorate_rejects_bad_days(days: int, period_days: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        prorate(1000, days, period_days)


@pytest.mark.parametrize(
    ("period", "change_date", "used", "remaining"),
    [
        (APRIL, D(2025, 4, 1), 0, 30),
        (APRIL, D(2025, 4, 11), 10, 20),
        (APRIL, D(2025, 4, 30), 29, 1),
        (BillingPeriod(D(2025, 2, 1), D(2025, 3, 1)), D(2025, 2, 15), 14, 14),
        (BillingPeriod(D(2024, 2, 1), D(2024, 3, 1)), D(2024, 2, 15), 14, 15),
    ],
)
def test_used_and_remaining_days(
    period: BillingPeriod, change_date: date, used: int, remaining: int
) -> None:
    assert used_days(period, change_date) == used
    assert remaining_days(period, change_date) == remaining


@pytest.mark.parametrize("outside", [D(2025, 3, 31), D(2025, 5, 1)])
def test_days_reject_dates_outside_the_period(outside: date) -> None:
    with pytest.raises(ValueError, match="outside the period"):
        remaining_days(APRIL, outside)
    with pytest.raises(ValueError, match="outside the period"):
        used_days(APRIL, outside)
    with pytest.raises(ValueError, match="outside the period"):
        change_proration(APRIL, outside, 3000, 6000)


def test_design_example_upgrade_on_april_11() -> None:
    credit, charge = change_proration(APRIL, D(2025, 4, 11), 3000, 6000)
    assert credit == ProrationLine(
        kind="credit",
        description="Unused time: 20 of 30 days from 2025-04-11",
        amount=-2000,
        days=20,
        period_days=30,
        start=D(2025, 4, 11),
        end=D(2025, 5, 1),
    )
    assert charge == ProrationLine(
        kind="charge",
        description="Remaining time: 20 of 30 days from 2025-04-11",
        amount=4000,
        days=20,
        period_days=30,
        start=D(2025, 4, 11),
        end=D(2025, 5, 1),
    )
    assert credit.amount + charge.amount == 2000


@pytest.mark.parametrize(
    ("period", "change_date", "old", "new", "credit", "charge", "days"),
    [
        # Change on the first day: the whole period swaps price.
        (APRIL, D(2025, 4, 1), 3000, 6000, -3000, 6000, 30),
        # Change on the last day: one day of thirty.
        (APRIL, D(2025, 4, 30), 3000, 6000, -100, 200, 1),
        # 31-day month, 16 of 31 days left: 2900 x 16/31 = 1496.77 → 1497.
        (BillingPeriod(D(2025, 1, 1), D(2025, 2, 1)), D(2025, 1, 16), 2900, 4900, -1497, 2529, 16),
        # February, 28 days, 14 left: exact halves.
        (BillingPeriod(D(2025, 2, 1), D(2025, 3, 1)), D(2025, 2, 15), 2900, 4900, -1450, 2450, 14),
        # Leap February, 29 days, 15 left: 2900 x 15/29 = 1500; 4900 x 15/29 = 2534.48.
        (BillingPeriod(D(2024, 2, 1), D(2024, 3, 1)), D(2024, 2, 15), 2900, 4900, -1500, 2534, 15),
        # Seats 3 → 5 at 1000 each, 10 of 30 days left: -1000 and +1666.67 → 1667.
        (APRIL, D(2025, 4, 21), 3 * 1000, 5 * 1000, -1000, 1667, 10),
        # Downgrade: the credit exceeds the charge.
        (APRIL, D(2025, 4, 16), 6000, 3000, -3000, 1500, 15),
        # Half-cent ties on both lines round up in magnitude: 1005 x 15/30.
        (APRIL, D(2025, 4, 16), 1005, 1015, -503, 508, 15),
        # From a free plan.
        (APRIL, D(2025, 4, 11), 0, 6000, 0, 4000, 20),
    ],
)
def test_change_proration(
    period: BillingPeriod,
    change_date: date,
    old: int,
    new: int,
    credit: int,
    charge: int,
    days: int,
) -> None:
    credit_line, charge_line = change_proration(period, change_date, old, new)
    assert (credit_line.kind, credit_line.amount) == ("credit", credit)
    assert (charge_line.kind, charge_line.amount) == ("charge", charge)
    for line in (credit_line, charge_line):
        assert (line.days, line.period_days) == (days, period.days)
        assert (line.start, line.end) == (change_date, period.end)


@pytest.mark.parametrize(("old", "new"), [(-1, 1000), (1000, -1)])
def test_change_proration_rejects_negative_prices(old: int, new: int) -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        change_proration(APRIL, D(2025, 4, 11), old, new)


@pytest.mark.parametrize(
    ("kind", "amount"),
    [("credit", 1), ("charge", -1)],
)
def test_proration_line_rejects_wrong_sign(kind: str, amount: int) -> None:
    with pytest.raises(ValueError, match="cannot be"):
        ProrationLine(
            kind=kind,  # type: ignore[arg-type]
            description="x",
            amount=amount,
            days=1,
            period_days=30,
            start=D(2025, 4, 30),
            end=D(2025, 5, 1),
        )


@pytest.mark.parametrize(
    ("cancel_date", "amount", "expected"),
    [
        (D(2025, 4, 1), 3000, 3000),  # canceled on the first day: nothing used
        (D(2025, 4, 11), 3000, 2000),
        (D(2025, 4, 30), 3000, 100),
        (D(2025, 4, 16), 1005, 503),
        (D(2025, 4, 11), 0, 0),
    ],
)
def test_cancel_credit(cancel_date: date, amount: int, expected: int) -> None:
    assert cancel_credit(APRIL, cancel_date, amount) == expected


def test_cancel_credit_rejects_negative_amount() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        cancel_credit(APRIL, D(2025, 4, 11), -1)


# ---------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------


@st.composite
def period_and_day(draw: st.DrawFn) -> tuple[BillingPeriod, date]:
    start = draw(st.dates(min_value=D(2000, 1, 1), max_value=D(2100, 1, 1)))
    length = draw(st.integers(min_value=1, max_value=3 * 366))
    offset = draw(st.integers(min_value=0, max_value=length - 1))
    return BillingPeriod(start, start + timedelta(days=length)), start + timedelta(days=offset)


amounts = st.integers(min_value=0, max_value=10**12)
signed_amounts = st.integers(min_value=-(10**12), max_value=10**12)


@given(case=period_and_day(), amount=amounts)
def test_same_price_change_nets_to_zero(case: tuple[BillingPeriod, date], amount: int) -> None:
    period, day = case
    credit, charge = change_proration(period, day, amount, amount)
    assert credit.amount + charge.amount == 0
    assert cancel_credit(period, day, amount) == -credit.amount


@given(
    amount=signed_amounts,
    period_days=st.integers(min_value=1, max_value=1000),
    data=st.data(),
)
def test_prorate_is_monotone_and_bounded(
    amount: int, period_days: int, data: st.DataObject
) -> None:
    days = data.draw(st.integers(min_value=0, max_value=period_days - 1))
    here = prorate(amount, days, period_days)
    after = prorate(amount, days + 1, period_days)
    if amount >= 0:
        assert here <= after
    else:
        assert here >= after
    assert abs(here) <= abs(amount)
    assert prorate(amount, period_days, period_days) == amount
    # Half away from zero is symmetric.
    assert prorate(-amount, days, period_days) == -here


@given(amount=signed_amounts, period_days=st.integers(min_value=1, max_value=1000), data=st.data())
def test_prorate_is_within_half_a_unit_of_the_exact_value(
    amount: int, period_days: int, data: st.DataObject
) -> None:
    days = data.draw(st.integers(min_value=0, max_value=period_days))
    # Compare in integers: |2 x (result x period_days - amount x days)| ≤ period_days.
    error = 2 * (prorate(amount, days, period_days) * period_days - amount * days)
    assert abs(error) <= period_days
