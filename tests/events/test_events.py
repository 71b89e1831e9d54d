"""Events: every state change records one, listed with filters; trial notices; retention."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from billing.events.catalog import EVENT_TYPES
from billing.worker.runner import Worker
from tests.conftest import Sql, runtime_of
from tests.events.conftest import create_endpoint
from tests.events.receiver import Receiver, Reply
from tests.factories.accounts import attach_card
from tests.factories.billing import (
    account_on_clock,
    advance,
    create_test_clock,
    customer_on_clock,
    invoices_of,
    simple_plan,
    subscribe,
)
from tests.factories.usage import event, metered_plan, per_unit

# Types whose features are not on this branch yet. Keep this list short and explicit: the
# test below fails as soon as a feature emits one of them (remove it here), and it fails if
# a type of an existing feature stops being emitted.
NOT_YET_EMITTED: set[str] = set()


async def ok(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_every_event_type_is_emitted_by_some_flow(
    hooks: httpx.AsyncClient, hooks_worker: Worker, receiver: Receiver, sql: Sql
) -> None:
    endpoint = await create_endpoint(hooks, receiver.url)
    gone = Receiver()
    gone.default = Reply(410)
    await gone.start()
    try:
        await create_endpoint(hooks, gone.url, ["account.deleted"])
        clock = await create_test_clock(hooks, "2025-06-01T10:00:00Z")
        plan = await simple_plan(hooks, amount=3000, trial_days=14)
        # A: pays by card; a trial, then a renewal paid by card and partly refunded.
        account = await account_on_clock(hooks, clock["id"])
        accounts = f"/v1/accounts/{account['id']}"
        await ok(await hooks.patch(accounts, json={"name": "Ada"}))
        first = await attach_card(hooks, account["id"])
        second = await attach_card(hooks, account["id"], "pm_card_mastercard")
        await ok(await hooks.post(f"{accounts}/payment-methods/{second['id']}/default"))
        await ok(await hooks.delete(f"{accounts}/payment-methods/{first['id']}"))
        trialing = await subscribe(hooks, account["id"])  # a 0 invoice, paid at once
        grant = {"account_id": account["id"], "amount": 500}
        await ok(await hooks.post("/v1/credits", json=grant), 201)
        # A second subscription of A, paid now, then paused and resumed.
        active = await subscribe(hooks, account["id"], trial_days=0)
        # B: no payment method: invoices stay open (voided, marked uncollectible).
        b = await account_on_clock(hooks, clock["id"], email="b@example.com")
        b_grant = {"account_id": b["id"], "amount": 500}
        await ok(await hooks.post("/v1/credits", json=b_grant), 201)
        voided = await subscribe(hooks, b["id"], trial_days=0)
        [to_void] = await invoices_of(hooks, voided["id"])
        assert to_void["credits_applied"] == 500
        await ok(await hooks.post(f"/v1/invoices/{to_void['id']}/void"))  # credit returned
        unpaid = await subscribe(hooks, b["id"], trial_days=0)
        [open_invoice] = await invoices_of(hooks, unpaid["id"])
        await ok(await hooks.post(f"/v1/invoices/{open_invoice['id']}/mark-uncollectible"))
        expiring = b_grant | {"amount": 100, "expires_at": "2025-06-20T00:00:00Z"}
        await ok(await hooks.post("/v1/credits", json=expiring), 201)
        # C: a card that is declined: retries, then dunning until it pays with another card.
        c = await account_on_clock(hooks, clock["id"], email="c@example.com")
        await attach_card(hooks, c["id"], "pm_card_chargeDeclined")
        declined = await subscribe(hooks, c["id"], trial_days=0)

        # D: weekly metered usage, and an event arriving after its week was invoiced.
        d = await account_on_clock(hooks, clock["id"], email="d@example.com")
        await metered_plan(hooks, [per_unit("api_calls")], code="weekly", interval="week")
        weekly = await subscribe(hooks, d["id"], plan_code="weekly", trial_days=0)

        await advance(hooks, clock["id"], "2025-06-02T00:00:00Z")  # first charges
        await ok(await hooks.post(f"/v1/subscriptions/{active['id']}/pause"))
        await ok(await hooks.post(f"/v1/subscriptions/{active['id']}/resume"))
        await advance(hooks, clock["id"], "2025-06-10T00:00:00Z")  # D's first week invoiced
        late = event(weekly["id"], quantity=5, timestamp="2025-06-05T12:00:00Z")
        assert (await hooks.post("/v1/usage", json=late)).status_code == 201
        # Notice, trial end, renewals, C's retries and dunning steps, the credit's expiry,
        # D's late usage on a supplemental invoice.
        await advance(hooks, clock["id"], "2025-06-21T00:00:00Z")
        renewal = (await invoices_of(hooks, trialing["id"]))[-1]
        assert renewal["status"] == "paid"
        [payment] = (await hooks.get("/v1/payments", params={"invoice_id": renewal["id"]})).json()[
            "data"
        ]
        await ok(
            await hooks.post(f"/v1/payments/{payment['id']}/refund", json={"amount": 100}), 201
        )
        await attach_card(hooks, c["id"], "pm_card_visa", set_default=True)
        [overdue] = await invoices_of(hooks, declined["id"])
        await ok(await hooks.post(f"/v1/invoices/{overdue['id']}/pay"), 201)  # unblocks C
        await ok(await hooks.delete(f"/v1/subscriptions/{active['id']}?immediately=true"))
        await ok(await hooks.patch(f"/v1/plans/{plan['id']}", json={"active": False}))
        other = await ok(await hooks.post("/v1/accounts", json={"email": "x@example.com"}), 201)
        await ok(await hooks.delete(f"/v1/accounts/{other['id']}"))
        await hooks_worker.run_due()
    finally:
        await gone.stop()

    emitted = {row.type for row in await sql("SELECT DISTINCT type FROM events")}
    assert emitted - set(EVENT_TYPES) == set(), "add new types to events.catalog.EVENT_TYPES"
    assert set(EVENT_TYPES) - NOT_YET_EMITTED - emitted == set()
    assert emitted & NOT_YET_EMITTED == set(), "emitted now: remove from NOT_YET_EMITTED"
    # And every one of them reached the `*` endpoint, signed.
    delivered = {p["type"] for p in receiver.verified(endpoint["secret"])}
    assert delivered == emitted


async def test_events_are_listed_with_filters_and_pages(client: httpx.AsyncClient) -> None:
    clock, account = await customer_on_clock(client, "2025-03-01T12:00:00Z", amount=1000)
    other = await ok(await client.post("/v1/accounts", json={"email": "o@example.com"}), 201)
    await subscribe(client, account["id"], trial_days=0)
    await advance(client, clock["id"], "2025-04-02T00:00:00Z")

    everything = (await client.get("/v1/events?limit=100")).json()["data"]
    assert len(everything) > 6
    mine = (await client.get(f"/v1/events?account_id={account['id']}&limit=100")).json()
    assert {e["account_id"] for e in mine["data"]} == {account["id"]}
    theirs = (await client.get(f"/v1/events?account_id={other['id']}")).json()["data"]
    assert [e["type"] for e in theirs] == ["account.created"]

    invoices = (await client.get("/v1/events?type=invoice.*&limit=100")).json()["data"]
    assert {e["type"] for e in invoices} == {"invoice.created", "invoice.finalized"}
    assert len(invoices) == 4  # the first invoice and the April renewal
    created = (await client.get("/v1/events?type=invoice.created")).json()["data"]
    assert [e["data"]["period_start"] for e in created] == ["2025-04-01", "2025-03-01"]
    april = (
        await client.get(
            "/v1/events",
            params={
                "type": "invoice.created",
                "created_gte": "2025-04-01T00:00:00Z",
                "created_lt": "2025-05-01T00:00:00Z",
            },
        )
    ).json()["data"]
    assert [e["created_at"] for e in april] == ["2025-04-01T00:00:00Z"]

    pages: list[str] = []
    after = None
    while True:
        params: dict[str, Any] = {"limit": 3} | ({"starting_after": after} if after else {})
        page = (await client.get("/v1/events", params=params)).json()
        pages += [e["id"] for e in page["data"]]
        if not page["has_more"]:
            break
        after = page["data"][-1]["id"]
    assert pages == [e["id"] for e in everything]

    one = await ok(await client.get(f"/v1/events/{everything[0]['id']}"))
    assert one == everything[0]
    missing = await client.get("/v1/events/00000000-0000-0000-0000-000000000000")
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")


async def test_trial_will_end_three_days_before_the_trial_ends_once(
    client: httpx.AsyncClient,
) -> None:
    clock, account = await customer_on_clock(
        client,
        "2025-06-01T10:00:00Z",
        amount=3000,
        plan={"trial_days": 14},
        timezone="America/New_York",
    )
    sub = await subscribe(client, account["id"])
    assert sub["trial_end"] == "2025-06-15"
    notices = "/v1/events?type=subscription.trial_will_end"
    await advance(client, clock["id"], "2025-06-12T03:59:00Z")  # 23:59 on Jun 11 in New York
    assert (await client.get(notices)).json()["data"] == []
    await advance(client, clock["id"], "2025-06-30T00:00:00Z")  # through the trial's end
    [notice] = (await client.get(notices)).json()["data"]
    # Midnight of Jun 12 in New York: three days before the trial ends (Jun 15, local).
    assert notice["created_at"] == "2025-06-12T04:00:00Z"
    assert (notice["data"]["id"], notice["data"]["status"]) == (sub["id"], "trialing")
    await advance(client, clock["id"], "2025-07-30T00:00:00Z")
    assert len((await client.get(notices)).json()["data"]) == 1


async def test_a_trial_shorter_than_three_days_gets_its_notice_at_once(
    client: httpx.AsyncClient,
) -> None:
    clock, account = await customer_on_clock(client, "2025-06-01T10:00:00Z", amount=3000)
    await subscribe(client, account["id"], trial_days=2)
    await advance(client, clock["id"], "2025-06-01T10:00:01Z")
    [notice] = (await client.get("/v1/events?type=subscription.trial_will_end")).json()["data"]
    assert notice["created_at"] == "2025-06-01T10:00:00Z"


async def test_events_are_purged_after_the_retention(
    hooks_app: FastAPI,
    hooks: httpx.AsyncClient,
    hooks_worker: Worker,
    receiver: Receiver,
    sql: Sql,
) -> None:
    receiver.default = Reply(500)
    await create_endpoint(hooks, receiver.url)
    old = await ok(await hooks.post("/v1/accounts", json={"email": "old@example.com"}), 201)
    new = await ok(await hooks.post("/v1/accounts", json={"email": "new@example.com"}), 201)
    retention = runtime_of(hooks_app).settings.event_retention_days
    assert retention == 30
    await sql(
        "UPDATE events SET recorded_at = now() - make_interval(days => 30, secs => 1) "
        "WHERE account_id = :a",
        a=old["id"],
    )
    await hooks_worker.run_due()
    left = await sql("SELECT account_id FROM events")
    assert [str(r.account_id) for r in left] == [new["id"]]
    # Its delivery went with it; the other one is still retried.
    assert [r.n for r in await sql("SELECT count(*) AS n FROM webhook_deliveries")] == [1]


async def test_delivery_metrics(
    hooks: httpx.AsyncClient, hooks_worker: Worker, receiver: Receiver
) -> None:
    receiver.script(500)
    await create_endpoint(hooks, receiver.url)
    await ok(await hooks.post("/v1/accounts", json={"email": "m@example.com"}), 201)
    await hooks_worker.run_due()
    text = (await hooks.get("/metrics")).text
    assert 'webhook_deliveries_total{status="retrying"}' in text
    assert "webhook_delivery_duration_seconds_bucket" in text
    assert "outbox_backlog 1.0" in text
