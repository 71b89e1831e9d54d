"""Usage pricing math with Stripe semantics (per_unit, graduated, volume, package).

Unit prices (``unit_amount_decimal``) are Decimals in MINOR units per unit of
usage (``Decimal("0.04")`` = 0.04 cents = $0.0004 per call); flat and package
amounts are integer minor units. All arithmetic is exact Decimal math with a
single half-up rounding to minor units per metric.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import (
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    localcontext,
)
from enum import StrEnum

from billing.core.money import round_minor

__all__ = [
    "MeteredPrice",
    "PricingModel",
    "Tier",
    "TierLine",
    "UsageCharge",
    "price_errors",
    "price_metric",
    "price_usage",
    "tier_errors",
]

ZERO = Decimal(0)

# Generous precision with Inexact trapped: any arithmetic that would have to round
# raises instead of silently changing an amount, so "exact" is enforced.
_EXACT = Context(prec=100, traps=[InvalidOperation, DivisionByZero, Overflow, Inexact])


class PricingModel(StrEnum):
    """How a metered quantity turns into an amount."""

    per_unit = "per_unit"
    graduated = "graduated"
    volume = "volume"
    package = "package"


@dataclass(frozen=True, slots=True)
class Tier:
    """One price tier; ``up_to`` is the inclusive upper bound, None = open-ended."""

    up_to: Decimal | None
    unit_amount_decimal: Decimal
    flat_amount: int = 0


@dataclass(frozen=True, slots=True)
class MeteredPrice:
    """Price of one usage metric; which fields apply depends on ``model``.

    ``free_units`` are subtracted from the quantity before any model is applied.
    """

    model: PricingModel
    unit_amount_decimal: Decimal | None = None
    tiers: tuple[Tier, ...] = ()
    package_size: Decimal | None = None
    package_amount: int | None = None
    free_units: Decimal = ZERO


@dataclass(frozen=True, slots=True)
class TierLine:
    """Usage billed in one tier; covers quantities in ``(from_unit, up_to]``.

    ``amount`` values of one charge's lines add up exactly to the charge amount.
    """

    tier_index: int
    from_unit: Decimal
    up_to: Decimal | None
    quantity: Decimal
    unit_amount_decimal: Decimal
    flat_amount: int
    amount: int


@dataclass(frozen=True, slots=True)
class UsageCharge:
    """Priced usage for one metric: rounded ``amount`` and the ``exact_amount``."""

    metric: str
    quantity: Decimal
    amount: int
    exact_amount: Decimal
    tiers: tuple[TierLine, ...]


# --------------------------------------------------------------------------- validation


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_decimal(value: object) -> bool:
    return isinstance(value, Decimal) and value.is_finite()


def tier_errors(tiers: Sequence[Tier], path: str = "tiers") -> list[tuple[str, str]]:
    """Validate a tier list; returns ``(field path, message)`` pairs, empty if valid."""
    if not tiers:
        return [(path, "at least one tier is required")]
    errors: list[tuple[str, str]] = []
    last = len(tiers) - 1
    previous: Decimal | None = None
    for index, tier in enumerate(tiers):
        at = f"{path}.{index}"
        up_to = tier.up_to
        if up_to is None:
            if index != last:
                errors.append((f"{at}.up_to", "only the last tier may be open-ended"))
        elif not _is_decimal(up_to):
            errors.append((f"{at}.up_to", "must be a finite decimal"))
        else:
            if up_to <= 0:
                errors.append((f"{at}.up_to", "must be greater than 0"))
            if previous is not None and up_to <= previous:
                errors.append((f"{at}.up_to", "must be greater than the previous tier's up_to"))
            if index == last:
                errors.append((f"{at}.up_to", "the last tier must be open-ended (null)"))
            previous = up_to
        if not _is_decimal(tier.unit_amount_decimal):
            errors.append((f"{at}.unit_amount_decimal", "must be a finite decimal"))
        elif tier.unit_amount_decimal < 0:
            errors.append((f"{at}.unit_amount_decimal", "must be greater than or equal to 0"))
        if not _is_int(tier.flat_amount):
            errors.append((f"{at}.flat_amount", "must be an integer"))
        elif tier.flat_amount < 0:
            errors.append((f"{at}.flat_amount", "must be greater than or equal to 0"))
    return errors


def price_errors(price: MeteredPrice) -> list[tuple[str, str]]:
    """Validate a metered price for its model; returns ``(field path, message)`` pairs.

    Fields that do not apply to the model must be left unset, so a misconfigured
    price is rejected instead of silently ignoring e.g. tiers on a per_unit price.
    """
    errors: list[tuple[str, str]] = []
    model = price.model
    if not isinstance(model, PricingModel):
        return [("model", f"must be one of {', '.join(m.value for m in PricingModel)}")]

    if model is PricingModel.per_unit:
        unit = price.unit_amount_decimal
        if unit is None:
            errors.append(("unit_amount_decimal", "is required for per_unit pricing"))
        elif not _is_decimal(unit):
            errors.append(("unit_amount_decimal", "must be a finite decimal"))
        elif unit < 0:
            errors.append(("unit_amount_decimal", "must be greater than or equal to 0"))
    elif price.unit_amount_decimal is not None:
        errors.append(("unit_amount_decimal", f"is not allowed for {model} pricing"))

    if model in (PricingModel.graduated, PricingModel.volume):
        errors.extend(tier_errors(price.tiers))
    elif price.tiers:
        errors.append(("tiers", f"are not allowed for {model} pricing"))

    if model is PricingModel.package:
        size = price.package_size
        if size is None:
            errors.append(("package_size", "is required for package pricing"))
        elif not _is_decimal(size):
            errors.append(("package_size", "must be a finite decimal"))
        elif size <= 0:
            errors.append(("package_size", "must be greater than 0"))
        amount = price.package_amount
        if amount is None:
            errors.append(("package_amount", "is required for package pricing"))
        elif not _is_int(amount):
            errors.append(("package_amount", "must be an integer"))
        elif amount < 0:
            errors.append(("package_amount", "must be greater than or equal to 0"))
    else:
        if price.package_size is not None:
            errors.append(("package_size", f"is not allowed for {model} pricing"))
        if price.package_amount is not None:
            errors.append(("package_amount", f"is not allowed for {model} pricing"))

    if not _is_decimal(price.free_units):
        errors.append(("free_units", "must be a finite decimal"))
    elif price.free_units < 0:
        errors.append(("free_units", "must be greater than or equal to 0"))
    return errors


# --------------------------------------------------------------------------- pricing


def _split_exact(total: int, exact: Sequence[Decimal]) -> list[int]:
    """Round non-negative exact amounts to ints summing to ``total`` (largest remainder).

    Each part is its exact amount floored, plus one for the largest fractional
    remainders (ties to the earlier index), so every part is within 1 of its
    exact amount. ``total`` must be a rounding of ``sum(exact)``.
    """
    parts = [int(amount) for amount in exact]  # int() truncates; amounts are >= 0
    leftover = total - sum(parts)
    order = sorted(range(len(exact)), key=lambda i: (-(exact[i] - parts[i]), i))
    for index in order[:leftover]:
        parts[index] += 1
    return parts


def _graduated(tiers: Sequence[Tier], quantity: Decimal) -> list[tuple[TierLine, Decimal]]:
    """Tier lines (amount still 0) with their exact amounts: each unit at its tier's price."""
    lines: list[tuple[TierLine, Decimal]] = []
    lower = ZERO
    for index, tier in enumerate(tiers):
        if quantity <= lower:
            break  # a tier's flat fee applies only once a unit reaches it
        upper = quantity if tier.up_to is None else min(quantity, tier.up_to)
        in_tier = upper - lower
        line = TierLine(
            tier_index=index,
            from_unit=lower,
            up_to=tier.up_to,
            quantity=in_tier,
            unit_amount_decimal=tier.unit_amount_decimal,
            flat_amount=tier.flat_amount,
            amount=0,
        )
        lines.append((line, in_tier * tier.unit_amount_decimal + tier.flat_amount))
        if tier.up_to is None:
            break
        lower = tier.up_to
    return lines


