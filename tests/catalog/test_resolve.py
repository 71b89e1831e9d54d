"""Which plan version a new subscription gets (the service the billing engine calls)."""

from __future__ import annotations

import uuid

import httpx
import pytest

from billing.catalog.models import Plan
from billing.catalog.service import resolve_plan_for_subscription
from billing.http.errors import InvalidState, NotFound, ValidationFailed
from billing.runtime import Runtime
from tests.factories.catalog import create_plan, create_version, price


async def resolve(
    runtime: Runtime, *, plan_id: str | None = None, plan_code: str | None = None
) -> Plan:
    async with runtime.sessions() as session:
        return await resolve_plan_for_subscription(
            session,
            plan_id=uuid.UUID(plan_id) if plan_id is not None else None,
            plan_code=plan_code,
        )


async def deactivate(client: httpx.AsyncClient, plan_id: str) -> None:
    response = await client.patch(f"/v1/plans/{plan_id}", json={"active": False})
    assert response.status_code == 200, response.text


async def test_by_code_gets_the_latest_active_version(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    v1 = await create_plan(client)
    v2 = await create_version(client, "pro", prices=[price(unit_amount=3900)])
    assert (await resolve(runtime, plan_code="pro")).id == uuid.UUID(v2["id"])

    await deactivate(client, v2["id"])
    fallback = await resolve(runtime, plan_code="pro")
    assert (fallback.id, fallback.version) == (uuid.UUID(v1["id"]), 1)
    usd = fallback.price_for("USD")
    assert usd is not None
    assert usd.unit_amount == 2900

    await deactivate(client, v1["id"])
    with pytest.raises(NotFound) as no_active:
        await resolve(runtime, plan_code="pro")
    assert no_active.value.param == "plan_code"


async def test_by_id_needs_an_active_version(client: httpx.AsyncClient, runtime: Runtime) -> None:
    v1 = await create_plan(client)
    assert (await resolve(runtime, plan_id=v1["id"])).version == 1

    await deactivate(client, v1["id"])
    with pytest.raises(InvalidState, match="inactive") as inactive:
        await resolve(runtime, plan_id=v1["id"])
    assert inactive.value.code == "invalid_state"
    assert inactive.value.param == "plan_id"


async def test_unknown_plan_is_not_found(runtime: Runtime) -> None:
    with pytest.raises(NotFound):
        await resolve(runtime, plan_id=str(uuid.uuid4()))
    with pytest.raises(NotFound):
        await resolve(runtime, plan_code="nope")


@pytest.mark.parametrize(
    ("plan_id", "plan_code"), [(None, None), ("00000000-0000-0000-0000-000000000001", "pro")]
)
async def test_exactly_one_reference(
    runtime: Runtime, plan_id: str | None, plan_code: str | None
) -> None:
    with pytest.raises(ValidationFailed):
        await resolve(runtime, plan_id=plan_id, plan_code=plan_code)
