"""The catalogue of event types: the one list integrators subscribe to and tests check.

Every state change records one of these types (see `record_event`). Webhook endpoints
subscribe to exact types, to a category (`invoice.*`) or to everything (`*`).
"""

from __future__ import annotations

EVENT_TYPES: dict[str, str] = {
    "account.created": "An account was created.",
    "account.updated": "An account's details changed.",
    "account.deleted": "An account was deleted.",
    "payment_method.attached": "A payment method was attached to an account.",
    "payment_method.updated": "A payment method became the account's default.",
    "payment_method.detached": "A payment method was detached from an account.",
    "plan.created": "A plan or a new version of a plan was created.",
    "plan.updated": "A plan version was activated or deactivated.",
    "subscription.created": "A subscription was created.",
    "subscription.updated": "A subscription changed (renewal, trial end, scheduled cancellation).",
    "subscription.trial_will_end": "A subscription's trial ends in three days.",
    "subscription.paused": "A subscription was paused.",
    "subscription.resumed": "A paused subscription was resumed.",
    "subscription.canceled": "A subscription ended.",
    "invoice.created": "An invoice was created.",
    "invoice.finalized": "An invoice was finalized (numbered, immutable).",
    "invoice.paid": "An invoice was paid in full.",
    "invoice.voided": "An invoice was voided.",
    "invoice.marked_uncollectible": "An invoice was marked uncollectible.",
    "payment.succeeded": "A payment succeeded.",
    "payment.failed": "A payment failed.",
    "payment.refunded": "A payment was refunded.",
    "credit.granted": "Credit was granted to an account.",
    "credit.applied": "Credit was applied to an invoice.",
    "credit.returned": "Credit applied to a voided invoice went back to the balance.",
    "credit.expired": "Unused credit expired.",
    "usage.late_invoiced": "Usage reported after its period closed was invoiced.",
    "dunning.reminder": "A payment reminder was sent.",
    "dunning.warning": "A final warning before blocking was sent.",
    "dunning.blocked": "An account was blocked for non-payment.",
    "dunning.unblocked": "A blocked account was unblocked.",
    "webhook_endpoint.disabled": "A webhook endpoint was disabled (410 Gone or failing too long).",
}

CATEGORIES: frozenset[str] = frozenset(t.split(".", 1)[0] for t in EVENT_TYPES)
WILDCARD = "*"


def is_valid_pattern(pattern: str) -> bool:
    """`*`, a known type, or a known category followed by `.*`."""
    if pattern == WILDCARD or pattern in EVENT_TYPES:
        return True
    category, dot, rest = pattern.partition(".")
    return bool(dot) and rest == "*" and category in CATEGORIES


def matches(patterns: list[str] | tuple[str, ...], event_type: str) -> bool:
    """Whether an endpoint's `enabled_events` include `event_type` (as the fan-out trigger)."""
    category = event_type.split(".", 1)[0]
    return any(p in (WILDCARD, event_type, f"{category}.*") for p in patterns)