def _volume(tiers: Sequence[Tier], quantity: Decimal) -> list[tuple[TierLine, Decimal]]:
    """The single tier the total falls in (up_to inclusive), applied to all units."""
    lower = ZERO
    for index, tier in enumerate(tiers):
        if tier.up_to is None or quantity <= tier.up_to:
            line = TierLine(
                tier_index=index,
                from_unit=lower,
                up_to=tier.up_to,
                quantity=quantity,
                unit_amount_decimal=tier.unit_amount_decimal,
                flat_amount=tier.flat_amount,
                amount=0,
            )
            return [(line, quantity * tier.unit_amount_decimal + tier.flat_amount)]
        lower = tier.up_to
    raise AssertionError("validated tiers always end open-ended")  # pragma: no cover


def price_metric(
    price: MeteredPrice, quantity: Decimal
) -> tuple[int, Decimal, tuple[TierLine, ...]]:
    """Price one metric: ``(amount, exact_amount, tier_lines)``.

    ``amount`` is ``exact_amount`` rounded once, half-up, to integer minor units.
    Tier lines are returned for graduated and volume prices (only the tiers that
    were reached); per_unit and package prices have none. Raises ValueError for
    an invalid price or a negative / non-finite quantity.
    """
    errors = price_errors(price)
    if errors:
        detail = "; ".join(f"{path}: {message}" for path, message in errors)
        raise ValueError(f"invalid metered price: {detail}")
    if not _is_decimal(quantity) or quantity < 0:
        raise ValueError(f"quantity must be a finite Decimal >= 0: {quantity!r}")

    with localcontext(_EXACT):
        billable = max(quantity - price.free_units, ZERO)
        if billable == 0:
            # Zero usage costs nothing in every model, flat tier fees included.
            return 0, ZERO, ()
        match price.model:
            case PricingModel.per_unit:
                assert price.unit_amount_decimal is not None  # checked by price_errors
                exact = billable * price.unit_amount_decimal
                return round_minor(exact), exact, ()
            case PricingModel.package:
                assert price.package_size is not None  # checked by price_errors
                assert price.package_amount is not None
                # divmod is exact; a plain division could round a 2.000…01 down to 2.
                whole, rest = divmod(billable, price.package_size)
                packages = int(whole) + (1 if rest else 0)
                exact = Decimal(packages * price.package_amount)
                return round_minor(exact), exact, ()
            case PricingModel.graduated:
                priced = _graduated(price.tiers, billable)
            case PricingModel.volume:
                priced = _volume(price.tiers, billable)
        exact = sum((amount for _, amount in priced), ZERO)
        amount = round_minor(exact)
        parts = _split_exact(amount, [line_exact for _, line_exact in priced])
    lines = tuple(
        TierLine(
            tier_index=line.tier_index,
            from_unit=line.from_unit,
            up_to=line.up_to,
            quantity=line.quantity,
            unit_amount_decimal=line.unit_amount_decimal,
            flat_amount=line.flat_amount,
            amount=part,
        )
        for (line, _), part in zip(priced, parts, strict=True)
    )
    return amount, exact, lines


def price_usage(
    components: Mapping[str, MeteredPrice], quantities: Mapping[str, Decimal]
) -> list[UsageCharge]:
    """One charge per component, in the components' order; a missing quantity is 0.

    Quantities for metrics that have no component are not billed. A ValueError
    from an invalid price or quantity is re-raised prefixed with the metric name.
    """
    charges: list[UsageCharge] = []
    for metric, price in components.items():
        quantity = quantities.get(metric, ZERO)
        try:
            amount, exact, lines = price_metric(price, quantity)
        except ValueError as exc:
            raise ValueError(f"{metric}: {exc}") from exc
        charges.append(UsageCharge(metric, quantity, amount, exact, lines))
    return charges
