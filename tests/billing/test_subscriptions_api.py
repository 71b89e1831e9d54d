"""The subscriptions API: validation, 404s and 409s, list filters, history, cancel, roles.

Lifecycle behaviour (trials, renewals, anchors) is in test_lifecycle.py; this file is about the
HTTP contract. Accounts live on test clocks; amounts are computed by hand.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from billing.auth.permissions import Role
from tests.conftest import assert_problem, http_client, new_api_key
from tests.factories.billing import (
    account_on_clock,
    advance,
    api_key_with_id,
    create_test_clock,
    credits_of,
    customer_on_clock,
    invoice_action,
    invoices_of,
    only_invoice,
    simple_plan,
    subscribe,
)


async def setup(
    client: httpx.AsyncClient, at: str = "2025-03-10T15:30:00Z", **account_fields: Any
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A test clock at `at`, the $30.00 monthly plan "pro", and an account on the clock."""
    clock = await create_test_clock(client, at)
    plan = await simple_plan(client, amount=3000)
    account = await account_on_clock(client, clock["id"], **account_fields)
    return clock, plan, account


async def subscription_count(client: httpx.AsyncClient) -> int:
    return len((await client.get("/v1/subscriptions", params={"limit": 100})).json()["data"])


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        pytest.param({"quantity": 0}, "quantity", id="quantity-0"),
        pytest.param({"quantity": -1}, "quantity", id="quantity-negative"),
        pytest.param({"quantity": "2"}, "quantity", id="quantity-string"),
        pytest.param({"quantity": 1.5}, "quantity", id="quantity-fraction"),
        pytest.param({"trial_days": -1}, "trial_days", id="trial-days-negative"),
        pytest.param({"start_date": "next monday"}, "start_date", id="start-date-text"),
        pytest.param({"billing_anchor": 0}, "billing_anchor", id="anchor-0"),
        pytest.param({"billing_anchor": 32}, "billing_anchor", id="anchor-32"),
        pytest.param({"billing_anchor": "end"}, "billing_anchor", id="anchor-end"),
        pytest.param({"billing_anchor": "1"}, "billing_anchor", id="anchor-string-day"),
        pytest.param({"colour": "red"}, "colour", id="unknown-field"),
    ],
)
async def test_invalid_fields_are_422_naming_the_field(
    client: httpx.AsyncClient, fields: dict[str, Any], param: str
) -> None:
    _, _, account = await setup(client)
    body = {"account_id": account["id"], "plan_code": "pro"} | fields
    problem = assert_problem(
        await client.post("/v1/subscriptions", json=body), 422, "validation_error"
    )
    assert problem["param"] == param
    assert param in {e["field"] for e in problem["errors"]}
    assert await subscription_count(client) == 0


@pytest.mark.parametrize("which", ["both", "neither"])
async def test_exactly_one_of_plan_id_and_plan_code(client: httpx.AsyncClient, which: str) -> None:
    _, plan, account = await setup(client)
    body: dict[str, Any] = {"account_id": account["id"]}
    if which == "both":
        body |= {"plan_id": plan["id"], "plan_code": "pro"}
    problem = assert_problem(
        await client.post("/v1/subscriptions", json=body), 422, "validation_error"
    )
    # The rule is about the plan reference as a whole; the catalog names it `plan` too.
    assert problem["param"] == "plan"
    assert "plan_id" in problem["detail"]
    assert "plan_code" in problem["detail"]


@pytest.mark.parametrize("by", ["plan_code", "plan_id"])
async def test_plan_without_a_price_in_the_account_currency(
    client: httpx.AsyncClient, by: str
) -> None:
    _, plan, account = await setup(client, currency="EUR")
    ref = {"plan_code": "pro"} if by == "plan_code" else {"plan_id": plan["id"]}
    problem = assert_problem(
        await client.post("/v1/subscriptions", json={"account_id": account["id"]} | ref),
        422,
        "validation_error",
    )
    assert problem["param"] == by
    assert "EUR" in problem["detail"]
    assert await subscription_count(client) == 0


