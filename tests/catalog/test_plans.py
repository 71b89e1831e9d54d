"""The plan catalog over HTTP against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from billing.auth.permissions import Role
from tests.conftest import Sql, http_client, new_api_key
from tests.factories.catalog import (
    api_calls_graduated,
    create_plan,
    create_version,
    plan_body,
    price,
)
from tests.platform.test_errors import assert_problem

PLAN_FIELDS = {
    "object",
    "id",
    "code",
    "version",
    "name",
    "description",
    "interval",
    "interval_count",
    "trial_days",
    "active",
    "prices",
    "metadata",
    "created_at",
}


def without_ids(plan: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in plan.items() if k not in ("id", "created_at")}


async def plan_events(sql: Sql) -> list[tuple[str, dict[str, Any]]]:
    rows = await sql("SELECT type, data FROM events ORDER BY seq")
    return [(row.type, row.data) for row in rows]


# --------------------------------------------------------------------------- create


async def test_create_monthly_annual_plan(client: httpx.AsyncClient) -> None:
    monthly = await create_plan(client, code="pro", name="Pro")
    annual = await create_plan(
        client,
        code="pro-annual",
        name="Pro (annual)",
        interval="year",
        prices=[price(unit_amount=29000)],
    )

    assert set(monthly) == PLAN_FIELDS
    uuid.UUID(monthly["id"])
    assert without_ids(monthly) == {
        "object": "plan",
        "code": "pro",
        "version": 1,
        "name": "Pro",
        "description": None,
        "interval": "month",
        "interval_count": 1,
        "trial_days": 0,
        "active": True,
        "prices": [{"currency": "USD", "unit_amount": 2900, "metered": []}],
        "metadata": {},
    }
    assert annual["interval"] == "year"
    assert annual["version"] == 1
    assert annual["prices"] == [{"currency": "USD", "unit_amount": 29000, "metered": []}]
    assert (await client.get(f"/v1/plans/{monthly['id']}")).json() == monthly
    assert (await client.get("/v1/plans/pro-annual")).json() == annual


async def test_create_plan_with_trial(client: httpx.AsyncClient) -> None:
    plan = await create_plan(
        client, trial_days=14, interval="week", interval_count=2, description="Try it"
    )
    assert plan["trial_days"] == 14
    assert plan["interval"] == "week"
    assert plan["interval_count"] == 2
    assert plan["description"] == "Try it"
    assert (await client.get("/v1/plans/pro")).json()["trial_days"] == 14


async def test_create_usage_based_plan_with_tiers(client: httpx.AsyncClient) -> None:
    plan = await create_plan(
        client,
        prices=[
            price(
                unit_amount=2900,
                metered=[
                    api_calls_graduated(),
                    {
                        "metric": "seats.active",
                        "aggregation": "unique_count",
                        "property": "user_id",
                        "model": "volume",
                        "tiers": [
                            {"up_to": 10, "unit_amount_decimal": 500},
                            {"up_to": None, "unit_amount_decimal": "400", "flat_amount": 1000},
                        ],
                    },
                    {
                        "metric": "storage_gb",
                        "aggregation": "max",
                        "model": "package",
                        "package_size": "10",
                        "package_amount": 500,
                        "free_units": 5,
                    },
                    {
                        "metric": "emails",
                        "aggregation": "count",
                        "model": "per_unit",
                        "unit_amount_decimal": 0.1,
                    },
                ],
            )
        ],
    )
    [usd] = plan["prices"]
    assert usd["currency"] == "USD"
    assert usd["unit_amount"] == 2900
    assert usd["metered"] == [
        {
            "metric": "api_calls",
            "aggregation": "sum",
            "model": "graduated",
            "tiers": [
                {"up_to": "1000", "unit_amount_decimal": "0", "flat_amount": 0},
                {"up_to": None, "unit_amount_decimal": "0.04", "flat_amount": 0},
            ],
            "unit_amount_decimal": None,
            "package_size": None,
            "package_amount": None,
            "free_units": "0",
            "property": None,
        },
        {
            "metric": "seats.active",
            "aggregation": "unique_count",
            "model": "volume",
            "tiers": [
                {"up_to": "10", "unit_amount_decimal": "500", "flat_amount": 0},
                {"up_to": None, "unit_amount_decimal": "400", "flat_amount": 1000},
            ],
            "unit_amount_decimal": None,
            "package_size": None,
            "package_amount": None,
            "free_units": "0",
            "property": "user_id",
        },
        {
            "metric": "storage_gb",
            "aggregation": "max",
            "model": "package",
            "tiers": None,
            "unit_amount_decimal": None,
            "package_size": "10",
            "package_amount": 500,
            "free_units": "5",
            "property": None,
        },
        {
            "metric": "emails",
            "aggregation": "count",
            "model": "per_unit",
            "tiers": None,
            "unit_amount_decimal": "0.1",
            "package_size": None,
            "package_amount": None,
            "free_units": "0",
            "property": None,
        },
    ]
    # What is stored is what is returned.
    assert (await client.get(f"/v1/plans/{plan['id']}")).json() == plan


async def test_decimals_are_returned_as_canonical_strings(client: httpx.AsyncClient) -> None:
    tiers = [
        {"up_to": "1e3", "unit_amount_decimal": "0.0400"},
        {"up_to": 5000, "unit_amount_decimal": 0.02},
        {"up_to": None, "unit_amount_decimal": "-0"},
    ]
    plan = await create_plan(
        client, prices=[price(metered=[api_calls_graduated(tiers=tiers, free_units="10.50")])]
    )
    component = plan["prices"][0]["metered"][0]
    assert component["tiers"] == [
        {"up_to": "1000", "unit_amount_decimal": "0.04", "flat_amount": 0},
        {"up_to": "5000", "unit_amount_decimal": "0.02", "flat_amount": 0},
        {"up_to": None, "unit_amount_decimal": "0", "flat_amount": 0},
    ]
    assert component["free_units"] == "10.5"


async def test_currencies_with_other_minor_units_and_lower_case(client: httpx.AsyncClient) -> None:
    plan = await create_plan(
        client,
        prices=[
            price("JPY", 500),
            price("BHD", 1000),
            price("eur", 2700),
        ],
    )
    assert [(p["currency"], p["unit_amount"]) for p in plan["prices"]] == [
        ("JPY", 500),
        ("BHD", 1000),
        ("EUR", 2700),
    ]


async def test_metadata_is_kept(client: httpx.AsyncClient) -> None:
    plan = await create_plan(client, metadata={"crm_id": "4711"})
    assert plan["metadata"] == {"crm_id": "4711"}


async def test_existing_code_is_409_pointing_to_versions(
    client: httpx.AsyncClient, sql: Sql
) -> None:
    await create_plan(client)
    body = assert_problem(
        await client.post("/v1/plans", json=plan_body(name="Pro again")), 409, "conflict"
    )
    assert body["param"] == "code"
    assert "POST /v1/plans/pro/versions" in str(body["detail"])
    assert (await sql("SELECT count(*) AS n FROM plans"))[0].n == 1


async def test_concurrent_creates_of_one_code_give_one_plan(
    client: httpx.AsyncClient, sql: Sql
) -> None:
    responses = await asyncio.gather(
        *(client.post("/v1/plans", json=plan_body()) for _ in range(4))
    )
    assert sorted(r.status_code for r in responses) == [201, 409, 409, 409]
    assert (await sql("SELECT count(*) AS n FROM plans"))[0].n == 1


async def test_create_records_a_plan_created_event(client: httpx.AsyncClient, sql: Sql) -> None:
    plan = await create_plan(client)
    assert await plan_events(sql) == [("plan.created", plan)]
    [row] = await sql(
        "SELECT e.created_at = p.created_at AS same FROM events e, plans p WHERE p.id = :id",
        id=plan["id"],
    )
    assert row.same  # the event happened at the change's instant


async def test_create_with_an_idempotency_key_runs_once(
    client: httpx.AsyncClient, sql: Sql
) -> None:
    headers = {"Idempotency-Key": "plan-pro-1"}
    first = await client.post("/v1/plans", json=plan_body(), headers=headers)
    again = await client.post("/v1/plans", json=plan_body(), headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert (await sql("SELECT count(*) AS n FROM plans"))[0].n == 1


# --------------------------------------------------------------------------- versions


async def test_plan_versioning(client: httpx.AsyncClient) -> None:
    v1 = await create_plan(client, trial_days=7, metadata={"team": "growth"})
    v2 = await create_version(
        client,
        "pro",
        prices=[price(unit_amount=3900), price("EUR", 3500)],
        trial_days=14,
    )

    assert v2["id"] != v1["id"]
    assert without_ids(v2) == without_ids(v1) | {
        "version": 2,
        "trial_days": 14,
        "prices": [
            {"currency": "USD", "unit_amount": 3900, "metered": []},
            {"currency": "EUR", "unit_amount": 3500, "metered": []},
        ],
    }
    # v1 is untouched and still reachable by its id; the code means the latest version.
    assert (await client.get(f"/v1/plans/{v1['id']}")).json() == v1
    assert (await client.get("/v1/plans/pro")).json() == v2

    v3 = await create_version(client, "pro", interval="year", name="Pro yearly")
    assert v3["version"] == 3
    assert v3["interval"] == "year"
    assert v3["name"] == "Pro yearly"
    assert v3["prices"] == v2["prices"]  # omitted prices are copied
    assert v3["trial_days"] == 14

    versions = (await client.get("/v1/plans/pro/versions")).json()
    assert versions == {"object": "list", "data": [v1, v2, v3], "has_more": False}


async def test_version_description_null_clears_and_omitted_copies(
    client: httpx.AsyncClient,
) -> None:
    await create_plan(client, description="Best value")
    v2 = await create_version(client, "pro", trial_days=3)
    assert v2["description"] == "Best value"
    v3 = await create_version(client, "pro", description=None)
    assert v3["description"] is None


async def test_new_version_is_active_even_after_deactivation(client: httpx.AsyncClient) -> None:
    v1 = await create_plan(client)
    await client.patch(f"/v1/plans/{v1['id']}", json={"active": False})
    v2 = await create_version(client, "pro", trial_days=30)
    assert v2["active"] is True
    v3 = await create_version(client, "pro", active=False)
    assert v3["active"] is False


async def test_version_of_unknown_code_is_404(client: httpx.AsyncClient, sql: Sql) -> None:
    body = assert_problem(
        await client.post("/v1/plans/nope/versions", json={"trial_days": 1}), 404, "not_found"
    )
    assert body["param"] == "code"
    assert (await sql("SELECT count(*) AS n FROM plans"))[0].n == 0


async def test_concurrent_versions_get_distinct_numbers(
    client: httpx.AsyncClient, sql: Sql
) -> None:
    await create_plan(client)
    responses = await asyncio.gather(
        *(client.post("/v1/plans/pro/versions", json={"trial_days": days}) for days in range(1, 6))
    )
    assert [r.status_code for r in responses] == [201] * 5
    assert sorted(r.json()["version"] for r in responses) == [2, 3, 4, 5, 6]
    rows = await sql("SELECT version FROM plans WHERE code = 'pro' ORDER BY version")
    assert [row.version for row in rows] == [1, 2, 3, 4, 5, 6]


async def test_version_records_a_plan_created_event(client: httpx.AsyncClient, sql: Sql) -> None:
    v1 = await create_plan(client)
    v2 = await create_version(client, "pro", trial_days=5)
    assert await plan_events(sql) == [("plan.created", v1), ("plan.created", v2)]


async def test_list_versions_of_unknown_code_is_404(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/v1/plans/nope/versions"), 404, "not_found")


# --------------------------------------------------------------------------- activate


async def test_deactivate_and_reactivate_in_place(client: httpx.AsyncClient, sql: Sql) -> None:
    v1 = await create_plan(client)
    response = await client.patch(f"/v1/plans/{v1['id']}", json={"active": False})
    assert response.status_code == 200
    inactive = response.json()
    assert inactive == v1 | {"active": False}
    assert (await client.get("/v1/plans/pro")).json() == inactive  # still the latest version

    # Same value again: nothing changes, no event.
    assert (await client.patch(f"/v1/plans/{v1['id']}", json={"active": False})).json() == inactive
    active = (await client.patch(f"/v1/plans/{v1['id']}", json={"active": True})).json()
    assert active == v1
    assert await plan_events(sql) == [
        ("plan.created", v1),
        ("plan.updated", inactive),
        ("plan.updated", v1),
    ]
    assert (await sql("SELECT count(*) AS n FROM plans"))[0].n == 1


async def test_patching_anything_but_active_is_422_immutable(
    client: httpx.AsyncClient, sql: Sql
) -> None:
    v1 = await create_plan(client)
    response = await client.patch(
        f"/v1/plans/{v1['id']}", json={"active": False, "name": "Renamed"}
    )
    body = assert_problem(response, 422, "validation_error")
    assert body["param"] == "name"
    assert "immutable" in str(body["detail"])
    assert "/versions" in str(body["detail"])
    assert (await client.get(f"/v1/plans/{v1['id']}")).json() == v1
    assert [t for t, _ in await plan_events(sql)] == ["plan.created"]


async def test_patch_needs_active(client: httpx.AsyncClient) -> None:
    v1 = await create_plan(client)
    body = assert_problem(
        await client.patch(f"/v1/plans/{v1['id']}", json={}), 422, "validation_error"
    )
    assert body["param"] == "active"


async def test_patch_unknown_plan_is_404(client: httpx.AsyncClient) -> None:
    response = await client.patch(f"/v1/plans/{uuid.uuid4()}", json={"active": False})
    assert assert_problem(response, 404, "not_found")["param"] == "plan_id"


# --------------------------------------------------------------------------- read


async def test_get_unknown_plan_is_404(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get(f"/v1/plans/{uuid.uuid4()}"), 404, "not_found")
    body = assert_problem(await client.get("/v1/plans/nope"), 404, "not_found")
    assert body["param"] == "plan_ref"


async def test_list_filters_and_pagination(client: httpx.AsyncClient) -> None:
    basic = await create_plan(client, code="basic", name="Basic")
    pro_v1 = await create_plan(client, code="pro")
    pro_v2 = await create_version(client, "pro", trial_days=14)
    await client.patch(f"/v1/plans/{basic['id']}", json={"active": False})
    basic = (await client.get(f"/v1/plans/{basic['id']}")).json()

    everything = (await client.get("/v1/plans")).json()
    assert everything == {"object": "list", "data": [pro_v2, pro_v1, basic], "has_more": False}

    active = (await client.get("/v1/plans", params={"active": "true"})).json()["data"]
    assert active == [pro_v2, pro_v1]
    inactive = (await client.get("/v1/plans", params={"active": "false"})).json()["data"]
    assert inactive == [basic]
    by_code = (await client.get("/v1/plans", params={"code": "pro"})).json()["data"]
    assert by_code == [pro_v2, pro_v1]

    first = (await client.get("/v1/plans", params={"limit": 1})).json()
    assert first == {"object": "list", "data": [pro_v2], "has_more": True}
    second = (
        await client.get("/v1/plans", params={"limit": 1, "starting_after": pro_v2["id"]})
    ).json()
    assert second == {"object": "list", "data": [pro_v1], "has_more": True}
    third = (
        await client.get("/v1/plans", params={"limit": 1, "starting_after": pro_v1["id"]})
    ).json()
    assert third == {"object": "list", "data": [basic], "has_more": False}


# --------------------------------------------------------------------------- access


async def test_finance_viewer_reads_but_cannot_write(app: FastAPI) -> None:
    async with http_client(app, await new_api_key(app)) as admin:
        plan = await create_plan(admin)
    async with http_client(app, await new_api_key(app, Role.FINANCE_VIEWER)) as viewer:
        assert (await viewer.get("/v1/plans")).status_code == 200
        assert (await viewer.get("/v1/plans/pro")).json() == plan
        assert (await viewer.get("/v1/plans/pro/versions")).status_code == 200
        writes = [
            await viewer.post("/v1/plans", json=plan_body(code="other")),
            await viewer.post("/v1/plans/pro/versions", json={"trial_days": 1}),
            await viewer.patch(f"/v1/plans/{plan['id']}", json={"active": False}),
        ]
    for response in writes:
        body = assert_problem(response, 403, "forbidden")
        assert body["required_permission"] == "catalog:write"


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/plans"), ("GET", "/v1/plans/pro"), ("POST", "/v1/plans")],
)
async def test_anonymous_is_401(anon_client: httpx.AsyncClient, method: str, path: str) -> None:
    assert_problem(await anon_client.request(method, path), 401, "unauthenticated")


async def test_openapi_documents_plan_examples(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert {"/v1/plans", "/v1/plans/{plan_ref}", "/v1/plans/{code}/versions"} <= set(spec["paths"])
    schemas = spec["components"]["schemas"]
    [metered_example, _] = schemas["PlanCreate"]["examples"]
    assert metered_example["prices"][0]["metered"][0]["model"] == "graduated"
    assert schemas["PlanUpdate"]["additionalProperties"] is False
    assert schemas["PlanVersionCreate"]["examples"]
