"""Billing periods: calendar arithmetic on local dates and their UTC instants.

A billing period is a half-open range ``[start, end)`` of *local dates* in the
account's IANA time zone. Periods advance from an anchor by ``n x count x
interval``, always computed from the anchor (never period by period) so month
end clamping cannot drift: anchor Jan 31 gives Feb 28/29, Mar 31, Apr 30.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "CALENDAR_INTERVALS",
    "BillingPeriod",
    "Interval",
    "add_intervals",
    "add_months",
    "calendar_anchor_date",
    "calendar_first_period",
    "calendar_period_at",
    "local_date",
    "local_midnight",
    "months_per_step",
    "period_at",
    "period_bounds_utc",
    "period_for_index",
    "period_index_at",
]


class Interval(StrEnum):
    """Unit of a billing interval."""

    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    YEAR = "year"


# The intervals billed on calendar months (a day-of-month anchor applies to them).
CALENDAR_INTERVALS = (Interval.MONTH, Interval.YEAR)


@dataclass(frozen=True, slots=True)
class BillingPeriod:
    """Half-open range ``[start, end)`` of local dates."""

    start: date
    end: date

    def __post_init__(self) -> None:
        if not self.start < self.end:
            raise ValueError(f"period start {self.start} must be before end {self.end}")

    @property
    def days(self) -> int:
        """Number of local days in the period."""
        return (self.end - self.start).days

    def contains(self, day: date) -> bool:
        """Whether local date ``day`` falls inside ``[start, end)``."""
        return self.start <= day < self.end


# ---------------------------------------------------------------------------
# Anniversary arithmetic
# ---------------------------------------------------------------------------


def _days_in_month(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1]


def months_per_step(interval: Interval, count: int) -> int:
    return count * (12 if interval is Interval.YEAR else 1)


def _days_per_step(interval: Interval, count: int) -> int:
    return count * (7 if interval is Interval.WEEK else 1)


def _check_interval(interval: Interval | str, count: int) -> Interval:
    interval = Interval(interval)
    if count < 1:
        raise ValueError(f"interval_count must be at least 1, got {count}")
    return interval


def _check_day_of_month(anchor: date, interval: Interval, day_of_month: int | None) -> int:
    """Return the day of month that month arithmetic keeps (the anchor's by default)."""
    if day_of_month is None:
        return anchor.day
    if interval not in CALENDAR_INTERVALS:
        raise ValueError(f"a day-of-month anchor needs a month or year interval, not {interval}")
    if not 1 <= day_of_month <= 31:
        raise ValueError(f"day_of_month must be between 1 and 31, got {day_of_month}")
    expected = min(day_of_month, _days_in_month(anchor.year, anchor.month))
    if anchor.day != expected:
        # The anchor must itself be an occurrence of the day, or later periods drift.
        raise ValueError(f"anchor {anchor} is not on day {day_of_month} (clamped) of its month")
    return day_of_month


def add_months(anchor: date, months: int, day: int) -> date:
    """Return ``anchor`` moved by ``months`` (negative: back) on day ``day``, clamped."""
    index = anchor.year * 12 + (anchor.month - 1) + months
    year, month0 = divmod(index, 12)
    month = month0 + 1
    return date(year, month, min(day, _days_in_month(year, month)))


def add_intervals(
    anchor: date,
    interval: Interval,
    count: int,
    n: int,
    *,
    day_of_month: int | None = None,
) -> date:
    """Return the date ``n x count x interval`` after ``anchor``.

    Month and year steps keep the anchor's day (or ``day_of_month`` when given,
    for calendar billing whose anchor date was itself clamped) and clamp it to
    the month's last day.
    """
    interval = _check_interval(interval, count)
    if n < 0:
        raise ValueError(f"n must not be negative, got {n}")
    day = _check_day_of_month(anchor, interval, day_of_month)
    if interval in (Interval.DAY, Interval.WEEK):
        return anchor + timedelta(days=n * _days_per_step(interval, count))
    return add_months(anchor, n * months_per_step(interval, count), day)


def period_for_index(
    anchor: date,
    interval: Interval,
    count: int,
    k: int,
    *,
    day_of_month: int | None = None,
) -> BillingPeriod:
    """Return period ``k`` (0-based) counted from ``anchor``."""
    return BillingPeriod(
        add_intervals(anchor, interval, count, k, day_of_month=day_of_month),
        add_intervals(anchor, interval, count, k + 1, day_of_month=day_of_month),
    )


def period_index_at(
    anchor: date,
    interval: Interval,
    count: int,
    on: date,
    *,
    day_of_month: int | None = None,
) -> int:
    """Return the index of the period from ``anchor`` that contains local date ``on``."""
    interval = _check_interval(interval, count)
    _check_day_of_month(anchor, interval, day_of_month)
    if on < anchor:
        raise ValueError(f"date {on} is before the anchor {anchor}")
    if interval in (Interval.DAY, Interval.WEEK):
        return (on - anchor).days // _days_per_step(interval, count)
    months = (on.year - anchor.year) * 12 + (on.month - anchor.month)
    k = months // months_per_step(interval, count)
    # Period k starts in on's month or earlier; if it starts later in that same
    # month (anchor day after on's day), on belongs to the previous period.
    while k > 0 and add_intervals(anchor, interval, count, k, day_of_month=day_of_month) > on:
        k -= 1
    return k


def period_at(
    anchor: date,
    interval: Interval,
    count: int,
    on: date,
    *,
    day_of_month: int | None = None,
) -> BillingPeriod:
    """Return the period from ``anchor`` that contains local date ``on`` (``on >= anchor``)."""
    k = period_index_at(anchor, interval, count, on, day_of_month=day_of_month)
    return period_for_index(anchor, interval, count, k, day_of_month=day_of_month)


# ---------------------------------------------------------------------------
# Calendar billing (fixed day-of-month anchor)
# ---------------------------------------------------------------------------


def calendar_anchor_date(
    start: date,
    anchor_day: int,
    interval: Interval,
    count: int,
    *,
    anchor_month: int | None = None,
) -> date:
    """Return the first anchor occurrence on or after ``start``.

    Full periods advance from this date with ``day_of_month=anchor_day``, so an
    anchor day of 31 gives Feb 28 → Mar 31 → Apr 30. ``anchor_month`` (year
    intervals only) pins yearly billing to one month, e.g. every Jan 1; without
    it the next occurrence of the day in any month is used.
    """
    interval = _check_interval(interval, count)
    if interval not in CALENDAR_INTERVALS:
        raise ValueError(f"calendar billing needs a month or year interval, not {interval}")
    if not 1 <= anchor_day <= 31:
        raise ValueError(f"anchor_day must be between 1 and 31, got {anchor_day}")
    if anchor_month is not None:
        if interval is not Interval.YEAR:
            raise ValueError("anchor_month is only valid with a year interval")
        if not 1 <= anchor_month <= 12:
            raise ValueError(f"anchor_month must be between 1 and 12, got {anchor_month}")
        year = start.year
        candidate = date(year, anchor_month, min(anchor_day, _days_in_month(year, anchor_month)))
        if candidate < start:
            year += 1
            candidate = date(
                year, anchor_month, min(anchor_day, _days_in_month(year, anchor_month))
            )
        return candidate
    candidate = date(
        start.year, start.month, min(anchor_day, _days_in_month(start.year, start.month))
    )
    if candidate < start:
        candidate = add_months(candidate, 1, anchor_day)
    return candidate


def calendar_first_period(
    start: date,
    anchor_day: int,
    interval: Interval,
    count: int,
    *,
    anchor_month: int | None = None,
) -> BillingPeriod:
    """Return the first period of a calendar-billed subscription starting on ``start``.

    It runs to the next anchor occurrence strictly after ``start`` (a short,
    prorated period), or is a full period when ``start`` is an anchor date.
    """
    anchor = calendar_anchor_date(start, anchor_day, interval, count, anchor_month=anchor_month)
    if anchor == start:
        return period_for_index(anchor, interval, count, 0, day_of_month=anchor_day)
    return BillingPeriod(start, anchor)


def calendar_period_at(
    start: date,
    anchor_day: int,
    interval: Interval,
    count: int,
    on: date,
    *,
    anchor_month: int | None = None,
) -> BillingPeriod:
    """Return the calendar-billed period containing local date ``on`` (``on >= start``)."""
    if on < start:
        raise ValueError(f"date {on} is before the start {start}")
    anchor = calendar_anchor_date(start, anchor_day, interval, count, anchor_month=anchor_month)
    if on < anchor:
        return BillingPeriod(start, anchor)
    return period_at(anchor, interval, count, on, day_of_month=anchor_day)


# ---------------------------------------------------------------------------
# Time zones
# ---------------------------------------------------------------------------


def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {tz!r}") from exc


def local_date(instant: datetime, tz: str) -> date:
    """Return the local date in ``tz`` of an aware ``instant``."""
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError("instant must be timezone-aware")
    return instant.astimezone(_zone(tz)).date()


def local_midnight(d: date, tz: str) -> datetime:
    """Return the UTC instant at which local date ``d`` begins in ``tz``.

    That is 00:00 local; when a transition skips midnight it is the first
    instant that exists on ``d``; when midnight happens twice, the earlier one.
    """
    zone = _zone(tz)
    wall = datetime(d.year, d.month, d.day, tzinfo=zone)
    # fold=0 picks the earlier instant of an ambiguous midnight.
    earliest = wall.astimezone(UTC)
    back = earliest.astimezone(zone)
    if back.date() == d and back.time() == time.min:
        return earliest
    # Midnight falls in a gap. fold=1 maps it to an instant still on an
    # earlier local date and fold=0 to one already on d; the day begins at the
    # transition between them, which we bisect to the microsecond.
    lo = wall.replace(fold=1).astimezone(UTC)
    hi = earliest
    while hi - lo > timedelta(microseconds=1):
        mid = lo + (hi - lo) / 2
        if mid.astimezone(zone).date() >= d:
            hi = mid
        else:
            lo = mid
    return hi


def period_bounds_utc(period: BillingPeriod, tz: str) -> tuple[datetime, datetime]:
    """Return the UTC instants ``[start, end)`` of a local-date period in ``tz``."""
    return local_midnight(period.start, tz), local_midnight(period.end, tz)