async def test_subscription_takes_the_account_currency(client: httpx.AsyncClient) -> None:
    clock = await create_test_clock(client, "2025-03-10T15:30:00Z")
    response = await client.post(
        "/v1/plans",
        json={
            "code": "pro",
            "name": "Pro",
            "interval": "month",
            "prices": [
                {"currency": "USD", "unit_amount": 3000},
                {"currency": "EUR", "unit_amount": 2700},
            ],
        },
    )
    assert response.status_code == 201, response.text
    account = await account_on_clock(client, clock["id"], currency="EUR")
    sub = await subscribe(client, account["id"])
    assert sub["currency"] == "EUR"
    invoice = await only_invoice(client, sub["id"])
    assert (invoice["currency"], invoice["total"]) == ("EUR", 2700)


@pytest.mark.parametrize("interval", ["week", "day"])
async def test_day_of_month_anchor_needs_a_monthly_or_yearly_plan(
    client: httpx.AsyncClient, interval: str
) -> None:
    _, account = await customer_on_clock(
        client, "2025-03-10T15:30:00Z", amount=700, plan={"code": "short", "interval": interval}
    )
    problem = assert_problem(
        await client.post(
            "/v1/subscriptions",
            json={"account_id": account["id"], "plan_code": "short", "billing_anchor": 1},
        ),
        422,
        "validation_error",
    )
    assert problem["param"] == "billing_anchor"
    # "start" is fine on any plan.
    await subscribe(client, account["id"], plan_code="short", billing_anchor="start")


async def test_start_date_in_the_past_is_judged_in_the_account_time_zone(
    client: httpx.AsyncClient,
) -> None:
    # 05:00 UTC on Mar 10 is still Mar 9, 22:00 in Los Angeles (PDT, UTC-7).
    _, _, account = await setup(client, at="2025-03-10T05:00:00Z", timezone="America/Los_Angeles")
    today = await subscribe(client, account["id"], start_date="2025-03-09")
    assert (today["status"], today["current_period_start"]) == ("active", "2025-03-09")
    problem = assert_problem(
        await client.post(
            "/v1/subscriptions",
            json={"account_id": account["id"], "plan_code": "pro", "start_date": "2025-03-08"},
        ),
        422,
        "validation_error",
    )
    assert problem["param"] == "start_date"
    assert "America/Los_Angeles" in problem["detail"]


async def test_unknown_or_deleted_account_is_404(client: httpx.AsyncClient) -> None:
    _, _, account = await setup(client)
    missing = assert_problem(
        await client.post(
            "/v1/subscriptions", json={"account_id": str(uuid.uuid4()), "plan_code": "pro"}
        ),
        404,
        "not_found",
    )
    assert missing["param"] == "account_id"
    assert (await client.delete(f"/v1/accounts/{account['id']}")).status_code == 200
    deleted = assert_problem(
        await client.post(
            "/v1/subscriptions", json={"account_id": account["id"], "plan_code": "pro"}
        ),
        404,
        "not_found",
    )
    assert deleted["param"] == "account_id"
    assert await subscription_count(client) == 0


async def test_unknown_plan_is_404(client: httpx.AsyncClient) -> None:
    _, _, account = await setup(client)
    by_code = assert_problem(
        await client.post(
            "/v1/subscriptions", json={"account_id": account["id"], "plan_code": "nope"}
        ),
        404,
        "not_found",
    )
    assert by_code["param"] == "plan_code"
    by_id = assert_problem(
        await client.post(
            "/v1/subscriptions", json={"account_id": account["id"], "plan_id": str(uuid.uuid4())}
        ),
        404,
        "not_found",
    )
    assert by_id["param"] == "plan_id"


async def test_inactive_plan_version_by_id_is_409(client: httpx.AsyncClient) -> None:
    _, plan, account = await setup(client)
    deactivated = await client.patch(f"/v1/plans/{plan['id']}", json={"active": False})
    assert deactivated.status_code == 200, deactivated.text
    problem = assert_problem(
        await client.post(
            "/v1/subscriptions", json={"account_id": account["id"], "plan_id": plan["id"]}
        ),
        409,
        "invalid_state",
    )
    assert problem["param"] == "plan_id"
    assert await subscription_count(client) == 0


