"""Pure usage rules: whether an event is accepted, which value a metric bills, which period
a summary covers. No I/O: the service hands in what it read and writes back what these return.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any, NamedTuple

import orjson

from billing.catalog.models import Aggregation, MeteredComponent
from billing.core.periods import BillingPeriod
from billing.usage.schemas import Reason

ZERO = Decimal(0)
# Longer unique_count values are stored as a digest (they are compared, never shown).
MAX_UNIQUE_VALUE = 200
ACCEPTING = frozenset({"active", "trialing"})
_STATUS_REASONS = {
    "pending": Reason.SUBSCRIPTION_NOT_STARTED,
    "paused": Reason.SUBSCRIPTION_PAUSED,
    "canceled": Reason.SUBSCRIPTION_CANCELED,
}


class Facts(NamedTuple):
    """What ingestion knows about one subscription when it checks an event."""

    status: str
    components: Mapping[str, MeteredComponent]
    # "Now" for the subscription's account: its test clock's time, or the system clock.
    now: datetime
    period_start_at: datetime | None
    period_end_at: datetime | None
    cancel_at_period_end: bool


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: Reason
    message: str
    field: str | None = None  # when the reason alone does not tell (see ingest._FIELDS)


class Placement(Enum):
    """Where an acceptable event belongs."""

    CURRENT = "current"  # the current period (or a later one the renewal has not reached)
    EARLIER = "earlier"  # before the current period: accepted only within a late window


def check_event(
    *,
    metric: str,
    quantity: Decimal,
    occurred_at: datetime,
    properties: Mapping[str, Any] | None,
    facts: Facts,
    future_tolerance: timedelta,
) -> Rejection | Placement:
    if facts.status not in ACCEPTING:
        reason = _STATUS_REASONS.get(facts.status, Reason.SUBSCRIPTION_CANCELED)
        return Rejection(reason, f"The subscription is {facts.status}; it takes no usage.")
    component = facts.components.get(metric)
    if component is None:
        return Rejection(
            Reason.METRIC_NOT_PRICED,
            f"The subscription's plan has no price for the metric {metric!r}.",
        )
    if component.aggregation is Aggregation.COUNT and quantity != quantity.to_integral_value():
        return Rejection(
            Reason.INVALID,
            f"quantity: {metric} is a count metric; send a whole number.",
            field="quantity",
        )
    if component.aggregation is Aggregation.UNIQUE_COUNT:
        assert component.property is not None  # the catalog requires it
        if properties is None or properties.get(component.property) is None:
            return Rejection(
                Reason.MISSING_PROPERTY,
                f"properties.{component.property}: {metric} counts the distinct values of "
                f"this property; the event has none.",
            )
    if occurred_at > facts.now + future_tolerance:
        return Rejection(
            Reason.TIMESTAMP_IN_FUTURE,
            f"timestamp: {occurred_at.isoformat()} is more than "
            f"{int(future_tolerance.total_seconds())} s after now ({facts.now.isoformat()}).",
        )
    if (
        facts.cancel_at_period_end
        and facts.period_end_at is not None
        and occurred_at >= facts.period_end_at
    ):
        return Rejection(
            Reason.SUBSCRIPTION_CANCELED,
            f"timestamp: the subscription ends at {facts.period_end_at.isoformat()}.",
        )
    if facts.period_start_at is not None and occurred_at < facts.period_start_at:
        return Placement.EARLIER
    return Placement.CURRENT


def check_late(
    *,
    occurred_at: datetime,
    billed: tuple[datetime, datetime] | None,
    now: datetime,
    late_days: int,
) -> Rejection | None:
    """An event before the current period: None if its billed period still takes it."""
    if billed is None:
        return Rejection(
            Reason.PERIOD_NOT_BILLABLE,
            f"timestamp: {occurred_at.isoformat()} is in no billed period of the "
            "subscription (before it started, or in its trial).",
        )
    closes = billed[1] + timedelta(days=late_days)
    if now >= closes:
        return Rejection(
            Reason.LATE_WINDOW_CLOSED,
            f"timestamp: the period it belongs to was invoiced and took late usage until "
            f"{closes.isoformat()}.",
        )
    return None


def unique_text(value: Any) -> str:
    """The text `unique_count` compares: strings as they are, anything else as sorted JSON."""
    text = value if isinstance(value, str) else orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    if isinstance(text, bytes):
        text = text.decode()
    if len(text) > MAX_UNIQUE_VALUE:
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    return text


def same_event(
    stored: Mapping[str, Any], *, incoming: Mapping[str, Any], compare_timestamp: bool
) -> bool:
    """Whether a resent event carries the same payload as the stored one.

    An event sent without a timestamp gets "now", which differs on every retry, so its
    timestamp is only compared when the client gave one.
    """
    return (
        stored["subscription_id"] == incoming["subscription_id"]
        and stored["metric"] == incoming["metric"]
        and stored["quantity"] == incoming["quantity"]
        and (not compare_timestamp or stored["occurred_at"] == incoming["occurred_at"])
        and (stored["properties"] or None) == (incoming["properties"] or None)
    )


# --------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class Totals:
    """A period's events of one metric, reduced every way a metric can be aggregated."""

    events: int = 0
    total: Decimal = ZERO
    peak: Decimal = ZERO
    latest: Decimal = ZERO
    distinct: int = 0

    def value(self, aggregation: Aggregation) -> Decimal:
        match aggregation:
            # A count metric's events carry whole numbers of occurrences (1 each, typically).
            case Aggregation.SUM | Aggregation.COUNT:
                return self.total
            case Aggregation.MAX:
                return self.peak
            case Aggregation.LATEST:
                return self.latest
            case Aggregation.UNIQUE_COUNT:
                return Decimal(self.distinct)


# --------------------------------------------------------------------------- periods


class PeriodError(ValueError):
    """A period bound that does not fall on the usage buckets' grid."""


def parse_period(spec: str) -> str | BillingPeriod:
    """`current`, `previous`, or `<start>/<end>` (local dates, end exclusive)."""
    if spec in ("current", "previous"):
        return spec
    start_text, slash, end_text = spec.partition("/")
    if not slash:
        raise PeriodError("period must be current, previous or <start>/<end> (YYYY-MM-DD dates)")
    try:
        start, end = date.fromisoformat(start_text), date.fromisoformat(end_text)
    except ValueError as exc:
        raise PeriodError("<start>/<end> must be two YYYY-MM-DD dates") from exc
    if not start < end:
        raise PeriodError("the start date must be before the end date (which is exclusive)")
    if (end - start).days > 1100:
        raise PeriodError("a period covers at most 1100 days")
    return BillingPeriod(start, end)


QUARTER_HOUR = 15 * 60


def check_aligned(*instants: datetime) -> None:
    """Rollup buckets are UTC quarter hours: period bounds must fall on them.

    Every local midnight does since 1979 (all offsets in use are whole quarter hours); an
    older date in a zone with a local-mean-time offset would not, and is refused.
    """
    for instant in instants:
        if int(instant.timestamp()) % QUARTER_HOUR or instant.microsecond:
            raise PeriodError(
                f"{instant.isoformat()} is not on a quarter hour of UTC; usage periods must be"
            )
