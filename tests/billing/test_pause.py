"""Pause and resume over HTTP with test clocks."""

from __future__ import annotations

from typing import Any

import httpx

from tests.factories.billing import (
    account_on_clock,
    advance,
    create_test_clock,
    customer_on_clock,
    invoices_of,
    simple_plan,
    subscribe,
)
from tests.factories.usage import event, metered_plan, per_unit, send_batch


async def paused_in_april(
    client: httpx.AsyncClient, **pause: Any
) -> tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Pro at 3000 from Apr 1 2025 (period Apr 1 - May 1), paused on Apr 11."""
    clock, account = await customer_on_clock(client, "2025-04-01T08:00:00Z", amount=3000)
    sub = await subscribe(client, account["id"])
    await advance(client, clock["id"], "2025-04-11T08:00:00Z")
    response = await client.post(f"/v1/subscriptions/{sub['id']}/pause", json=pause)
    assert response.status_code == 200, response.text
    return clock["id"], account, sub, response.json()


async def balance(client: httpx.AsyncClient, account_id: str) -> dict[str, int]:
    credits: dict[str, Any] = (await client.get(f"/v1/accounts/{account_id}/credits")).json()
    balances: dict[str, int] = credits["balances"]
    return balances


async def test_pause_stops_billing(client: httpx.AsyncClient) -> None:
    clock, account, sub, paused = await paused_in_april(client)
    assert (paused["status"], paused["paused_at"]) == ("paused", "2025-04-11T08:00:00Z")
    # Apr 11 to Apr 30 is 20 of 30 days: 3000 x 20/30 = 2000 credited.
    assert await balance(client, account["id"]) == {"USD": 2000}
    await advance(client, clock, "2025-07-01T00:00:00Z")
    assert len(await invoices_of(client, sub["id"])) == 1
    current = (await client.get(f"/v1/subscriptions/{sub['id']}")).json()
    assert current["status"] == "paused"


async def test_auto_resume_on_date(client: httpx.AsyncClient) -> None:
    clock, _, sub, paused = await paused_in_april(client, resumes_at="2025-05-20T00:00:00Z")
    assert paused["resumes_at"] == "2025-05-20T00:00:00Z"
    await advance(client, clock, "2025-05-19T23:00:00Z")
    assert (await client.get(f"/v1/subscriptions/{sub['id']}")).json()["status"] == "paused"
    await advance(client, clock, "2025-05-21T00:00:00Z")
    current = (await client.get(f"/v1/subscriptions/{sub['id']}")).json()
    assert (current["status"], current["paused_at"], current["resumes_at"]) == (
        "active",
        None,
        None,
    )
    assert (current["current_period_start"], current["current_period_end"]) == (
        "2025-05-20",
        "2025-06-20",
    )
    resumed = (await invoices_of(client, sub["id"]))[-1]
    # A new month from May 20 costs 3000; the 2000 credited at the pause pays part of it.
    assert (
        resumed["billing_reason"],
        resumed["subtotal"],
        resumed["credits_applied"],
        resumed["amount_due"],
    ) == ("subscription_resume", 3000, 2000, 1000)
    await advance(client, clock, "2025-06-21T00:00:00Z")
    assert (await invoices_of(client, sub["id"]))[-1]["period_start"] == "2025-06-20"


async def test_auto_cancel_after_90_days(client: httpx.AsyncClient) -> None:
    clock, _, sub, _ = await paused_in_april(client)
    await advance(client, clock, "2025-07-10T07:59:00Z")
    assert (await client.get(f"/v1/subscriptions/{sub['id']}")).json()["status"] == "paused"
    await advance(client, clock, "2025-07-11T00:00:00Z")
    current = (await client.get(f"/v1/subscriptions/{sub['id']}")).json()
    # Apr 11 08:00 plus 90 days is Jul 10 08:00.
    assert (current["status"], current["ended_at"]) == ("canceled", "2025-07-10T08:00:00Z")
    history = (await client.get(f"/v1/subscriptions/{sub['id']}/history")).json()["data"]
    assert [h["kind"] for h in history][-2:] == ["paused", "cancel"]


async def test_resume_now_starts_a_new_period(client: httpx.AsyncClient) -> None:
    clock, _, sub, _ = await paused_in_april(client)
    await advance(client, clock, "2025-05-03T15:00:00Z")
    resumed = await client.post(f"/v1/subscriptions/{sub['id']}/resume")
    assert resumed.status_code == 200
    assert (resumed.json()["current_period_start"], resumed.json()["current_period_end"]) == (
        "2025-05-03",
        "2025-06-03",
    )
    invoice = (await invoices_of(client, sub["id"]))[-1]
    assert (invoice["subtotal"], invoice["credits_applied"], invoice["amount_due"]) == (
        3000,
        2000,
        1000,
    )


async def test_pause_at_period_end(client: httpx.AsyncClient) -> None:
    clock, account, sub, scheduled = await paused_in_april(client, at_period_end=True)
    assert (scheduled["status"], scheduled["pause_at_period_end"]) == ("active", True)
    assert await balance(client, account["id"]) == {}
    await advance(client, clock, "2025-05-02T00:00:00Z")
    current = (await client.get(f"/v1/subscriptions/{sub['id']}")).json()
    assert (current["status"], current["paused_at"]) == ("paused", "2025-05-01T00:00:00Z")
    assert len(await invoices_of(client, sub["id"])) == 1


async def test_a_scheduled_pause_can_be_called_off(client: httpx.AsyncClient) -> None:
    clock, _, sub, _ = await paused_in_april(client, at_period_end=True)
    called_off = await client.post(f"/v1/subscriptions/{sub['id']}/resume")
    assert called_off.json()["pause_at_period_end"] is False
    await advance(client, clock, "2025-05-02T00:00:00Z")
    assert (await invoices_of(client, sub["id"]))[-1]["period_start"] == "2025-05-01"


async def test_illegal_pause_and_resume_are_409(client: httpx.AsyncClient) -> None:
    clock = await create_test_clock(client, "2025-04-01T08:00:00Z")
    await simple_plan(client, code="pro", amount=3000)
    await simple_plan(client, code="trial", amount=3000, trial_days=7)
    account = await account_on_clock(client, clock["id"])
    active = await subscribe(client, account["id"])
    trialing = await subscribe(client, account["id"], plan_code="trial")
    not_paused = await client.post(f"/v1/subscriptions/{active['id']}/resume")
    assert (not_paused.status_code, not_paused.json()["current_status"]) == (409, "active")
    in_trial = await client.post(f"/v1/subscriptions/{trialing['id']}/pause")
    assert (in_trial.status_code, in_trial.json()["current_status"]) == (409, "trialing")
    await client.delete(f"/v1/subscriptions/{active['id']}?immediately=true")
    canceled = await client.post(f"/v1/subscriptions/{active['id']}/pause")
    assert (canceled.status_code, canceled.json()["current_status"]) == (409, "canceled")


async def test_resume_date_must_be_within_the_pause_limit(client: httpx.AsyncClient) -> None:
    _, account = await customer_on_clock(client, "2025-04-01T08:00:00Z", amount=3000)
    sub = await subscribe(client, account["id"])
    url = f"/v1/subscriptions/{sub['id']}/pause"
    for resumes_at in ("2025-07-01T08:00:01Z", "2025-03-01T00:00:00Z", "2025-04-01T08:00:00Z"):
        response = await client.post(url, json={"resumes_at": resumes_at})
        assert response.status_code == 422, resumes_at
        assert response.json()["param"] == "resumes_at"
    # Exactly 90 days is allowed.
    ok = await client.post(url, json={"resumes_at": "2025-06-30T08:00:00Z"})
    assert ok.status_code == 200


async def test_usage_tracking_stops_during_pause(client: httpx.AsyncClient) -> None:
    clock = await create_test_clock(client, "2026-03-10T12:00:00Z")
    await metered_plan(client, [per_unit("api_calls")], amount=3000)
    account = await account_on_clock(client, clock["id"])
    sub = await subscribe(client, account["id"], trial_days=0)
    url = "/v1/usage"
    before = await client.post(url, json=event(sub["id"], idempotency_key="before"))
    assert before.status_code == 201
    await client.post(f"/v1/subscriptions/{sub['id']}/pause")
    during = await client.post(url, json=event(sub["id"], idempotency_key="during"))
    assert (during.status_code, during.json()["reason"]) == (409, "subscription_paused")
    batch = await send_batch(client, [event(sub["id"], idempotency_key="during-batch")])
    assert [r["reason"] for r in batch["results"]] == ["subscription_paused"]
    await client.post(f"/v1/subscriptions/{sub['id']}/resume")
    after = await client.post(url, json=event(sub["id"], idempotency_key="after"))
    assert after.status_code == 201


async def test_pausing_or_canceling_now_invoices_the_usage_so_far(
    client: httpx.AsyncClient,
) -> None:
    clock = await create_test_clock(client, "2026-03-01T08:00:00Z")
    await metered_plan(client, [per_unit("api_calls")], amount=3100)
    account = await account_on_clock(client, clock["id"])
    paused = await subscribe(client, account["id"], trial_days=0)
    ended = await subscribe(client, account["id"], trial_days=0)
    await advance(client, clock["id"], "2026-03-05T12:00:00Z")
    for sub, quantity in ((paused, 70), (ended, 40)):
        usage = event(sub["id"], quantity=quantity, timestamp="2026-03-05T11:00:00Z")
        assert (await client.post("/v1/usage", json=usage)).status_code == 201
    await client.post(f"/v1/subscriptions/{paused['id']}/pause")
    await client.delete(f"/v1/subscriptions/{ended['id']}?immediately=true")
    for sub, amount in ((paused, 70), (ended, 40)):
        last = (await invoices_of(client, sub["id"]))[-1]
        # One cent a call, on an invoice of its own.
        assert (last["billing_reason"], last["subtotal"]) == ("subscription_usage", amount)
        assert [(line["kind"], line["quantity"]) for line in last["lines"]] == [
            ("usage", str(amount))
        ]
