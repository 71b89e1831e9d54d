"""Pure invoice rules: lines to totals, and credit drawn oldest grant first."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any


@dataclass(frozen=True, slots=True)
class DraftLine:
    kind: str
    description: str
    amount: int
    quantity: Decimal = Decimal(1)
    unit_amount: int | None = None
    unit_amount_decimal: Decimal | None = None
    period_start: date | None = None
    period_end: date | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DraftInvoice:
    """An invoice about to be finalized: everything but its number and credit."""

    account_id: uuid.UUID
    currency: str
    billing_reason: str
    created_at: datetime
    lines: tuple[DraftLine, ...]
    subscription_id: uuid.UUID | None = None
    cycle_key: str | None = None
    period_start: date | None = None
    period_end: date | None = None

    @property
    def subtotal(self) -> int:
        return sum(line.amount for line in self.lines)


@dataclass(frozen=True, slots=True)
class Grant:
    id: uuid.UUID
    remaining: int


def draw_credit(amount_due: int, grants: Sequence[Grant]) -> list[tuple[uuid.UUID, int]]:
    """Take up to `amount_due` from the grants in the order given (oldest first).

    Returns (grant id, amount taken) pairs; partial use of a grant is allowed, and nothing is
    taken from a grant with nothing left.
    """
    if amount_due < 0:
        raise ValueError("amount_due must not be negative")
    taken: list[tuple[uuid.UUID, int]] = []
    left = amount_due
    for grant in grants:
        if left == 0:
            break
        if grant.remaining <= 0:
            continue
        use = min(left, grant.remaining)
        taken.append((grant.id, use))
        left -= use
    return taken


def format_number(prefix: str, value: int) -> str:
    return f"{prefix}{value:06d}"
