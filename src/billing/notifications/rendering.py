"""Which events mail the customer, and rendering their subject, text and HTML with Jinja2.

Texts are English; amounts, dates and times follow the account's locale (Babel/CLDR) and
times its time zone. Templates get the event's data as it was recorded (the payload contract
of each event type) plus a few helpers: `money(amount, currency)`, `date(value)`,
`datetime(value)`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from billing.core.money import format_amount

# Event type -> template name (templates/<name>.subject.txt, .txt, .html).
TEMPLATES: dict[str, str] = {
    "invoice.finalized": "invoice_finalized",
    "payment.succeeded": "payment_succeeded",
    "payment.failed": "payment_failed",
    "dunning.reminder": "dunning_reminder",
    "dunning.warning": "dunning_warning",
    "dunning.blocked": "dunning_blocked",
    "dunning.unblocked": "dunning_unblocked",
    # Not a customer's email: it goes to OPERATOR_EMAIL.
    "webhook_endpoint.disabled": "webhook_endpoint_disabled",
}
OPERATOR_TEMPLATES = frozenset({"webhook_endpoint_disabled"})


class RenderError(Exception):
    """The event's data does not fit its template (a broken payload, or a template bug)."""


@dataclass(frozen=True)
class Recipient:
    email: str
    name: str | None
    locale: str
    timezone: str


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


def template_for(event_type: str, data: Mapping[str, Any]) -> str | None:
    """The template an event mails with, or None when it mails nobody."""
    name = TEMPLATES.get(event_type)
    # Nothing to pay (a trial's or fully credited invoice): an invoice email would only confuse.
    if name == "invoice_finalized" and data.get("amount_due") == 0:
        return None
    return name


@cache
def environment() -> Environment:
    return Environment(
        loader=PackageLoader("billing.notifications", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render(template: str, *, data: Mapping[str, Any], recipient: Recipient) -> Rendered:
    env = environment()
    context = _context(data, recipient)
    try:
        subject = env.get_template(f"{template}.subject.txt").render(context)
        text = env.get_template(f"{template}.txt").render(context)
        html = env.get_template(f"{template}.html").render(context)
    except Exception as exc:  # any template or payload problem is reported the same way
        raise RenderError(f"{type(exc).__name__}: {exc}") from exc
    # A header is one line. Only line breaks are folded: CLDR amounts hold no-break spaces.
    one_line = " ".join(line.strip() for line in subject.splitlines() if line.strip())
    return Rendered(one_line, text, html)


def _context(data: Mapping[str, Any], recipient: Recipient) -> dict[str, Any]:
    locale = recipient.locale
    zone = ZoneInfo(recipient.timezone)

    def money(amount: int, currency: str) -> str:
        return format_amount(int(amount), currency, locale)

    def as_date(value: str | date) -> str:
        day = date.fromisoformat(value[:10]) if isinstance(value, str) else value
        return format_date(day, format="long", locale=locale)

    def as_datetime(value: str | datetime) -> str:
        instant = datetime.fromisoformat(value) if isinstance(value, str) else value
        return format_datetime(instant, format="medium", tzinfo=zone, locale=locale)

    return {
        "data": data,
        "customer_name": recipient.name or recipient.email,
        "money": money,
        "date": as_date,
        "datetime": as_datetime,
    }
