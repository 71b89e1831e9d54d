"""Day-based proration of per-period amounts (integer minor units).

The fraction of a period is ``days used or left / days in that period``, in
local dates of the account's time zone. A change on local day D counts D as
the first day of the new state. Each line is computed exactly and rounded
once, half-up (half away from zero for negative amounts).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Literal

from billing.core.periods import BillingPeriod

__all__ = [
    "ProrationLine",
    "cancel_credit",
    "change_proration",
    "prorate",
    "remaining_days",
    "used_days",
]


def prorate(amount: int, days: int, period_days: int) -> int:
    """Return ``amount x days / period_days`` rounded half-up to an integer."""
    if period_days <= 0:
        raise ValueError(f"period_days must be positive, got {period_days}")
    if not 0 <= days <= period_days:
        raise ValueError(f"days must be between 0 and {period_days}, got {days}")
    numerator = amount * days
    with localcontext() as ctx:
        # Enough digits that the quotient is never rounded onto (or off) an
        # exact .5 before quantize sees it: non-ties are at least
        # 1 / (2 x period_days) away from one.
        ctx.prec = len(str(abs(numerator))) + len(str(period_days)) + 2
        quotient = Decimal(numerator) / Decimal(period_days)
        # ROUND_HALF_UP rounds ties away from zero, so -502.5 → -503.
        return int(quotient.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _check_in_period(period: BillingPeriod, day: date) -> None:
    if not period.contains(day):
        raise ValueError(f"date {day} is outside the period [{period.start}, {period.end})")


def remaining_days(period: BillingPeriod, change_date: date) -> int:
    """Days from ``change_date`` (inclusive) to the period's end (exclusive)."""
    _check_in_period(period, change_date)
    return (period.end - change_date).days


def used_days(period: BillingPeriod, change_date: date) -> int:
    """Days from the period's start (inclusive) to ``change_date`` (exclusive)."""
    _check_in_period(period, change_date)
    return (change_date - period.start).days


@dataclass(frozen=True, slots=True)
class ProrationLine:
    """One prorated invoice line; ``[start, end)`` are the local dates it covers."""

    kind: Literal["credit", "charge"]
    description: str
    amount: int
    days: int
    period_days: int
    start: date
    end: date

    def __post_init__(self) -> None:
        if self.kind == "credit" and self.amount > 0:
            raise ValueError(f"a credit line cannot be positive, got {self.amount}")
        if self.kind == "charge" and self.amount < 0:
            raise ValueError(f"a charge line cannot be negative, got {self.amount}")


def _check_price(name: str, amount: int) -> None:
    if amount < 0:
        raise ValueError(f"{name} must not be negative, got {amount}")


def change_proration(
    period: BillingPeriod,
    change_date: date,
    old_amount: int,
    new_amount: int,
) -> tuple[ProrationLine, ProrationLine]:
    """Return (credit, charge) lines for an immediate price change on ``change_date``.

    ``old_amount`` and ``new_amount`` are full per-period amounts (price x
    quantity). The credit (≤ 0) returns the unused part of the old amount; the
    charge (≥ 0) bills the new amount for the rest of the period.
    """
    _check_price("old_amount", old_amount)
    _check_price("new_amount", new_amount)
    days = remaining_days(period, change_date)
    span = f"{days} of {period.days} days from {change_date.isoformat()}"
    credit = ProrationLine(
        kind="credit",
        description=f"Unused time: {span}",
        amount=-prorate(old_amount, days, period.days),
        days=days,
        period_days=period.days,
        start=change_date,
        end=period.end,
    )
    charge = ProrationLine(
        kind="charge",
        description=f"Remaining time: {span}",
        amount=prorate(new_amount, days, period.days),
        days=days,
        period_days=period.days,
        start=change_date,
        end=period.end,
    )
    return credit, charge


def cancel_credit(period: BillingPeriod, cancel_date: date, amount: int) -> int:
    """Return the credit (≥ 0) for the unused part of ``amount`` on an immediate cancel.

    The cancel day itself is unused: it counts as the first day of the new state.
    """
    _check_price("amount", amount)
    return prorate(amount, remaining_days(period, cancel_date), period.days)