async def test_quantity_defaults_to_one(client: httpx.AsyncClient) -> None:
    _, plan, account = await setup(client)
    sub = await subscribe(client, account["id"], plan_code=None, plan_id=plan["id"])
    assert (sub["quantity"], sub["plan_id"], sub["plan_code"]) == (1, plan["id"], "pro")
    assert (await only_invoice(client, sub["id"]))["total"] == 3000


# --------------------------------------------------------------------------- get, list, 404s


async def test_unknown_subscription_is_404(client: httpx.AsyncClient) -> None:
    missing = uuid.uuid4()
    for response in (
        await client.get(f"/v1/subscriptions/{missing}"),
        await client.get(f"/v1/subscriptions/{missing}/history"),
        await client.delete(f"/v1/subscriptions/{missing}"),
        await client.delete(f"/v1/subscriptions/{missing}?immediately=true"),
    ):
        assert str(missing) in assert_problem(response, 404, "not_found")["detail"]
    assert_problem(await client.get("/v1/subscriptions/sub_123"), 422, "validation_error")


async def ids(client: httpx.AsyncClient, **params: Any) -> list[str]:
    response = await client.get("/v1/subscriptions", params=params)
    assert response.status_code == 200, response.text
    return [s["id"] for s in response.json()["data"]]


async def test_list_subscriptions_filters(client: httpx.AsyncClient) -> None:
    clock, pro, a = await setup(client)
    team = await simple_plan(client, code="team", amount=9000)
    b = await account_on_clock(client, clock["id"], email="b@example.com")
    first = await subscribe(client, a["id"])
    await advance(client, clock["id"], "2025-03-11T00:00:00Z")
    second = await subscribe(client, a["id"], plan_code="team")
    await advance(client, clock["id"], "2025-03-12T00:00:00Z")
    third = await subscribe(client, b["id"], start_date="2025-04-01")
    await client.delete(f"/v1/subscriptions/{first['id']}?immediately=true")
    # Newest first.
    assert await ids(client) == [third["id"], second["id"], first["id"]]
    assert await ids(client, account_id=a["id"]) == [second["id"], first["id"]]
    assert await ids(client, account_id=b["id"]) == [third["id"]]
    assert await ids(client, status="canceled") == [first["id"]]
    assert await ids(client, status="pending") == [third["id"]]
    assert await ids(client, status="active") == [second["id"]]
    assert await ids(client, plan_id=pro["id"]) == [third["id"], first["id"]]
    assert await ids(client, plan_id=team["id"]) == [second["id"]]
    assert await ids(client, account_id=a["id"], plan_id=pro["id"]) == [first["id"]]
    assert await ids(client, status="trialing") == []
    bad = assert_problem(
        await client.get("/v1/subscriptions", params={"status": "expired"}), 422, "validation_error"
    )
    assert bad["param"] == "status"


async def test_list_subscriptions_cursor_pagination(client: httpx.AsyncClient) -> None:
    clock, _, account = await setup(client)
    created = []
    for hour in range(16, 21):
        await advance(client, clock["id"], f"2025-03-10T{hour}:00:00Z")
        created.append((await subscribe(client, account["id"]))["id"])
    newest_first = list(reversed(created))
    page = (await client.get("/v1/subscriptions", params={"limit": 2})).json()
    assert ([s["id"] for s in page["data"]], page["has_more"]) == (newest_first[:2], True)
    seen = [s["id"] for s in page["data"]]
    while page["has_more"]:
        page = (
            await client.get("/v1/subscriptions", params={"limit": 2, "starting_after": seen[-1]})
        ).json()
        seen += [s["id"] for s in page["data"]]
    assert seen == newest_first


# --------------------------------------------------------------------------- cancel and history


