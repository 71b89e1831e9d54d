"""Webhook endpoints: CRUD, validation, the SSRF guard, secret rotation, permissions."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from standardwebhooks import WebhookVerificationError

from billing.auth.permissions import Role
from billing.webhooks.ssrf import is_public, literal_ip
from billing.worker.runner import Worker
from tests.conftest import AppFactory, Sql, http_client, new_api_key, runtime_of
from tests.events.conftest import create_endpoint, deliveries, hooks_settings
from tests.events.receiver import Receiver


async def test_endpoint_lifecycle(hooks: httpx.AsyncClient, receiver: Receiver) -> None:
    created = await create_endpoint(
        hooks,
        receiver.url,
        ["invoice.*", "subscription.canceled", "invoice.paid", "invoice.*"],
        description="Provisioning",
        metadata={"team": "infra"},
    )
    assert created["secret"].startswith("whsec_")
    assert created["enabled_events"] == ["invoice.*", "subscription.canceled", "invoice.paid"]
    assert (created["disabled"], created["description"]) == (False, "Provisioning")

    got = (await hooks.get(f"/v1/webhook-endpoints/{created['id']}")).json()
    assert "secret" not in got
    assert got == {k: v for k, v in created.items() if k != "secret"}
    listed = (await hooks.get("/v1/webhook-endpoints")).json()
    assert [e["id"] for e in listed["data"]] == [created["id"]]

    patched = await hooks.patch(
        f"/v1/webhook-endpoints/{created['id']}",
        json={"enabled_events": ["*"], "description": None},
    )
    assert patched.status_code == 200, patched.text
    assert (patched.json()["enabled_events"], patched.json()["description"]) == (["*"], None)

    deleted = await hooks.delete(f"/v1/webhook-endpoints/{created['id']}")
    assert deleted.json() == {"object": "webhook_endpoint", "id": created["id"], "deleted": True}
    missing = await hooks.get(f"/v1/webhook-endpoints/{created['id']}")
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")


async def test_the_secret_is_not_stored_by_idempotency(
    hooks: httpx.AsyncClient, receiver: Receiver
) -> None:
    body = {"url": receiver.url, "enabled_events": ["*"]}
    first = await hooks.post("/v1/webhook-endpoints", json=body, headers={"Idempotency-Key": "k"})
    assert first.headers["cache-control"] == "no-store"
    assert first.json()["secret"].startswith("whsec_")


@pytest.mark.parametrize(
    ("body", "param", "fragment"),
    [
        ({"url": "https://example.com/h", "enabled_events": []}, "enabled_events", "at least"),
        (
            {"url": "https://example.com/h", "enabled_events": ["invoice.eaten"]},
            "enabled_events",
            "unknown event type",
        ),
        (
            {"url": "https://example.com/h", "enabled_events": ["nothing.*"]},
            "enabled_events",
            "unknown",
        ),
        ({"url": "ftp://example.com/h", "enabled_events": ["*"]}, "url", "absolute https"),
        ({"url": "not a url", "enabled_events": ["*"]}, "url", "absolute https"),
        ({"url": "https://u:p@example.com/h", "enabled_events": ["*"]}, "url", "credentials"),
    ],
)
async def test_invalid_endpoints_are_refused(
    client: httpx.AsyncClient, body: dict[str, object], param: str, fragment: str
) -> None:
    response = await client.post("/v1/webhook-endpoints", json=body)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert (problem["code"], problem["param"]) == ("validation_error", param)
    assert fragment in problem["detail"]


async def test_http_needs_webhooks_allow_http(make_app: AppFactory) -> None:
    body = {"url": "http://example.com/h", "enabled_events": ["*"]}
    strict = make_app(webhooks_allow_http=False)
    async with http_client(strict, await new_api_key(strict)) as c:
        refused = await c.post("/v1/webhook-endpoints", json=body)
        assert (refused.status_code, refused.json()["param"]) == (422, "url")
        assert "WEBHOOKS_ALLOW_HTTP" in refused.json()["detail"]
    # Unset, it follows the embedded (development) mode, which the suite's apps run in.
    dev = make_app()
    async with http_client(dev, await new_api_key(dev)) as c:
        assert (await c.post("/v1/webhook-endpoints", json=body)).status_code == 201


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hooks",
        "https://localhost:8443/hooks",  # a name, refused after resolution
        "https://10.1.2.3/hooks",
        "https://192.168.0.10/hooks",
        "https://172.16.5.4/hooks",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hooks",
        "https://[fe80::1]/hooks",
        "https://[::ffff:127.0.0.1]/hooks",
        "https://100.64.0.1/hooks",
        "https://0.0.0.0/hooks",
    ],
)
async def test_ssrf_private_addresses_are_refused(client: httpx.AsyncClient, url: str) -> None:
    response = await client.post(
        "/v1/webhook-endpoints", json={"url": url, "enabled_events": ["*"]}
    )
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["param"] == "url"
    assert "WEBHOOKS_ALLOW_PRIVATE" in problem["detail"]


def test_public_addresses_are_allowed() -> None:
    for address in ("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "8.8.8.8"):
        ip = literal_ip(address)
        assert ip is not None
        assert is_public(ip)


async def test_ssrf_is_checked_again_at_delivery_time(
    hooks: httpx.AsyncClient, make_app: AppFactory, receiver: Receiver
) -> None:
    # Saved while private addresses were allowed (or a name that resolved elsewhere then).
    endpoint = await create_endpoint(hooks, receiver.url.replace("127.0.0.1", "localhost"))
    await hooks.post("/v1/accounts", json={"email": "ssrf@example.com"})
    strict = make_app(**hooks_settings(webhooks_allow_private=False))
    await runtime_of(strict).worker().run_due()
    assert receiver.requests == []
    [delivery] = await deliveries(hooks, endpoint["id"])
    assert delivery["status"] == "pending"
    assert delivery["last_response_status"] is None
    assert "refused: localhost resolves to 127.0.0.1" in delivery["last_error"]


async def test_disabling_fails_pending_deliveries_and_enabling_resumes(
    hooks: httpx.AsyncClient, hooks_worker: Worker, receiver: Receiver
) -> None:
    endpoint = await create_endpoint(hooks, receiver.url)
    await hooks.post("/v1/accounts", json={"email": "d@example.com"})
    off = await hooks.patch(f"/v1/webhook-endpoints/{endpoint['id']}", json={"disabled": True})
    assert (off.json()["disabled"], off.json()["disabled_reason"]) == (True, "manual")
    [delivery] = await deliveries(hooks, endpoint["id"])
    assert (delivery["status"], delivery["last_error"]) == ("failed", "endpoint disabled")
    await hooks.post("/v1/accounts", json={"email": "e@example.com"})  # not for a disabled one
    await hooks_worker.run_due()
    assert receiver.requests == []
    assert len(await deliveries(hooks, endpoint["id"])) == 1

    on = await hooks.patch(f"/v1/webhook-endpoints/{endpoint['id']}", json={"disabled": False})
    assert (on.json()["disabled"], on.json()["disabled_reason"]) == (False, None)
    # The failed one can be replayed to this endpoint.
    again = await hooks.post(
        f"/v1/events/{delivery['event_id']}/redeliver", json={"endpoint_id": endpoint["id"]}
    )
    assert again.status_code == 202
    await hooks_worker.run_due()
    assert [r.webhook_id for r in receiver.requests] == [delivery["event_id"]]


async def test_secret_rotation_signs_with_both_during_the_overlap(
    hooks: httpx.AsyncClient, hooks_worker: Worker, receiver: Receiver, sql: Sql
) -> None:
    endpoint = await create_endpoint(hooks, receiver.url)
    old = endpoint["secret"]
    rotated = await hooks.post(f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret")
    assert rotated.status_code == 200, rotated.text
    assert rotated.headers["cache-control"] == "no-store"
    new = rotated.json()["secret"]
    assert new != old
    expires = rotated.json()["previous_secret_expires_at"]
    [row] = await sql(
        "SELECT expires_at - created_at AS overlap FROM webhook_secrets WHERE secret = :s", s=old
    )
    assert row.overlap.total_seconds() > 0
    assert expires is not None

    await hooks.post("/v1/accounts", json={"email": "r1@example.com"})
    await hooks_worker.run_due()
    [during] = receiver.requests
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    assert during.verify(old) == during.verify(new)  # a receiver on either secret accepts it

    # 24 hours later the old one has expired: only the new one signs.
    await sql(
        "UPDATE webhook_secrets SET expires_at = now() - interval '1 second' WHERE secret = :s",
        s=old,
    )
    await hooks.post("/v1/accounts", json={"email": "r2@example.com"})
    await hooks_worker.run_due()
    after = receiver.requests[1]
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    after.verify(new)
    with pytest.raises(WebhookVerificationError):
        after.verify(old)


async def test_rotation_keeps_the_previous_secret_for_24_hours(
    hooks: httpx.AsyncClient, receiver: Receiver, sql: Sql
) -> None:
    endpoint = await create_endpoint(hooks, receiver.url)
    await hooks.post(f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret")
    rows = await sql(
        "SELECT secret, extract(epoch FROM expires_at - now()) AS left FROM webhook_secrets "
        "ORDER BY created_at"
    )
    assert rows[0].secret == endpoint["secret"]
    assert 24 * 3600 - 60 < rows[0].left <= 24 * 3600
    assert rows[1].left is None


async def test_permissions(hooks_app: FastAPI, receiver: Receiver) -> None:
    viewer = await new_api_key(hooks_app, Role.FINANCE_VIEWER)
    async with http_client(hooks_app, viewer) as c:
        assert (await c.get("/v1/events")).status_code == 200
        assert (await c.get("/v1/webhook-endpoints")).status_code == 200
        refused = await c.post(
            "/v1/webhook-endpoints", json={"url": receiver.url, "enabled_events": ["*"]}
        )
        assert (refused.status_code, refused.json()["required_permission"]) == (
            403,
            "webhooks:write",
        )
    support = await new_api_key(hooks_app, Role.SUPPORT_REP)
    async with http_client(hooks_app, support) as c:
        refused = await c.post(
            "/v1/webhook-endpoints", json={"url": receiver.url, "enabled_events": ["*"]}
        )
        assert refused.status_code == 403
