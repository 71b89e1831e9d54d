"""Tests for billing.core.periods."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import available_timezones

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.core.periods import (
    BillingPeriod,
    Interval,
    add_intervals,
    calendar_anchor_date,
    calendar_first_period,
    calendar_period_at,
    local_date,
    local_midnight,
    period_at,
    period_bounds_utc,
    period_for_index,
    period_index_at,
)

D = date
M = Interval.MONTH
Y = Interval.YEAR
W = Interval.WEEK
DAY = Interval.DAY


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


# ---------------------------------------------------------------------------
# Anniversary arithmetic
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("anchor", "interval", "count", "n", "expected"),
    [
        # Jan 31 anchor keeps day 31 where it exists, clamps elsewhere.
        (D(2024, 1, 31), M, 1, 0, D(2024, 1, 31)),
        (D(2024, 1, 31), M, 1, 1, D(2024, 2, 29)),
        (D(2024, 1, 31), M, 1, 2, D(2024, 3, 31)),
        (D(2024, 1, 31), M, 1, 3, D(2024, 4, 30)),
        (D(2024, 1, 31), M, 1, 4, D(2024, 5, 31)),
        (D(2025, 1, 31), M, 1, 1, D(2025, 2, 28)),
        (D(2025, 1, 31), M, 1, 2, D(2025, 3, 31)),
        # Jan 30 in a leap year.
        (D(2024, 1, 30), M, 1, 1, D(2024, 2, 29)),
        (D(2024, 1, 30), M, 1, 2, D(2024, 3, 30)),
        # Feb 29 yearly.
        (D(2024, 2, 29), Y, 1, 1, D(2025, 2, 28)),
        (D(2024, 2, 29), Y, 1, 2, D(2026, 2, 28)),
        (D(2024, 2, 29), Y, 1, 4, D(2028, 2, 29)),
        # Year boundary.
        (D(2024, 12, 31), M, 1, 1, D(2025, 1, 31)),
        (D(2024, 12, 31), M, 1, 2, D(2025, 2, 28)),
        (D(2024, 12, 15), M, 1, 13, D(2026, 1, 15)),
        # Quarterly.
        (D(2024, 11, 30), M, 3, 1, D(2025, 2, 28)),
        (D(2024, 11, 30), M, 3, 2, D(2025, 5, 30)),
        (D(2024, 11, 30), M, 3, 3, D(2025, 8, 30)),
        (D(2024, 11, 30), M, 3, 4, D(2025, 11, 30)),
        # Every two years.
        (D(2024, 3, 15), Y, 2, 1, D(2026, 3, 15)),
        # Every two weeks / two days.
        (D(2025, 1, 1), W, 2, 1, D(2025, 1, 15)),
        (D(2025, 1, 1), W, 2, 3, D(2025, 2, 12)),
        (D(2024, 2, 27), DAY, 2, 1, D(2024, 2, 29)),
        (D(2024, 2, 27), DAY, 2, 2, D(2024, 3, 2)),
    ],
)
def test_add_intervals(
    anchor: date, interval: Interval, count: int, n: int, expected: date
) -> None:
    assert add_intervals(anchor, interval, count, n) == expected


def test_add_intervals_accepts_plain_strings() -> None:
    assert add_intervals(D(2024, 1, 31), "month", 1, 1) == D(2024, 2, 29)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("anchor", "interval", "count", "n"),
    [
        (D(2024, 1, 1), M, 0, 1),
        (D(2024, 1, 1), M, -1, 1),
        (D(2024, 1, 1), M, 1, -1),
    ],
)
def test_add_intervals_rejects_bad_arguments(
    anchor: date, interval: Interval, count: int, n: int
) -> None:
    with pytest.raises(ValueError, match="must"):
        add_intervals(anchor, interval, count, n)


def test_add_intervals_rejects_unknown_interval() -> None:
    with pytest.raises(ValueError, match="fortnight"):
        add_intervals(D(2024, 1, 1), "fortnight", 1, 1)  # type: ignore[arg-type]


def test_jan_31_monthly_four_periods() -> None:
    periods = [period_for_index(D(2024, 1, 31), M, 1, k) for k in range(4)]
    assert periods == [
        BillingPeriod(D(2024, 1, 31), D(2024, 2, 29)),
        BillingPeriod(D(2024, 2, 29), D(2024, 3, 31)),
        BillingPeriod(D(2024, 3, 31), D(2024, 4, 30)),
        BillingPeriod(D(2024, 4, 30), D(2024, 5, 31)),
    ]
    assert [p.days for p in periods] == [29, 31, 30, 31]


def test_billing_period_rejects_empty_or_reversed() -> None:
    with pytest.raises(ValueError, match="before"):
        BillingPeriod(D(2024, 1, 1), D(2024, 1, 1))
    with pytest.raises(ValueError, match="before"):
        BillingPeriod(D(2024, 1, 2), D(2024, 1, 1))


def test_billing_period_contains_is_half_open() -> None:
    period = BillingPeriod(D(2024, 3, 1), D(2024, 4, 1))
    assert period.contains(D(2024, 3, 1))
    assert period.contains(D(2024, 3, 31))
    assert not period.contains(D(2024, 4, 1))
    assert not period.contains(D(2024, 2, 29))


@pytest.mark.parametrize(
    ("anchor", "interval", "count", "on", "index", "expected"),
    [
        (D(2024, 1, 31), M, 1, D(2024, 1, 31), 0, (D(2024, 1, 31), D(2024, 2, 29))),
        (D(2024, 1, 31), M, 1, D(2024, 2, 28), 0, (D(2024, 1, 31), D(2024, 2, 29))),
        (D(2024, 1, 31), M, 1, D(2024, 2, 29), 1, (D(2024, 2, 29), D(2024, 3, 31))),
        (D(2024, 1, 31), M, 1, D(2024, 3, 30), 1, (D(2024, 2, 29), D(2024, 3, 31))),
        (D(2024, 1, 31), M, 1, D(2024, 3, 31), 2, (D(2024, 3, 31), D(2024, 4, 30))),
        (D(2024, 1, 15), M, 3, D(2024, 4, 14), 0, (D(2024, 1, 15), D(2024, 4, 15))),
        (D(2024, 1, 15), M, 3, D(2024, 4, 15), 1, (D(2024, 4, 15), D(2024, 7, 15))),
        (D(2024, 2, 29), Y, 1, D(2025, 2, 27), 0, (D(2024, 2, 29), D(2025, 2, 28))),
        (D(2024, 2, 29), Y, 1, D(2025, 2, 28), 1, (D(2025, 2, 28), D(2026, 2, 28))),
        (D(2024, 1, 1), W, 2, D(2024, 1, 14), 0, (D(2024, 1, 1), D(2024, 1, 15))),
        (D(2024, 1, 1), W, 2, D(2024, 1, 15), 1, (D(2024, 1, 15), D(2024, 1, 29))),
        (D(2024, 2, 28), DAY, 2, D(2024, 3, 1), 1, (D(2024, 3, 1), D(2024, 3, 3))),
    ],
)
def test_period_at(
    anchor: date,
    interval: Interval,
    count: int,
    on: date,
    index: int,
    expected: tuple[date, date],
) -> None:
    assert period_index_at(anchor, interval, count, on) == index
    assert period_at(anchor, interval, count, on) == BillingPeriod(*expected)


def test_period_at_rejects_date_before_anchor() -> None:
    with pytest.raises(ValueError, match="before the anchor"):
        period_at(D(2024, 3, 1), M, 1, D(2024, 2, 29))


# ---------------------------------------------------------------------------
# Calendar billing
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "anchor_day", "interval", "count", "first", "anchor"),
    [
        # Start mid-month: short first period up to the 1st.
        (D(2025, 1, 15), 1, M, 1, (D(2025, 1, 15), D(2025, 2, 1)), D(2025, 2, 1)),
        # Start on the anchor day: a full first period.
        (D(2025, 2, 1), 1, M, 1, (D(2025, 2, 1), D(2025, 3, 1)), D(2025, 2, 1)),
        # Anchor 31 in a short month clamps.
        (D(2025, 2, 10), 31, M, 1, (D(2025, 2, 10), D(2025, 2, 28)), D(2025, 2, 28)),
        (D(2025, 2, 28), 31, M, 1, (D(2025, 2, 28), D(2025, 3, 31)), D(2025, 2, 28)),
        (D(2025, 4, 30), 31, M, 1, (D(2025, 4, 30), D(2025, 5, 31)), D(2025, 4, 30)),
        (D(2025, 1, 31), 30, M, 1, (D(2025, 1, 31), D(2025, 2, 28)), D(2025, 2, 28)),
        # Quarterly: the stub still ends at the next anchor day.
        (D(2025, 1, 15), 1, M, 3, (D(2025, 1, 15), D(2025, 2, 1)), D(2025, 2, 1)),
        (D(2025, 2, 1), 1, M, 3, (D(2025, 2, 1), D(2025, 5, 1)), D(2025, 2, 1)),
        # Yearly without a month: next occurrence of the day in any month.
        (D(2025, 3, 20), 15, Y, 1, (D(2025, 3, 20), D(2025, 4, 15)), D(2025, 4, 15)),
        # Across a year boundary.
        (D(2024, 12, 20), 5, M, 1, (D(2024, 12, 20), D(2025, 1, 5)), D(2025, 1, 5)),
    ],
)
def test_calendar_first_period(
    start: date,
    anchor_day: int,
    interval: Interval,
    count: int,
    first: tuple[date, date],
    anchor: date,
) -> None:
    assert calendar_first_period(start, anchor_day, interval, count) == BillingPeriod(*first)
    assert calendar_anchor_date(start, anchor_day, interval, count) == anchor


def test_calendar_anchor_31_keeps_day_after_february() -> None:
    anchor = calendar_anchor_date(D(2025, 2, 10), 31, M, 1)
    periods = [period_for_index(anchor, M, 1, k, day_of_month=31) for k in range(4)]
    assert periods == [
        BillingPeriod(D(2025, 2, 28), D(2025, 3, 31)),
        BillingPeriod(D(2025, 3, 31), D(2025, 4, 30)),
        BillingPeriod(D(2025, 4, 30), D(2025, 5, 31)),
        BillingPeriod(D(2025, 5, 31), D(2025, 6, 30)),
    ]


@pytest.mark.parametrize(
    ("start", "anchor_month", "first", "second"),
    [
        (
            D(2025, 3, 10),
            1,
            (D(2025, 3, 10), D(2026, 1, 1)),
            (D(2026, 1, 1), D(2027, 1, 1)),
        ),
        (
            D(2025, 1, 1),
            1,
            (D(2025, 1, 1), D(2026, 1, 1)),
            (D(2026, 1, 1), D(2027, 1, 1)),
        ),
    ],
)
def test_calendar_yearly_with_anchor_month(
    start: date, anchor_month: int, first: tuple[date, date], second: tuple[date, date]
) -> None:
    assert calendar_first_period(start, 1, Y, 1, anchor_month=anchor_month) == BillingPeriod(*first)
    assert calendar_period_at(
        start, 1, Y, 1, second[0] + timedelta(days=200), anchor_month=anchor_month
    ) == BillingPeriod(*second)


def test_calendar_yearly_anchor_month_clamps_feb_29() -> None:
    anchor = calendar_anchor_date(D(2025, 3, 1), 29, Y, 1, anchor_month=2)
    assert anchor == D(2026, 2, 28)
    assert period_for_index(anchor, Y, 1, 2, day_of_month=29) == BillingPeriod(
        D(2028, 2, 29), D(2029, 2, 28)
    )


@pytest.mark.parametrize(
    ("on", "expected"),
    [
        (D(2025, 1, 15), (D(2025, 1, 15), D(2025, 1, 31))),
        (D(2025, 1, 30), (D(2025, 1, 15), D(2025, 1, 31))),
        (D(2025, 1, 31), (D(2025, 1, 31), D(2025, 2, 28))),
        (D(2025, 2, 27), (D(2025, 1, 31), D(2025, 2, 28))),
        (D(2025, 2, 28), (D(2025, 2, 28), D(2025, 3, 31))),
        (D(2025, 3, 30), (D(2025, 2, 28), D(2025, 3, 31))),
        (D(2025, 3, 31), (D(2025, 3, 31), D(2025, 4, 30))),
    ],
)
def test_calendar_period_at(on: date, expected: tuple[date, date]) -> None:
    assert calendar_period_at(D(2025, 1, 15), 31, M, 1, on) == BillingPeriod(*expected)


def test_calendar_period_at_rejects_date_before_start() -> None:
    with pytest.raises(ValueError, match="before the start"):
        calendar_period_at(D(2025, 1, 15), 1, M, 1, D(2025, 1, 14))


@pytest.mark.parametrize(
    ("interval", "anchor_day", "anchor_month", "message"),
    [
        (W, 1, None, "month or year"),
        (DAY, 1, None, "month or year"),
        (M, 0, None, "between 1 and 31"),
        (M, 32, None, "between 1 and 31"),
        (M, 1, 1, "only valid with a year"),
        (Y, 1, 13, "between 1 and 12"),
    ],
)
def test_calendar_rejects_bad_anchor(
    interval: Interval, anchor_day: int, anchor_month: int | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        calendar_first_period(D(2025, 1, 15), anchor_day, interval, 1, anchor_month=anchor_month)


def test_day_of_month_must_match_anchor() -> None:
    with pytest.raises(ValueError, match="not on day 31"):
        add_intervals(D(2025, 2, 27), M, 1, 1, day_of_month=31)
    with pytest.raises(ValueError, match="month or year"):
        add_intervals(D(2025, 2, 27), W, 1, 1, day_of_month=27)
    with pytest.raises(ValueError, match="month or year"):
        period_index_at(D(2025, 2, 27), DAY, 1, D(2025, 3, 1), day_of_month=27)


# ---------------------------------------------------------------------------
# Time zones
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "tz", "expected"),
    [
        # East of UTC: local midnight is the previous UTC day.
        (D(2025, 3, 1), "Asia/Tokyo", utc(2025, 2, 28, 15)),
        (D(2025, 1, 1), "Asia/Tokyo", utc(2024, 12, 31, 15)),
        # West of UTC, winter and summer offsets.
        (D(2025, 1, 1), "America/Los_Angeles", utc(2025, 1, 1, 8)),
        (D(2025, 7, 1), "America/Los_Angeles", utc(2025, 7, 1, 7)),
        (D(2025, 7, 1), "UTC", utc(2025, 7, 1)),
        # New York DST days: 23-hour and 25-hour days, midnight unaffected.
        (D(2024, 3, 10), "America/New_York", utc(2024, 3, 10, 5)),
        (D(2024, 3, 11), "America/New_York", utc(2024, 3, 11, 4)),
        (D(2024, 11, 3), "America/New_York", utc(2024, 11, 3, 4)),
        (D(2024, 11, 4), "America/New_York", utc(2024, 11, 4, 5)),
        # Midnight skipped: clocks jump 00:00 → 01:00; the day begins at 01:00.
        (D(2024, 9, 8), "America/Santiago", utc(2024, 9, 8, 4)),
        (D(2024, 3, 10), "America/Havana", utc(2024, 3, 10, 5)),
        # Midnight twice (Havana falls back 01:00 → 00:00): the earlier one.
        (D(2024, 11, 3), "America/Havana", utc(2024, 11, 3, 4)),
        # Midnight strictly inside the gap (23:30 → 00:30): the day begins at 00:30.
        (D(1919, 3, 31), "America/Toronto", utc(1919, 3, 31, 4, 30)),
        # Samoa skipped Dec 30 2011 entirely: it begins and ends at Dec 31's start.
        (D(2011, 12, 30), "Pacific/Apia", utc(2011, 12, 30, 10)),
        (D(2011, 12, 31), "Pacific/Apia", utc(2011, 12, 30, 10)),
    ],
)
def test_local_midnight(day: date, tz: str, expected: datetime) -> None:
    result = local_midnight(day, tz)
    assert result == expected
    assert result.tzinfo is UTC


@pytest.mark.parametrize(
    ("instant", "tz", "expected"),
    [
        (utc(2025, 2, 28, 14, 59, 59), "Asia/Tokyo", D(2025, 2, 28)),
        (utc(2025, 2, 28, 15), "Asia/Tokyo", D(2025, 3, 1)),
        (utc(2025, 1, 1, 7, 59, 59), "America/Los_Angeles", D(2024, 12, 31)),
        (utc(2025, 1, 1, 8), "America/Los_Angeles", D(2025, 1, 1)),
        # 23:59 local on Mar 31 in New York (EDT) is already April in UTC.
        (utc(2024, 4, 1, 3, 59), "America/New_York", D(2024, 3, 31)),
        (utc(2024, 9, 8, 3, 59, 59), "America/Santiago", D(2024, 9, 7)),
        (utc(2024, 9, 8, 4), "America/Santiago", D(2024, 9, 8)),
    ],
)
def test_local_date(instant: datetime, tz: str, expected: date) -> None:
    assert local_date(instant, tz) == expected


def test_local_date_rejects_naive_instant() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        local_date(datetime(2025, 1, 1), "UTC")  # noqa: DTZ001 - naive on purpose


def test_unknown_time_zone_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        local_midnight(D(2025, 1, 1), "Mars/Olympus_Mons")
    with pytest.raises(ValueError, match="unknown time zone"):
        local_date(utc(2025, 1, 1), "../etc/passwd")


def test_dst_march_event_at_2359_belongs_to_march() -> None:
    tz = "America/New_York"
    event = datetime(2024, 3, 31, 23, 59, tzinfo=UTC) + timedelta(hours=4)  # 23:59 EDT
    march = period_at(D(2024, 1, 1), M, 1, local_date(event, tz))
    assert march == BillingPeriod(D(2024, 3, 1), D(2024, 4, 1))
    start, end = period_bounds_utc(march, tz)
    # Start in EST (-5), end in EDT (-4): the boundary follows local midnight.
    assert (start, end) == (utc(2024, 3, 1, 5), utc(2024, 4, 1, 4))
    assert start <= event < end


def test_dst_november_bounds() -> None:
    tz = "America/New_York"
    october = BillingPeriod(D(2024, 10, 1), D(2024, 11, 1))
    november = BillingPeriod(D(2024, 11, 1), D(2024, 12, 1))
    assert period_bounds_utc(october, tz) == (utc(2024, 10, 1, 4), utc(2024, 11, 1, 4))
    assert period_bounds_utc(november, tz) == (utc(2024, 11, 1, 4), utc(2024, 12, 1, 5))
    # 23:59 EST on Nov 30 is Dec 1 04:59 UTC, still November.
    assert local_date(utc(2024, 12, 1, 4, 59), tz) == D(2024, 11, 30)


# ---------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------

anchors = st.dates(min_value=D(1900, 1, 1), max_value=D(2200, 12, 31))
intervals = st.sampled_from(list(Interval))
# Bounded so that the furthest date (2200 + 600 x 12 years) stays within date.max.
counts = st.integers(min_value=1, max_value=12)
indexes = st.integers(min_value=0, max_value=600)


@given(anchor=anchors, interval=intervals, count=counts, k=indexes)
def test_periods_tile_the_timeline(anchor: date, interval: Interval, count: int, k: int) -> None:
    period = period_for_index(anchor, interval, count, k)
    following = period_for_index(anchor, interval, count, k + 1)
    assert period.start < period.end
    assert period.end == following.start
    first_day, last_day = period.start, period.end - timedelta(days=1)
    assert period_at(anchor, interval, count, first_day) == period
    assert period_at(anchor, interval, count, last_day) == period
    assert period_index_at(anchor, interval, count, last_day) == k


@given(
    start=st.dates(min_value=D(1900, 1, 1), max_value=D(2200, 12, 31)),
    anchor_day=st.integers(min_value=1, max_value=31),
    interval=st.sampled_from([M, Y]),
    count=st.integers(min_value=1, max_value=12),
    k=st.integers(min_value=0, max_value=100),
)
def test_calendar_periods_tile_and_keep_the_anchor_day(
    start: date, anchor_day: int, interval: Interval, count: int, k: int
) -> None:
    first = calendar_first_period(start, anchor_day, interval, count)
    anchor = calendar_anchor_date(start, anchor_day, interval, count)
    assert first.start == start
    assert start <= anchor < start + timedelta(days=31)
    full_end = add_intervals(anchor, interval, count, 1, day_of_month=anchor_day)
    assert first.end == (anchor if anchor != start else full_end)
    period = period_for_index(anchor, interval, count, k, day_of_month=anchor_day)
    following = period_for_index(anchor, interval, count, k + 1, day_of_month=anchor_day)
    assert period.end == following.start
    for boundary in (period.start, period.end):
        month_length = (boundary.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(
            days=1
        )
        assert boundary.day == min(anchor_day, month_length.day)
    assert calendar_period_at(
        start, anchor_day, interval, count, period.end - timedelta(days=1)
    ) == (period)


ZONES = sorted(available_timezones())


@given(day=st.dates(min_value=D(1900, 1, 2), max_value=D(2100, 12, 31)), tz=st.sampled_from(ZONES))
def test_local_midnight_is_the_first_instant_of_the_day(day: date, tz: str) -> None:
    start = local_midnight(day, tz)
    assert start.tzinfo is UTC
    assert local_date(start, tz) >= day
    assert local_date(start - timedelta(microseconds=1), tz) < day
    assert local_midnight(day - timedelta(days=1), tz) <= start
