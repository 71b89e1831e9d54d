"""Webhooks delivered to a real HTTP receiver, verified with the `standardwebhooks` package."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from standardwebhooks import WebhookVerificationError

from billing.worker.runner import Worker
from tests.conftest import Sql
from tests.events.conftest import create_endpoint, deliveries, until
from tests.events.receiver import Receiver, Reply
from tests.factories.accounts import create_account
from tests.factories.billing import simple_plan, subscribe


async def new_account(client: httpx.AsyncClient, email: str = "a@example.com") -> str:
    response = await client.post("/v1/accounts", json={"email": email})
    assert response.status_code == 201, response.text
    account_id: str = response.json()["id"]
    return account_id


async def test_invoice_created_event_sent(
    hooks: httpx.AsyncClient, hooks_worker: Worker, receiver: Receiver
) -> None:
    endpoint = await create_endpoint(hooks, receiver.url, ["invoice.*"])
    await simple_plan(hooks, amount=2900)
    sub = await subscribe(hooks, await new_account(hooks), trial_days=0)
    await hooks_worker.run_due()

    payloads = receiver.verified(endpoint["secret"])
    assert [p["type"] for p in payloads] == ["invoice.created", "invoice.finalized"]
    created = payloads[0]
    assert created["object"] == "event"
    assert created["data"]["subscription_id"] == sub["id"]
    assert (created["data"]["subtotal"], created["data"]["currency"]) == (2900, "USD")
    # The body is the event exactly as the API shows it, and webhook-id is its id.
    event = (await hooks.get(f"/v1/events/{created['id']}")).json()
    assert created == event
    assert receiver.requests[0].webhook_id == event["id"]
    assert receiver.requests[0].headers["content-type"] == "application/json"
    by_event = {d["event_id"]: d for d in await deliveries(hooks, endpoint["id"])}
    delivery = by_event[event["id"]]
    assert (delivery["status"], delivery["attempts"], delivery["last_response_status"]) == (
        "succeeded",
        1,
        200,
    )
    assert delivery["last_latency_ms"] is not None


async def test_payment_succeeded_event_sent(
    hooks: httpx.AsyncClient, hooks_worker: Worker, receiver: Receiver
) -> None:
    endpoint = await create_endpoint(hooks, receiver.url, ["payment.succeeded"])
    await simple_plan(hooks, amount=2900)
    account = await create_account(hooks, email="payer@example.com", payment_method="pm_card_visa")
    sub = await subscribe(hooks, account["id"], trial_days=0)
    await hooks_worker.run_due()  # charges the first invoice, then delivers the event
    [payload] = receiver.verified(endpoint["secret"])  # nothing else is subscribed
    assert (payload["type"], payload["account_id"]) == ("payment.succeeded", account["id"])
    payment = payload["data"]
    assert (payment["object"], payment["status"], payment["amount"], payment["currency"]) == (
        "payment",
        "succeeded",
        2900,
        "USD",
    )
    [invoice] = (await hooks.get("/v1/invoices", params={"subscription_id": sub["id"]})).json()[
        "data"
    ]
    assert (payment["invoice_id"], invoice["status"]) == (invoice["id"], "paid")


async def test_webhook_retry_on_failure(
    hooks: httpx.AsyncClient, hooks_worker: Worker, receiver: Receiver
) -> None:
    receiver.script(500, 502)
    endpoint = await create_endpoint(hooks, receiver.url, ["account.created"])
    await new_account(hooks)

    async def delivered() -> bool:
        return len(receiver.requests) == 3

    await until(hooks_worker, delivered)
    first, second, third = receiver.requests
    # The same message every time: receivers deduplicate on webhook-id.
    assert first.webhook_id == second.webhook_id == third.webhook_id
    assert first.json == second.json == third.json
    for request in receiver.requests:
        request.verify(endpoint["secret"])  # each attempt is signed with a fresh timestamp
    # Retries wait for the schedule (0.2 s, with jitter of ±10 %).
    assert second.at - first.at >= 0.17
    [delivery] = await deliveries(hooks, endpoint["id"])
    assert (delivery["status"], delivery["attempts"], delivery["last_response_status"]) == (
        "succeeded",
        3,
        200,
    )


async def test_a_tampered_body_or_wrong_secret_fails_verification(
    hooks: httpx.AsyncClient, hooks_worker: Worker, receiver: Receiver
) -> None:
    endpoint = await create_endpoint(hooks, receiver.url)
    await new_account(hooks)
    await hooks_worker.run_due()
    [request] = receiver.requests
    request.verify(endpoint["secret"])
    other = await create_endpoint(hooks, receiver.url)
    with pytest.raises(WebhookVerificationError):
        request.verify(other["secret"])
    tampered = type(request)(request.headers, request.body.replace(b"a@", b"b@"), request.at)
    with pytest.raises(WebhookVerificationError):
        tampered.verify(endpoint["secret"])


async def test_failed_after_the_last_retry_and_replayed_with_the_same_id(
    hooks: httpx.AsyncClient, hooks_worker: Worker, receiver: Receiver
) -> None:
    receiver.default = Reply(500)
    endpoint = await create_endpoint(hooks, receiver.url)
    await new_account(hooks)

    async def failed() -> bool:
        [delivery] = await deliveries(hooks, endpoint["id"])
        return bool(delivery["status"] == "failed")

    await until(hooks_worker, failed)
    # The original attempt and the schedule's three retries, then no more.
    assert len(receiver.requests) == 4
    [delivery] = await deliveries(hooks, endpoint["id"])
    assert (delivery["attempts"], delivery["next_attempt_at"]) == (4, None)
    assert delivery["last_error"] == "HTTP 500"
    await hooks_worker.run_due()
    assert len(receiver.requests) == 4

    receiver.default = Reply(204)
    event_id = delivery["event_id"]
    replay = await hooks.post(f"/v1/events/{event_id}/redeliver", json={})
    assert replay.status_code == 202, replay.text
    [queued] = replay.json()["data"]
    assert (queued["id"], queued["status"], queued["attempts"]) == (delivery["id"], "pending", 0)
    await hooks_worker.run_due()
    assert len(receiver.requests) == 5
    assert receiver.requests[-1].webhook_id == event_id
    [done] = await deliveries(hooks, endpoint["id"])
    assert (done["status"], done["attempts"], done["last_response_status"]) == (
        "succeeded",
        1,
        204,
    )


async def test_receiver_down_for_a_while_then_up_gets_every_event(
    hooks: httpx.AsyncClient, hooks_worker: Worker, receiver: Receiver, sql: Sql
) -> None:
    endpoint = await create_endpoint(hooks, receiver.url)
    await receiver.stop()  # connections refused from now on
    accounts = [await new_account(hooks, f"down{i}@example.com") for i in range(5)]
    await hooks_worker.run_due()
    pending = await deliveries(hooks, endpoint["id"])
    assert {(d["status"], d["attempts"], d["last_response_status"]) for d in pending} == {
        ("pending", 1, None)
    }
    assert all("ConnectError" in d["last_error"] or "not sent" in d["last_error"] for d in pending)

    await receiver.start()  # back on the same port

    async def all_delivered() -> bool:
        rows = await sql("SELECT count(*) AS n FROM webhook_deliveries WHERE status = 'succeeded'")
        return bool(rows[0].n == 5)

    await until(hooks_worker, all_delivered)
    payloads = receiver.verified(endpoint["secret"])
    assert sorted(p["data"]["id"] for p in payloads) == sorted(accounts)
    assert len({r.webhook_id for r in receiver.requests}) == 5


async def test_events_reach_an_endpoint_in_order(
    hooks: httpx.AsyncClient, hooks_worker: Worker, receiver: Receiver
) -> None:
    await create_endpoint(hooks, receiver.url)
    account_id = await new_account(hooks)
    for name in ("one", "two", "three"):
        response = await hooks.patch(f"/v1/accounts/{account_id}", json={"name": name})
        assert response.status_code == 200
    await hooks_worker.run_due()
    got = [(r.json["type"], r.json["data"]["name"]) for r in receiver.requests]
    assert got == [
        ("account.created", None),
        ("account.updated", "one"),
        ("account.updated", "two"),
        ("account.updated", "three"),
    ]


async def test_a_410_disables_the_endpoint(
    hooks: httpx.AsyncClient, hooks_worker: Worker, receiver: Receiver
) -> None:
    receiver.script(410)
    endpoint = await create_endpoint(hooks, receiver.url, ["account.*"])
    await new_account(hooks)
    await hooks_worker.run_due()
    assert len(receiver.requests) == 1
    current = (await hooks.get(f"/v1/webhook-endpoints/{endpoint['id']}")).json()
    assert (current["disabled"], current["disabled_reason"]) == (True, "gone")
    [delivery] = await deliveries(hooks, endpoint["id"])
    assert delivery["status"] == "failed"
    assert delivery["last_response_status"] == 410
    # Nothing more is sent to it; the fact is an event (the owner's email is pending).
    await new_account(hooks, "later@example.com")
    await hooks_worker.run_due()
    assert len(receiver.requests) == 1
    events = (await hooks.get("/v1/events?type=webhook_endpoint.disabled")).json()["data"]
    assert [e["data"]["id"] for e in events] == [endpoint["id"]]
    assert events[0]["data"]["disabled_reason"] == "gone"


async def test_retry_after_is_honoured(
    hooks: httpx.AsyncClient, hooks_worker: Worker, receiver: Receiver
) -> None:
    receiver.script(Reply(429, headers={"Retry-After": "2"}), Reply(503, {"Retry-After": "1"}))
    endpoint = await create_endpoint(hooks, receiver.url)
    await new_account(hooks)

    async def delivered() -> bool:
        return len(receiver.requests) == 3

    await until(hooks_worker, delivered)
    first, second, third = receiver.requests
    # The schedule says 0.2 s; the receiver asked for 2 s, then 1 s.
    assert second.at - first.at >= 2.0
    assert third.at - second.at >= 1.0
    [delivery] = await deliveries(hooks, endpoint["id"])
    assert (delivery["status"], delivery["attempts"]) == ("succeeded", 3)


async def test_redirects_are_failures_and_not_followed(
    hooks: httpx.AsyncClient, hooks_worker: Worker, receiver: Receiver
) -> None:
    # Every attempt is redirected: on a loaded machine a retry may fall due within the run.
    receiver.default = Reply(301, headers={"Location": receiver.url + "/elsewhere"})
    endpoint = await create_endpoint(hooks, receiver.url)
    await new_account(hooks)
    await hooks_worker.run_due()
    [delivery] = await deliveries(hooks, endpoint["id"])
    # One request per attempt: a followed redirect would add a request the attempts do not
    # count (the redirect's target answers 301 too).
    assert len(receiver.requests) == delivery["attempts"] >= 1
    assert (delivery["status"], delivery["last_response_status"]) == ("pending", 301)
    assert "redirects are not followed" in delivery["last_error"]


async def test_an_endpoint_failing_for_days_is_disabled(
    hooks: httpx.AsyncClient, hooks_worker: Worker, receiver: Receiver, sql: Sql
) -> None:
    receiver.default = Reply(500)
    endpoint = await create_endpoint(hooks, receiver.url)
    await new_account(hooks)
    await hooks_worker.run_due()
    current = (await hooks.get(f"/v1/webhook-endpoints/{endpoint['id']}")).json()
    assert current["failing_since"] is not None
    assert current["disabled"] is False
    # Three days of failures later (WEBHOOK_DISABLE_AFTER_DAYS), the next failure disables it.
    await sql(
        "UPDATE webhook_endpoints SET failing_since = failing_since - interval '3 days 1 minute'"
    )
    await asyncio.sleep(0.25)  # the first retry falls due
    await hooks_worker.run_due()
    current = (await hooks.get(f"/v1/webhook-endpoints/{endpoint['id']}")).json()
    assert (current["disabled"], current["disabled_reason"]) == (True, "failing")
    events = (await hooks.get("/v1/events?type=webhook_endpoint.*")).json()["data"]
    assert [e["type"] for e in events] == ["webhook_endpoint.disabled"]


async def test_a_success_clears_the_failing_streak(
    hooks: httpx.AsyncClient, hooks_worker: Worker, receiver: Receiver
) -> None:
    receiver.script(500)
    endpoint = await create_endpoint(hooks, receiver.url)
    await new_account(hooks)
    await hooks_worker.run_due()
    assert (await hooks.get(f"/v1/webhook-endpoints/{endpoint['id']}")).json()["failing_since"]

    async def delivered() -> bool:
        return len(receiver.requests) >= 2

    # Generous: under a loaded machine (parallel tests) the retry may take a while to fall due.
    await until(hooks_worker, delivered, within=30)
    current = (await hooks.get(f"/v1/webhook-endpoints/{endpoint['id']}")).json()
    assert current["failing_since"] is None