async def test_history_records_who_did_what(client: httpx.AsyncClient, app: FastAPI) -> None:
    clock, _, account = await setup(client)
    key_id, secret = await api_key_with_id(app, Role.BILLING_ADMIN)
    actor = f"api_key:{key_id}"
    async with http_client(app, secret) as admin:
        sub = await subscribe(admin, account["id"], quantity=2)
        await advance(client, clock["id"], "2025-03-11T08:00:00Z")
        scheduled = await admin.delete(f"/v1/subscriptions/{sub['id']}")
        assert scheduled.status_code == 200, scheduled.text
        assert (scheduled.json()["status"], scheduled.json()["cancel_at_period_end"]) == (
            "active",
            True,
        )
        await advance(client, clock["id"], "2025-03-12T08:00:00Z")
        ended = await admin.delete(f"/v1/subscriptions/{sub['id']}?immediately=true")
        assert ended.status_code == 200, ended.text
        history = (await admin.get(f"/v1/subscriptions/{sub['id']}/history")).json()
    assert history["has_more"] is False
    entries = [(h["kind"], h["actor"], h["at"], h["old"], h["new"]) for h in history["data"]]
    assert entries == [
        (
            "created",
            actor,
            "2025-03-10T15:30:00Z",
            None,
            {"status": "active", "plan_id": sub["plan_id"], "quantity": 2},
        ),
        (
            "cancel_scheduled",
            actor,
            "2025-03-11T08:00:00Z",
            {"status": "active", "cancel_at_period_end": False},
            {"status": "active", "cancel_at_period_end": True},
        ),
        (
            "canceled",
            actor,
            "2025-03-12T08:00:00Z",
            {"status": "active", "cancel_at_period_end": True},
            {"status": "canceled", "cancel_at_period_end": True},
        ),
    ]


async def test_history_lists_changes_made_at_one_instant_in_order(
    client: httpx.AsyncClient,
) -> None:
    # On a test clock every change of these five subscriptions happens at the same frozen
    # instant; only the order they were made in tells created from canceled.
    _, _, account = await setup(client)
    for _ in range(5):
        sub = await subscribe(client, account["id"])
        await client.delete(f"/v1/subscriptions/{sub['id']}")
        await client.delete(f"/v1/subscriptions/{sub['id']}?immediately=true")
        history = (await client.get(f"/v1/subscriptions/{sub['id']}/history")).json()["data"]
        assert [h["kind"] for h in history] == ["created", "cancel_scheduled", "canceled"]


async def test_cancel_at_period_end_is_carried_out_by_the_worker(
    client: httpx.AsyncClient,
) -> None:
    clock, _, account = await setup(client)
    sub = await subscribe(client, account["id"])
    await advance(client, clock["id"], "2025-03-20T10:00:00Z")
    scheduled = (await client.delete(f"/v1/subscriptions/{sub['id']}")).json()
    assert (scheduled["canceled_at"], scheduled["ended_at"]) == ("2025-03-20T10:00:00Z", None)
    await advance(client, clock["id"], "2025-04-11T00:00:00Z")
    current = (await client.get(f"/v1/subscriptions/{sub['id']}")).json()
    assert (current["status"], current["ended_at"]) == ("canceled", "2025-04-10T00:00:00Z")
    history = (await client.get(f"/v1/subscriptions/{sub['id']}/history")).json()["data"]
    assert [(h["kind"], h["actor"]) for h in history][1:] == [
        ("cancel_scheduled", history[1]["actor"]),
        ("cancel", "worker"),
    ]
    assert history[1]["actor"].startswith("api_key:")
    assert history[2]["new"]["status"] == "canceled"
    # No renewal invoice for the period that never started.
    assert len(await invoices_of(client, sub["id"])) == 1


async def test_cancel_during_trial_at_period_end_never_bills(client: httpx.AsyncClient) -> None:
    clock, account = await customer_on_clock(
        client, "2025-03-10T15:30:00Z", amount=3000, plan={"trial_days": 14}
    )
    sub = await subscribe(client, account["id"])
    scheduled = (await client.delete(f"/v1/subscriptions/{sub['id']}")).json()
    assert (scheduled["status"], scheduled["cancel_at_period_end"]) == ("trialing", True)
    await advance(client, clock["id"], "2025-04-01T00:00:00Z")
    current = (await client.get(f"/v1/subscriptions/{sub['id']}")).json()
    # The trial ends on Mar 24: the subscription ends with it, and only the $0 trial invoice
    # exists.
    assert (current["status"], current["ended_at"]) == ("canceled", "2025-03-24T00:00:00Z")
    [invoice] = await invoices_of(client, sub["id"])
    assert (invoice["total"], invoice["status"]) == (0, "paid")


