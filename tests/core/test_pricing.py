"""Tests for billing.core.pricing."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.core.pricing import (
    MeteredPrice,
    PricingModel,
    Tier,
    TierLine,
    UsageCharge,
    price_errors,
    price_metric,
    price_usage,
    tier_errors,
)

D = Decimal
M = PricingModel

# Flat fees on the first two tiers make graduated and volume results differ.
TIERS = (
    Tier(D(1000), D("0.5"), 100),
    Tier(D(5000), D("0.25"), 50),
    Tier(None, D("0.1")),
)
GRADUATED = MeteredPrice(M.graduated, tiers=TIERS)
VOLUME = MeteredPrice(M.volume, tiers=TIERS)
API_CALLS = MeteredPrice(M.per_unit, unit_amount_decimal=D("0.04"))  # $0.0004 per call
PACKAGE = MeteredPrice(M.package, package_size=D(1000), package_amount=500)


@pytest.mark.parametrize(
    ("price", "quantity", "amount", "exact"),
    [
        # per_unit
        (API_CALLS, "0", 0, "0"),
        (API_CALLS, "12345", 494, "493.80"),  # 0.04 cents x 12,345 calls
        (API_CALLS, "12", 0, "0.48"),
        (MeteredPrice(M.per_unit, unit_amount_decimal=D("0.05")), "10", 1, "0.50"),
        (MeteredPrice(M.per_unit, unit_amount_decimal=D(2900)), "3", 8700, "8700"),
        (MeteredPrice(M.per_unit, unit_amount_decimal=D("12.5")), "1.5", 19, "18.75"),
        (MeteredPrice(M.per_unit, unit_amount_decimal=D(0)), "1000", 0, "0"),
        (
            MeteredPrice(M.per_unit, unit_amount_decimal=D("0.04"), free_units=D(1000)),
            "12345",
            454,
            "453.80",
        ),
        (MeteredPrice(M.per_unit, unit_amount_decimal=D(7), free_units=D(100)), "99", 0, "0"),
        # graduated: 1000 x 0.5 + 100 | 4000 x 0.25 + 50 | rest x 0.1
        (GRADUATED, "0", 0, "0"),
        (GRADUATED, "1", 101, "100.5"),
        (GRADUATED, "999", 600, "599.5"),
        (GRADUATED, "1000", 600, "600"),
        (GRADUATED, "1000.5", 650, "650.125"),
        (GRADUATED, "1001", 650, "650.25"),
        (GRADUATED, "5000", 1650, "1650"),
        (GRADUATED, "5001", 1650, "1650.1"),
        (GRADUATED, "5005", 1651, "1650.5"),
        (GRADUATED, "12345.678", 2385, "2384.5678"),
        (MeteredPrice(M.graduated, tiers=TIERS, free_units=D(1000)), "1001", 101, "100.5"),
        # volume: every unit at the price of the tier the total falls in, plus its flat
        (VOLUME, "0", 0, "0"),
        (VOLUME, "1", 101, "100.5"),
        (VOLUME, "999.99", 600, "599.995"),
        (VOLUME, "1000", 600, "600"),
        (VOLUME, "1001", 300, "300.25"),  # cheaper than 1000 units: volume is not monotone
        (VOLUME, "5000", 1300, "1300"),
        (VOLUME, "5001", 500, "500.1"),
        (VOLUME, "12345.678", 1235, "1234.5678"),
        # package: ceil(max(q - free, 0) / size) x amount
        (PACKAGE, "0", 0, "0"),
        (PACKAGE, "1", 500, "500"),
        (PACKAGE, "1000", 500, "500"),
        (PACKAGE, "1001", 1000, "1000"),
        (PACKAGE, "2999.5", 1500, "1500"),
        (
            MeteredPrice(M.package, package_size=D(1000), package_amount=500, free_units=D(100)),
            "50",
            0,
            "0",
        ),
        (
            MeteredPrice(M.package, package_size=D(1000), package_amount=500, free_units=D(100)),
            "100",
            0,
            "0",
        ),
        (
            MeteredPrice(M.package, package_size=D(1000), package_amount=500, free_units=D(100)),
            "1100",
            500,
            "500",
        ),
        (
            MeteredPrice(M.package, package_size=D(1000), package_amount=500, free_units=D(100)),
            "1101",
            1000,
            "1000",
        ),
        (MeteredPrice(M.package, package_size=D("0.5"), package_amount=3), "1.2", 9, "9"),
        (MeteredPrice(M.package, package_size=D(10), package_amount=0), "25", 0, "0"),
    ],
)
def test_price_metric_amounts(price: MeteredPrice, quantity: str, amount: int, exact: str) -> None:
    got_amount, got_exact, _ = price_metric(price, D(quantity))
    assert got_amount == amount
    assert type(got_amount) is int
    assert got_exact == D(exact)


def test_graduated_tier_lines_detail() -> None:
    amount, _, lines = price_metric(GRADUATED, D(1001))
    assert amount == 650
    assert lines == (
        TierLine(0, D(0), D(1000), D(1000), D("0.5"), 100, 600),
        TierLine(1, D(1000), D(5000), D(1), D("0.25"), 50, 50),
    )


def test_graduated_exact_boundary_does_not_reach_next_tier() -> None:
    _, _, lines = price_metric(GRADUATED, D(1000))
    assert [line.tier_index for line in lines] == [0]


def test_volume_tier_line_is_the_tier_the_total_falls_in() -> None:
    _, _, lines = price_metric(VOLUME, D(1001))
    assert lines == (TierLine(1, D(1000), D(5000), D(1001), D("0.25"), 50, 300),)
    _, _, lines = price_metric(VOLUME, D(1000))
    assert lines == (TierLine(0, D(0), D(1000), D(1000), D("0.5"), 100, 600),)


@pytest.mark.parametrize("price", [API_CALLS, PACKAGE])
def test_per_unit_and_package_have_no_tier_lines(price: MeteredPrice) -> None:
    assert price_metric(price, D(5))[2] == ()


THIRDS = (Tier(D(1), D("0.4")), Tier(D(2), D("0.4")), Tier(None, D("0.4")))
SIXTHS = (Tier(D(1), D("0.6")), Tier(D(2), D("0.6")), Tier(None, D("0.6")))


@pytest.mark.parametrize(
    ("tiers", "quantity", "amount", "line_amounts"),
    [
        # lines 600 | 1050 | 734.5678 -> 2385: the one unit left goes to the last line
        (TIERS, "12345.678", 2385, [600, 1050, 735]),
        # lines 0.4 each, 1.2 -> 1: the one unit goes to the earliest tied line
        (THIRDS, "3", 1, [1, 0, 0]),
        # lines 0.6 each, 1.8 -> 2
        (SIXTHS, "3", 2, [1, 1, 0]),
        # lines 600 | 0.25 + 50 -> 650: 50.25 rounds down inside the split too
        (TIERS, "1001", 650, [600, 50]),
    ],
)
def test_tier_line_split_sums_exactly(
    tiers: tuple[Tier, ...], quantity: str, amount: int, line_amounts: list[int]
) -> None:
    got_amount, _, lines = price_metric(MeteredPrice(M.graduated, tiers=tiers), D(quantity))
    assert got_amount == amount
    assert [line.amount for line in lines] == line_amounts
    assert sum(line.amount for line in lines) == amount


def test_price_usage_in_component_order_with_missing_quantity_as_zero() -> None:
    components = {"storage_gb": PACKAGE, "api_calls": API_CALLS, "seats": GRADUATED}
    quantities = {"api_calls": D(12345), "storage_gb": D(1001), "unpriced": D(99)}
    charges = price_usage(components, quantities)
    assert charges == [
        UsageCharge("storage_gb", D(1001), 1000, D(1000), ()),
        UsageCharge("api_calls", D(12345), 494, D("493.80"), ()),
        UsageCharge("seats", D(0), 0, D(0), ()),
    ]


def test_price_usage_empty() -> None:
    assert price_usage({}, {"api_calls": D(1)}) == []


def test_price_usage_names_the_metric_on_error() -> None:
    with pytest.raises(ValueError, match=r"^api_calls: quantity must be"):
        price_usage({"api_calls": API_CALLS}, {"api_calls": D(-1)})


@pytest.mark.parametrize("quantity", [D(-1), D("-0.001"), D("NaN"), D("Infinity")])
def test_price_metric_rejects_bad_quantity(quantity: Decimal) -> None:
    with pytest.raises(ValueError, match="quantity must be"):
        price_metric(API_CALLS, quantity)


def test_price_metric_rejects_invalid_price() -> None:
    with pytest.raises(ValueError, match=r"invalid metered price: tiers\.0\.up_to"):
        price_metric(MeteredPrice(M.graduated, tiers=(Tier(D(10), D(1)),)), D(1))


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("tiers", "errors"),
    [
        (TIERS, []),
        ((Tier(None, D(0)),), []),
        ((), [("tiers", "at least one tier is required")]),
        (
            (Tier(D(1000), D(1)),),
            [("tiers.0.up_to", "the last tier must be open-ended (null)")],
        ),
        (
            (Tier(None, D(1)), Tier(None, D(1))),
            [("tiers.0.up_to", "only the last tier may be open-ended")],
        ),
        (
            (Tier(D(0), D(1)), Tier(None, D(1))),
            [("tiers.0.up_to", "must be greater than 0")],
        ),
        (
            (Tier(D(-5), D(1)), Tier(None, D(1))),
            [("tiers.0.up_to", "must be greater than 0")],
        ),
        (
            (Tier(D(100), D(1)), Tier(D(100), D(1)), Tier(None, D(1))),
            [("tiers.1.up_to", "must be greater than the previous tier's up_to")],
        ),
        (
            (Tier(D(100), D(1)), Tier(D(50), D(1)), Tier(None, D(1))),
            [("tiers.1.up_to", "must be greater than the previous tier's up_to")],
        ),
        (
            (Tier(D("NaN"), D(1)), Tier(None, D(1))),
            [("tiers.0.up_to", "must be a finite decimal")],
        ),
        (
            (Tier(D(10), D("-0.01")), Tier(None, D(1), -1)),
            [
                ("tiers.0.unit_amount_decimal", "must be greater than or equal to 0"),
                ("tiers.1.flat_amount", "must be greater than or equal to 0"),
            ],
        ),
        (
            (Tier(None, D(1)), Tier(D(10), D("Infinity"))),
            [
                ("tiers.0.up_to", "only the last tier may be open-ended"),
                ("tiers.1.up_to", "the last tier must be open-ended (null)"),
                ("tiers.1.unit_amount_decimal", "must be a finite decimal"),
            ],
        ),
    ],
)
def test_tier_errors(tiers: tuple[Tier, ...], errors: list[tuple[str, str]]) -> None:
    assert tier_errors(tiers) == errors


@pytest.mark.parametrize(
    ("price", "errors"),
    [
        (API_CALLS, []),
        (GRADUATED, []),
        (VOLUME, []),
        (PACKAGE, []),
        (MeteredPrice(M.package, package_size=D("0.5"), package_amount=0, free_units=D(3)), []),
        (
            MeteredPrice(M.per_unit),
            [("unit_amount_decimal", "is required for per_unit pricing")],
        ),
        (
            MeteredPrice(M.per_unit, unit_amount_decimal=D(-1)),
            [("unit_amount_decimal", "must be greater than or equal to 0")],
        ),
        (
            MeteredPrice(M.per_unit, unit_amount_decimal=D(1), tiers=TIERS),
            [("tiers", "are not allowed for per_unit pricing")],
        ),
        (MeteredPrice(M.graduated), [("tiers", "at least one tier is required")]),
        (
            MeteredPrice(M.volume, tiers=(Tier(D(10), D(1)), Tier(D(5), D(1)), Tier(None, D(1)))),
            [("tiers.1.up_to", "must be greater than the previous tier's up_to")],
        ),
        (
            MeteredPrice(M.graduated, unit_amount_decimal=D(1), tiers=TIERS),
            [("unit_amount_decimal", "is not allowed for graduated pricing")],
        ),
        (
            MeteredPrice(M.package),
            [
                ("package_size", "is required for package pricing"),
                ("package_amount", "is required for package pricing"),
            ],
        ),
        (
            MeteredPrice(M.package, package_size=D(0), package_amount=-1),
            [
                ("package_size", "must be greater than 0"),
                ("package_amount", "must be greater than or equal to 0"),
            ],
        ),
        (
            MeteredPrice(M.package, package_size=D("NaN"), package_amount=1),
            [("package_size", "must be a finite decimal")],
        ),
        (
            MeteredPrice(M.volume, tiers=TIERS, package_size=D(1), package_amount=1),
            [
                ("package_size", "is not allowed for volume pricing"),
                ("package_amount", "is not allowed for volume pricing"),
            ],
        ),
        (
            MeteredPrice(M.per_unit, unit_amount_decimal=D(1), free_units=D(-1)),
            [("free_units", "must be greater than or equal to 0")],
        ),
    ],
)
def test_price_errors(price: MeteredPrice, errors: list[tuple[str, str]]) -> None:
    assert price_errors(price) == errors


# --------------------------------------------------------------------------- properties

amounts = st.decimals(
    min_value=0, max_value=10_000, places=4, allow_nan=False, allow_infinity=False
)
quantities = st.decimals(
    min_value=0, max_value=10_000_000, places=3, allow_nan=False, allow_infinity=False
)
free = st.decimals(min_value=0, max_value=1000, places=2, allow_nan=False, allow_infinity=False)
flats = st.integers(min_value=0, max_value=100_000)


@st.composite
def tier_lists(draw: st.DrawFn) -> tuple[Tier, ...]:
    bounds = draw(
        st.lists(
            st.decimals(min_value="0.01", max_value=1_000_000, places=2),
            max_size=5,
            unique=True,
        )
    )
    ups: list[Decimal | None] = [*sorted(bounds), None]
    return tuple(Tier(up, draw(amounts), draw(flats)) for up in ups)


graduated_prices = st.builds(
    lambda tiers, free_units: MeteredPrice(M.graduated, tiers=tiers, free_units=free_units),
    tier_lists(),
    free,
)
volume_prices = st.builds(
    lambda tiers, free_units: MeteredPrice(M.volume, tiers=tiers, free_units=free_units),
    tier_lists(),
    free,
)
per_unit_prices = st.builds(
    lambda unit, free_units: MeteredPrice(
        M.per_unit, unit_amount_decimal=unit, free_units=free_units
    ),
    amounts,
    free,
)
package_prices = st.builds(
    lambda size, amount, free_units: MeteredPrice(
        M.package, package_size=size, package_amount=amount, free_units=free_units
    ),
    st.decimals(min_value="0.01", max_value=100_000, places=2),
    flats,
    free,
)
any_price = st.one_of(per_unit_prices, graduated_prices, volume_prices, package_prices)


@given(price=any_price)
def test_generated_prices_are_valid(price: MeteredPrice) -> None:
    assert price_errors(price) == []


@given(price=any_price)
def test_zero_usage_costs_nothing(price: MeteredPrice) -> None:
    assert price_metric(price, D(0)) == (0, D(0), ())
    # usage within the free units is zero billable usage too
    assert price_metric(price, price.free_units)[0] == 0


@given(price=any_price, quantity=quantities)
def test_amount_is_the_exact_amount_rounded_once(price: MeteredPrice, quantity: Decimal) -> None:
    amount, exact, lines = price_metric(price, quantity)
    assert type(amount) is int
    assert all(type(line.amount) is int for line in lines)
    assert amount >= 0
    # half-up on non-negative amounts: .5 rounds up, anything less rounds down
    assert -D("0.5") <= exact - amount < D("0.5")
    if lines:
        assert sum(line.amount for line in lines) == amount


@given(price=graduated_prices | package_prices, a=quantities, b=quantities)
def test_graduated_and_package_never_decrease(price: MeteredPrice, a: Decimal, b: Decimal) -> None:
    low, high = sorted((a, b))
    assert price_metric(price, low)[0] <= price_metric(price, high)[0]
    assert price_metric(price, low)[1] <= price_metric(price, high)[1]


@given(price=graduated_prices, quantity=quantities)
def test_graduated_tier_lines(price: MeteredPrice, quantity: Decimal) -> None:
    amount, exact, lines = price_metric(price, quantity)
    assert amount == sum(line.amount for line in lines)
    line_exacts = [line.quantity * line.unit_amount_decimal + line.flat_amount for line in lines]
    assert exact == sum(line_exacts, D(0))
    # each line is within 1 of its exact amount
    assert all(abs(line.amount - e) < 1 for line, e in zip(lines, line_exacts, strict=True))
    # lines are consecutive tiers starting at 0 and cover the billable quantity
    assert [line.tier_index for line in lines] == list(range(len(lines)))
    assert sum(line.quantity for line in lines) == max(quantity - price.free_units, D(0))
    assert all(line.quantity > 0 for line in lines)


@given(price=volume_prices, quantity=quantities)
def test_volume_single_tier_line(price: MeteredPrice, quantity: Decimal) -> None:
    amount, exact, lines = price_metric(price, quantity)
    billable = max(quantity - price.free_units, D(0))
    if billable == 0:
        assert lines == ()
        return
    (line,) = lines
    assert line.amount == amount
    assert line.quantity == billable
    assert line.from_unit < billable
    assert line.up_to is None or billable <= line.up_to
    assert exact == billable * line.unit_amount_decimal + line.flat_amount
