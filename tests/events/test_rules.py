"""Pure parts of events and webhooks: patterns, durations, retry timing, signatures."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError
from standardwebhooks import Webhook

from billing.core.durations import parse_durations
from billing.events.catalog import EVENT_TYPES, is_valid_pattern, matches
from billing.settings import Settings
from billing.webhooks.delivery import parse_retry_after, retry_delay
from billing.webhooks.signing import new_secret, sign, webhook_headers

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("patterns", "event_type", "expected"),
    [
        (["*"], "invoice.paid", True),
        (["invoice.*"], "invoice.paid", True),
        (["invoice.*"], "subscription.created", False),
        (["invoice.paid"], "invoice.paid", True),
        (["invoice.paid"], "invoice.voided", False),
        (["subscription.*"], "subscription.trial_will_end", True),
        ([], "invoice.paid", False),
    ],
)
def test_enabled_events_match(patterns: list[str], event_type: str, expected: bool) -> None:
    assert matches(patterns, event_type) is expected


def test_valid_patterns() -> None:
    assert all(is_valid_pattern(t) for t in EVENT_TYPES)
    assert is_valid_pattern("*")
    assert is_valid_pattern("dunning.*")
    for bad in ("invoice", "invoice.", "invoice.**", "nope.*", "invoice.eaten", "*.paid", ""):
        assert not is_valid_pattern(bad), bad


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5s,5m,30m,2h,5h", (5, 300, 1800, 7200, 18000)),
        ("250ms, 1.5s ,1d", (0.25, 1.5, 86400)),
        ("", ()),
    ],
)
def test_durations(text: str, seconds: tuple[float, ...]) -> None:
    assert parse_durations(text) == seconds


def test_a_bad_retry_schedule_is_refused() -> None:
    with pytest.raises(ValidationError, match="not a duration"):
        Settings(_env_file=None, webhook_retry_schedule="5s,soon")
    assert Settings(_env_file=None).webhook_retry_delays == (5, 300, 1800, 7200, 18000)


def test_retry_delay_has_jitter_and_honours_retry_after() -> None:
    schedule = (5.0, 300.0)
    delays = {retry_delay(1, schedule, None) for _ in range(50)}
    assert all(4.5 <= d <= 5.5 for d in delays)
    assert len(delays) > 1
    assert all(270 <= retry_delay(2, schedule, None) <= 330 for _ in range(20))
    assert retry_delay(1, schedule, 60.0) == 60.0
    assert 4.5 <= retry_delay(1, schedule, 1.0) <= 5.5


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("Sun, 01 Mar 2026 12:01:30 GMT", 90.0),
        ("Sun, 01 Mar 2026 11:00:00 GMT", 0.0),
        ("99999999", 86400.0),
        ("soon", None),
        (None, None),
    ],
)
def test_retry_after(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, NOW) == seconds


def test_signatures_match_the_standard_webhooks_reference() -> None:
    secret = new_secret()
    body = b'{"id":"evt","type":"invoice.paid"}'
    ours = sign(secret, msg_id="msg_1", timestamp=1_700_000_000, body=body)
    theirs = Webhook(secret).sign(
        "msg_1", datetime.fromtimestamp(1_700_000_000, tz=UTC), body.decode()
    )
    assert ours == theirs
    headers = webhook_headers([secret, new_secret()], msg_id="m", timestamp=1, body=body)
    assert headers["webhook-signature"].count("v1,") == 2
    assert (headers["webhook-id"], headers["webhook-timestamp"]) == ("m", "1")