async def test_cancel_a_pending_subscription(client: httpx.AsyncClient) -> None:
    clock, _, account = await setup(client)
    sub = await subscribe(client, account["id"], start_date="2025-04-01")
    assert sub["status"] == "pending"
    await advance(client, clock["id"], "2025-03-15T10:00:00Z")
    # Nothing has started, so there is no period to wait for: it ends now.
    canceled = (await client.delete(f"/v1/subscriptions/{sub['id']}")).json()
    assert (canceled["status"], canceled["ended_at"]) == ("canceled", "2025-03-15T10:00:00Z")
    assert canceled["cancel_at_period_end"] is False
    history = (await client.get(f"/v1/subscriptions/{sub['id']}/history")).json()["data"]
    assert [h["kind"] for h in history] == ["created", "canceled"]
    assert history[1]["new"]["status"] == "canceled"
    await advance(client, clock["id"], "2025-04-02T00:00:00Z")
    assert (await client.get(f"/v1/subscriptions/{sub['id']}")).json()["status"] == "canceled"
    assert await invoices_of(client, sub["id"]) == []


async def test_cancel_twice_is_409_with_the_current_status(client: httpx.AsyncClient) -> None:
    _, _, account = await setup(client)
    sub = await subscribe(client, account["id"])
    assert (
        await client.delete(f"/v1/subscriptions/{sub['id']}?immediately=true")
    ).status_code == 200
    for query in ("", "?immediately=true", "?immediately=true&prorate=true"):
        problem = assert_problem(
            await client.delete(f"/v1/subscriptions/{sub['id']}{query}"), 409, "invalid_state"
        )
        assert problem["current_status"] == "canceled"


async def test_prorated_immediate_cancel_credits_the_unused_days(
    client: httpx.AsyncClient,
) -> None:
    clock, _, account = await setup(client, at="2025-03-10T15:30:00Z")
    sub = await subscribe(client, account["id"], quantity=2)
    await advance(client, clock["id"], "2025-03-25T09:00:00Z")
    ended = await client.delete(f"/v1/subscriptions/{sub['id']}?immediately=true&prorate=true")
    assert ended.status_code == 200, ended.text
    # Period Mar 10 - Apr 10 is 31 days; Mar 25 to Apr 9 is 16 unused days.
    # 2 seats x 3000 = 6000 charged; 6000 x 16 / 31 = 3096.77 -> 3097.
    credits = await credits_of(client, account["id"])
    assert credits["balances"] == {"USD": 3097}
    [grant] = credits["ledger"]
    assert (grant["kind"], grant["created_at"]) == ("grant", "2025-03-25T09:00:00Z")


async def test_immediate_cancel_without_prorate_credits_nothing(client: httpx.AsyncClient) -> None:
    clock, _, account = await setup(client)
    sub = await subscribe(client, account["id"])
    await advance(client, clock["id"], "2025-03-25T09:00:00Z")
    await client.delete(f"/v1/subscriptions/{sub['id']}?immediately=true")
    assert (await credits_of(client, account["id"]))["balances"] == {}


async def test_prorated_cancel_after_the_invoice_was_voided_credits_nothing(
    client: httpx.AsyncClient,
) -> None:
    # The period's charge was voided, so nothing was billed for the unused days.
    clock, _, account = await setup(client)
    sub = await subscribe(client, account["id"])
    invoice = await only_invoice(client, sub["id"])
    assert (await invoice_action(client, invoice["id"], "void")).status_code == 200
    await advance(client, clock["id"], "2025-03-25T09:00:00Z")
    await client.delete(f"/v1/subscriptions/{sub['id']}?immediately=true&prorate=true")
    assert (await credits_of(client, account["id"]))["balances"] == {}


