"""Bad plan input: a 422 naming the offending field by its dotted path, and nothing written."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import Sql
from tests.factories.catalog import api_calls_graduated, create_plan, plan_body, price
from tests.platform.test_errors import assert_problem

Body = dict[str, Any]


def tiers(*up_tos: Any) -> list[dict[str, Any]]:
    return [{"up_to": up_to, "unit_amount_decimal": "1"} for up_to in up_tos]


def metered(*components: dict[str, Any]) -> Body:
    return plan_body(prices=[price(metered=list(components))])


def with_tier(index: int, **fields: Any) -> Body:
    component = api_calls_graduated()
    component["tiers"][index] |= fields
    return metered(component)


def set_path(path: str, value: Any) -> Callable[[Body], Body]:
    """Change one field of the valid body, addressed like the expected `param`."""

    def change(body: Body) -> Body:
        body = copy.deepcopy(body)
        *parents, last = path.split(".")
        target: Any = body
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        target[int(last) if last.isdigit() else last] = value
        return body

    return change


BASE = metered(api_calls_graduated())

CASES: list[tuple[str, Body, str]] = [
    # amounts
    ("negative amount", set_path("prices.0.unit_amount", -1)(BASE), "prices.0.unit_amount"),
    ("fractional amount", set_path("prices.0.unit_amount", 29.5)(BASE), "prices.0.unit_amount"),
    ("float amount", set_path("prices.0.unit_amount", 2900.0)(BASE), "prices.0.unit_amount"),
    ("string amount", set_path("prices.0.unit_amount", "2900")(BASE), "prices.0.unit_amount"),
    ("huge amount", set_path("prices.0.unit_amount", 10**12)(BASE), "prices.0.unit_amount"),
    ("negative flat", with_tier(0, flat_amount=-5), "prices.0.metered.0.tiers.0.flat_amount"),
    ("fractional flat", with_tier(1, flat_amount=1.5), "prices.0.metered.0.tiers.1.flat_amount"),
    (
        "negative unit decimal",
        with_tier(1, unit_amount_decimal="-0.01"),
        "prices.0.metered.0.tiers.1.unit_amount_decimal",
    ),
    (
        "NaN unit decimal",
        with_tier(1, unit_amount_decimal="NaN"),
        "prices.0.metered.0.tiers.1.unit_amount_decimal",
    ),
    (
        "too precise unit decimal",
        with_tier(1, unit_amount_decimal="0.0000000000001"),
        "prices.0.metered.0.tiers.1.unit_amount_decimal",
    ),
    # currencies
    ("unknown currency", set_path("prices.0.currency", "ZZZ")(BASE), "prices.0.currency"),
    ("fund code", set_path("prices.0.currency", "XAU")(BASE), "prices.0.currency"),
    (
        "repeated currency",
        plan_body(prices=[price("USD"), price("usd", 3000)]),
        "prices.1.currency",
    ),
    ("no price", plan_body(prices=[]), "prices"),
    # tiers
    (
        "tiers not ascending",
        metered(api_calls_graduated(tiers=tiers("1000", "500", None))),
        "prices.0.metered.0.tiers.1.up_to",
    ),
    (
        "equal tiers",
        metered(api_calls_graduated(tiers=tiers(100, 100, None))),
        "prices.0.metered.0.tiers.1.up_to",
    ),
    (
        "last tier not open-ended",
        metered(api_calls_graduated(tiers=tiers(1000, 2000))),
        "prices.0.metered.0.tiers.1.up_to",
    ),
    (
        "open-ended tier in the middle",
        metered(api_calls_graduated(tiers=tiers(None, None))),
        "prices.0.metered.0.tiers.0.up_to",
    ),
    ("up_to zero", with_tier(0, up_to=0), "prices.0.metered.0.tiers.0.up_to"),
    (
        "deep path",
        metered(
            api_calls_graduated(),
            api_calls_graduated("emails", tiers=tiers(10, 20, "20", None)),
        ),
        "prices.0.metered.1.tiers.2.up_to",
    ),
    ("no tiers", metered(api_calls_graduated(tiers=[])), "prices.0.metered.0.tiers"),
    (
        "missing up_to",
        set_path("prices.0.metered.0.tiers.0", {})(BASE),
        "prices.0.metered.0.tiers.0.up_to",
    ),
    # fields per pricing model
    (
        "tiers on per_unit",
        metered(api_calls_graduated(model="per_unit", unit_amount_decimal="1")),
        "prices.0.metered.0.tiers",
    ),
    (
        "per_unit without a unit price",
        metered({"metric": "emails", "model": "per_unit"}),
        "prices.0.metered.0.unit_amount_decimal",
    ),
    (
        "unit price on graduated",
        metered(api_calls_graduated(unit_amount_decimal="1")),
        "prices.0.metered.0.unit_amount_decimal",
    ),
    (
        "package without size",
        metered({"metric": "gb", "model": "package", "package_amount": 100}),
        "prices.0.metered.0.package_size",
    ),
    (
        "package size zero",
        metered({"metric": "gb", "model": "package", "package_size": 0, "package_amount": 1}),
        "prices.0.metered.0.package_size",
    ),
    (
        "negative package amount",
        metered({"metric": "gb", "model": "package", "package_size": 5, "package_amount": -1}),
        "prices.0.metered.0.package_amount",
    ),
    (
        "negative free units",
        metered(api_calls_graduated(free_units="-1")),
        "prices.0.metered.0.free_units",
    ),
    ("unknown model", metered(api_calls_graduated(model="stairstep")), "prices.0.metered.0.model"),
    # metrics
    ("bad metric name", metered(api_calls_graduated("API Calls")), "prices.0.metered.0.metric"),
    (
        "repeated metric",
        metered(api_calls_graduated(), api_calls_graduated()),
        "prices.0.metered.1.metric",
    ),
    (
        "unknown aggregation",
        metered(api_calls_graduated(aggregation="avg")),
        "prices.0.metered.0.aggregation",
    ),
    (
        "unique_count without property",
        metered(api_calls_graduated(aggregation="unique_count")),
        "prices.0.metered.0.property",
    ),
    (
        "property without unique_count",
        metered(api_calls_graduated(property="user_id")),
        "prices.0.metered.0.property",
    ),
    # plan fields
    ("upper-case code", plan_body(code="Pro"), "code"),
    ("uuid code", plan_body(code=str(uuid.uuid4())), "code"),
    ("long code", plan_body(code="p" * 65), "code"),
    ("empty name", plan_body(name=""), "name"),
    ("unknown interval", plan_body(interval="fortnight"), "interval"),
    ("zero interval count", plan_body(interval_count=0), "interval_count"),
    ("37 months", plan_body(interval_count=37), "interval_count"),
    ("4 years", plan_body(interval="year", interval_count=4), "interval_count"),
    ("157 weeks", plan_body(interval="week", interval_count=157), "interval_count"),
    ("366 days", plan_body(interval="day", interval_count=366), "interval_count"),
    ("negative trial", plan_body(trial_days=-1), "trial_days"),
    ("long trial", plan_body(trial_days=731), "trial_days"),
    ("unknown field", plan_body(colour="red"), "colour"),
    ("unknown price field", set_path("prices.0.amount", 1)(BASE), "prices.0.amount"),
    ("metadata not strings", plan_body(metadata={"n": 1}), "metadata.n"),
]


@pytest.mark.parametrize(("body", "param"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_bad_plan_is_422_naming_the_field(
    client: httpx.AsyncClient, sql: Sql, body: Body, param: str
) -> None:
    response = await client.post("/v1/plans", json=body)
    problem = assert_problem(response, 422, "validation_error")
    assert problem["param"] == param
    assert param in [error["field"] for error in problem["errors"]]  # type: ignore[attr-defined]
    # Nothing is half-written: no plan and no event.
    assert (await sql("SELECT count(*) AS n FROM plans"))[0].n == 0
    assert (await sql("SELECT count(*) AS n FROM events"))[0].n == 0


async def test_the_base_body_of_the_table_is_valid(client: httpx.AsyncClient) -> None:
    # Guards the table above: each case fails for its own change, not a broken base.
    assert (await client.post("/v1/plans", json=BASE)).status_code == 201


async def test_every_broken_field_is_listed(client: httpx.AsyncClient) -> None:
    body = metered(
        api_calls_graduated(tiers=tiers(0, None)),
        api_calls_graduated("emails", tiers=tiers(10, 5)),
    )
    problem = assert_problem(await client.post("/v1/plans", json=body), 422, "validation_error")
    assert problem["param"] == "prices.0.metered.0.tiers.0.up_to"
    assert [e["field"] for e in problem["errors"]] == [  # type: ignore[attr-defined]
        "prices.0.metered.0.tiers.0.up_to",
        "prices.0.metered.1.tiers.1.up_to",
        "prices.0.metered.1.tiers.1.up_to",
    ]
    assert "must be greater than 0" in str(problem["detail"])


VERSION_CASES: list[tuple[str, Body, str]] = [
    (
        "tiers not ascending",
        {"prices": [price(metered=[api_calls_graduated(tiers=tiers(9, 3, None))])]},
        "prices.0.metered.0.tiers.1.up_to",
    ),
    ("no price", {"prices": []}, "prices"),
    ("null prices", {"prices": None}, "prices"),
    ("null name", {"name": None}, "name"),
    # v1 is monthly: 12 years is too long, though 12 alone is a valid count.
    (
        "interval makes the period too long",
        {"interval": "year", "interval_count": 12},
        "interval_count",
    ),
    ("interval alone too long", {"interval": "year"}, "interval_count"),
    ("unknown field", {"code": "other"}, "code"),
]


@pytest.mark.parametrize(
    ("body", "param"), [c[1:] for c in VERSION_CASES], ids=[c[0] for c in VERSION_CASES]
)
async def test_bad_version_is_422_and_writes_nothing(
    client: httpx.AsyncClient, sql: Sql, body: Body, param: str
) -> None:
    await create_plan(client, interval_count=12)
    response = await client.post("/v1/plans/pro/versions", json=body)
    problem = assert_problem(response, 422, "validation_error")
    assert problem["param"] == param
    assert (await sql("SELECT count(*) AS n FROM plans"))[0].n == 1
    assert (await sql("SELECT count(*) AS n FROM events"))[0].n == 1
