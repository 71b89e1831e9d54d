"""Pure subscription rules: what a subscription's schedule is, and what the next due step does.

No I/O. The service and the worker hand in plan terms and local dates (in the account's time
zone) and write back what these functions return.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, timedelta
from enum import StrEnum

from billing.core.lifecycle import SubscriptionAction, SubscriptionStatus, transition
from billing.core.periods import (
    CALENDAR_INTERVALS,
    BillingPeriod,
    Interval,
    add_months,
    calendar_anchor_date,
    months_per_step,
    period_for_index,
)
from billing.core.proration import prorate


@dataclass(frozen=True, slots=True)
class Terms:
    """What the subscription's plan version charges, in the subscription's currency."""

    plan_name: str
    interval: Interval
    interval_count: int
    unit_amount: int


@dataclass(frozen=True, slots=True)
class Charge:
    """One fee line: in advance for a period (a full or a prorated one), or a trial line."""

    kind: str  # "subscription" | "trial"
    description: str
    period: BillingPeriod
    quantity: int
    unit_amount: int
    amount: int


@dataclass(frozen=True, slots=True)
class Schedule:
    status: SubscriptionStatus
    cycle_anchor: date | None
    anchor_day: int | None
    # -1 is a calendar-billed subscription's short first period, before the first anchor.
    period_index: int
    current_period: BillingPeriod | None
    trial: BillingPeriod | None
    cancel_at_period_end: bool
    # The local date whose midnight is the next instant the worker must act.
    next_action_on: date | None
    pause_at_period_end: bool = False


class StepKind(StrEnum):
    START = "start"
    END_TRIAL = "end_trial"
    RENEW = "renew"
    CANCEL = "cancel"
    PAUSE = "pause"
    RESUME = "resume"


@dataclass(frozen=True, slots=True)
class Step:
    kind: StepKind
    schedule: Schedule
    # The invoice this step produces, if any: its cycle key (unique per subscription) and lines.
    cycle_key: str | None
    charges: tuple[Charge, ...]


def span(period: BillingPeriod) -> str:
    """A period as shown on invoice lines: its first and last day (the end is exclusive)."""
    return f"{period.start.isoformat()} to {(period.end - timedelta(days=1)).isoformat()}"


def _seats(quantity: int) -> str:
    return f" × {quantity}" if quantity != 1 else ""  # noqa: RUF001 (shown on invoices)


def fee(terms: Terms, quantity: int, period: BillingPeriod, amount: int | None = None) -> Charge:
    full = terms.unit_amount * quantity
    return Charge(
        kind="subscription",
        description=f"{terms.plan_name}{_seats(quantity)} ({span(period)})",
        period=period,
        quantity=quantity,
        unit_amount=terms.unit_amount,
        amount=full if amount is None else amount,
    )


def previous_anchor(anchor: date, interval: Interval, count: int, anchor_day: int) -> date:
    """The anchor date one interval before `anchor`, on the same calendar grid."""
    return add_months(anchor, -months_per_step(interval, count), anchor_day)


def begin_paid(
    status: SubscriptionStatus,
    on: date,
    terms: Terms,
    quantity: int,
    anchor_day: int | None,
) -> tuple[Schedule, str, Charge]:
    """The first paid period starting on local date `on` (after a trial, or at the start)."""
    if anchor_day is None:
        period = period_for_index(on, terms.interval, terms.interval_count, 0)
        schedule = Schedule(status, on, None, 0, period, None, False, period.end)
        return schedule, period.start.isoformat(), fee(terms, quantity, period)
    anchor = calendar_anchor_date(on, anchor_day, terms.interval, terms.interval_count)
    if anchor == on:
        period = period_for_index(
            anchor, terms.interval, terms.interval_count, 0, day_of_month=anchor_day
        )
        schedule = Schedule(status, anchor, anchor_day, 0, period, None, False, period.end)
        return schedule, period.start.isoformat(), fee(terms, quantity, period)
    # A short first period up to the anchor, charged for its share of the full period.
    stub = BillingPeriod(on, anchor)
    full = BillingPeriod(
        previous_anchor(anchor, terms.interval, terms.interval_count, anchor_day), anchor
    )
    amount = prorate(terms.unit_amount * quantity, stub.days, full.days)
    schedule = Schedule(status, anchor, anchor_day, -1, stub, None, False, stub.end)
    return schedule, stub.start.isoformat(), fee(terms, quantity, stub, amount)


def start(
    start_date: date,
    *,
    terms: Terms,
    quantity: int,
    trial_days: int,
    anchor_day: int | None,
) -> Step:
    """What happens when a subscription starts (at creation, or when its start date comes)."""
    if trial_days > 0:
        trial = BillingPeriod(start_date, start_date + timedelta(days=trial_days))
        schedule = Schedule(
            status=transition(SubscriptionStatus.PENDING, SubscriptionAction.START, has_trial=True),
            cycle_anchor=None,
            anchor_day=anchor_day,
            period_index=0,
            current_period=trial,
            trial=trial,
            cancel_at_period_end=False,
            next_action_on=trial.end,
        )
        charge = Charge(
            kind="trial",
            description=f"Trial of {terms.plan_name} ({span(trial)})",
            period=trial,
            quantity=quantity,
            unit_amount=0,
            amount=0,
        )
        return Step(StepKind.START, schedule, f"trial:{trial.start.isoformat()}", (charge,))
    status = transition(SubscriptionStatus.PENDING, SubscriptionAction.START, has_trial=False)
    schedule, key, charge = begin_paid(status, start_date, terms, quantity, anchor_day)
    return Step(StepKind.START, schedule, key, (charge,))


def pending(start_date: date, anchor_day: int | None) -> Schedule:
    return Schedule(SubscriptionStatus.PENDING, None, anchor_day, 0, None, None, False, start_date)


def next_step(
    schedule: Schedule,
    *,
    terms: Terms,
    quantity: int,
    start_date: date,
    trial_days: int,
    pending: tuple[Terms, int] | None = None,
) -> Step:
    """The step that is due at `schedule.next_action_on` (the caller checks that it is due).

    `pending` is a plan or quantity change scheduled for this boundary: it applies before the
    renewal is priced (a different interval starts a new cycle from the boundary).
    """
    status = schedule.status
    if status is SubscriptionStatus.PENDING:
        return start(
            start_date,
            terms=terms,
            quantity=quantity,
            trial_days=trial_days,
            anchor_day=schedule.anchor_day,
        )
    if schedule.pause_at_period_end and status is SubscriptionStatus.ACTIVE:
        paused = replace(
            schedule,
            status=transition(status, SubscriptionAction.PAUSE),
            pause_at_period_end=False,
            next_action_on=None,
        )
        return Step(StepKind.PAUSE, paused, None, ())
    if schedule.cancel_at_period_end:
        ended = replace(
            schedule,
            status=transition(status, SubscriptionAction.CANCEL),
            next_action_on=None,
        )
        return Step(StepKind.CANCEL, ended, None, ())
    if status is SubscriptionStatus.TRIALING:
        assert schedule.trial is not None
        active = transition(status, SubscriptionAction.END_TRIAL)
        paid, key, charge = begin_paid(
            active, schedule.trial.end, terms, quantity, schedule.anchor_day
        )
        return Step(StepKind.END_TRIAL, replace(paid, trial=schedule.trial), key, (charge,))
    if pending is not None:
        new_terms, new_quantity = pending
        assert schedule.current_period is not None
        if (new_terms.interval, new_terms.interval_count) != (terms.interval, terms.interval_count):
            boundary = schedule.current_period.end
            anchor_day = schedule.anchor_day if new_terms.interval in CALENDAR_INTERVALS else None
            renewed, key, charge = begin_paid(
                transition(status, SubscriptionAction.RENEW),
                boundary,
                new_terms,
                new_quantity,
                anchor_day,
            )
            return Step(StepKind.RENEW, replace(renewed, trial=schedule.trial), key, (charge,))
        terms, quantity = new_terms, new_quantity
    # Renewal: the next period on the anchor's grid, always computed from the anchor.
    assert schedule.cycle_anchor is not None
    index = schedule.period_index + 1
    period = period_for_index(
        schedule.cycle_anchor,
        terms.interval,
        terms.interval_count,
        index,
        day_of_month=schedule.anchor_day,
    )
    renewed = replace(
        schedule,
        status=transition(status, SubscriptionAction.RENEW),
        period_index=index,
        current_period=period,
        next_action_on=period.end,
    )
    return Step(StepKind.RENEW, renewed, period.start.isoformat(), (fee(terms, quantity, period),))


def resume(on: date, *, terms: Terms, quantity: int) -> Step:
    """Resuming a paused subscription on local date `on`: a new cycle starts that day."""
    schedule, _, charge = begin_paid(SubscriptionStatus.ACTIVE, on, terms, quantity, None)
    return Step(StepKind.RESUME, schedule, f"resume:{on.isoformat()}", (charge,))


def nominal_period(schedule: Schedule, terms: Terms) -> BillingPeriod:
    """The full period the current one stands for: a calendar-billed short first period is
    prorated against the whole period it is part of, not against its own length."""
    period = schedule.current_period
    assert period is not None
    if schedule.period_index == -1 and schedule.anchor_day is not None:
        assert schedule.cycle_anchor is not None
        start = previous_anchor(
            schedule.cycle_anchor, terms.interval, terms.interval_count, schedule.anchor_day
        )
        return BillingPeriod(start, schedule.cycle_anchor)
    return period


@dataclass(frozen=True, slots=True)
class Change:
    """An immediate plan or quantity change: the new schedule, the invoice lines, the credit."""

    schedule: Schedule
    charges: tuple[Charge, ...]
    # Credit for the account balance when the unused part is worth more than the new charge.
    credit: int


def change_now(
    schedule: Schedule,
    *,
    old: Terms,
    old_quantity: int,
    new: Terms,
    new_quantity: int,
    on: date,
) -> Change:
    """Credit the unused part of the old price and charge the new one, from local date `on`.

    Same interval: the new price for the rest of the current period. Another interval: the
    current period ends today and a new cycle starts today, charged in full. A negative net
    becomes account credit; the invoice itself never goes below zero.
    """
    period = schedule.current_period
    assert period is not None
    assert period.contains(on)
    nominal = nominal_period(schedule, old)
    remaining = (period.end - on).days
    rest = BillingPeriod(on, period.end)
    credit_line = Charge(
        kind="proration",
        description=f"Unused time on {old.plan_name}{_seats(old_quantity)} ({span(rest)})",
        period=rest,
        quantity=old_quantity,
        unit_amount=old.unit_amount,
        amount=-prorate(old.unit_amount * old_quantity, remaining, nominal.days),
    )
    if (new.interval, new.interval_count) == (old.interval, old.interval_count):
        charge = Charge(
            kind="proration",
            description=f"Remaining time on {new.plan_name}{_seats(new_quantity)} ({span(rest)})",
            period=rest,
            quantity=new_quantity,
            unit_amount=new.unit_amount,
            amount=prorate(new.unit_amount * new_quantity, remaining, nominal.days),
        )
        new_schedule = schedule
    else:
        new_schedule, _, charge = begin_paid(schedule.status, on, new, new_quantity, None)
    charges = [credit_line, charge]
    net = credit_line.amount + charge.amount
    if net < 0:
        charges.append(
            Charge(
                kind="credit_balance",
                description="Unused amount moved to the account's credit balance",
                period=rest,
                quantity=1,
                unit_amount=-net,
                amount=-net,
            )
        )
    return Change(new_schedule, tuple(charges), max(0, -net))