async def test_prorated_cancel_of_a_trial_credits_nothing(client: httpx.AsyncClient) -> None:
    _, account = await customer_on_clock(
        client, "2025-03-10T15:30:00Z", amount=3000, plan={"trial_days": 14}
    )
    sub = await subscribe(client, account["id"])
    ended = (
        await client.delete(f"/v1/subscriptions/{sub['id']}?immediately=true&prorate=true")
    ).json()
    assert ended["status"] == "canceled"
    assert (await credits_of(client, account["id"]))["balances"] == {}


# --------------------------------------------------------------------------- permissions


async def test_finance_viewer_reads_but_cannot_write(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    _, _, account = await setup(client)
    sub = await subscribe(client, account["id"])
    async with http_client(app, await new_api_key(app, Role.FINANCE_VIEWER)) as viewer:
        assert (await viewer.get("/v1/subscriptions")).status_code == 200
        assert (await viewer.get(f"/v1/subscriptions/{sub['id']}")).status_code == 200
        assert (await viewer.get(f"/v1/subscriptions/{sub['id']}/history")).status_code == 200
        created = assert_problem(
            await viewer.post(
                "/v1/subscriptions", json={"account_id": account["id"], "plan_code": "pro"}
            ),
            403,
            "forbidden",
        )
        assert created["required_permission"] == "subscriptions:write"
        assert_problem(await viewer.delete(f"/v1/subscriptions/{sub['id']}"), 403, "forbidden")
    assert await subscription_count(client) == 1
    current = (await client.get(f"/v1/subscriptions/{sub['id']}")).json()
    assert current["cancel_at_period_end"] is False


async def test_support_rep_can_subscribe_and_cancel(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    _, _, account = await setup(client)
    key_id, secret = await api_key_with_id(app, Role.SUPPORT_REP)
    async with http_client(app, secret) as support:
        sub = await subscribe(support, account["id"])
        ended = await support.delete(f"/v1/subscriptions/{sub['id']}?immediately=true")
        assert (ended.status_code, ended.json()["status"]) == (200, "canceled")
        history = (await support.get(f"/v1/subscriptions/{sub['id']}/history")).json()["data"]
    assert {h["actor"] for h in history} == {f"api_key:{key_id}"}


# --------------------------------------------------------------------------- idempotency


async def test_create_replayed_with_the_same_idempotency_key_subscribes_once(
    client: httpx.AsyncClient,
) -> None:
    _, _, account = await setup(client)
    body = {"account_id": account["id"], "plan_code": "pro", "quantity": 3}
    headers = {"Idempotency-Key": "signup-7"}
    first = await client.post("/v1/subscriptions", json=body, headers=headers)
    second = await client.post("/v1/subscriptions", json=body, headers=headers)
    assert (first.status_code, second.status_code) == (201, 201), second.text
    assert second.headers["idempotent-replayed"] == "true"
    assert second.json() == first.json()
    assert await subscription_count(client) == 1
    # One invoice, one number: the next subscription's invoice is INV-000002.
    assert (await only_invoice(client, first.json()["id"]))["number"] == "INV-000001"
    other = await subscribe(client, account["id"])
    assert (await only_invoice(client, other["id"]))["number"] == "INV-000002"


async def test_prorated_cancel_replayed_with_the_same_key_credits_once(
    client: httpx.AsyncClient,
) -> None:
    clock, _, account = await setup(client)
    sub = await subscribe(client, account["id"])
    await advance(client, clock["id"], "2025-03-25T09:00:00Z")
    url = f"/v1/subscriptions/{sub['id']}?immediately=true&prorate=true"
    headers = {"Idempotency-Key": "cancel-1"}
    first = await client.delete(url, headers=headers)
    second = await client.delete(url, headers=headers)
    assert (first.status_code, second.status_code) == (200, 200), second.text
    assert second.json() == first.json()
    # 3000 x 16 / 31 = 1548.39 -> 1548, granted once.
    credits = await credits_of(client, account["id"])
    assert credits["balances"] == {"USD": 1548}
    assert len(credits["ledger"]) == 1
