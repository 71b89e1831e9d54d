"""Customer emails end to end: outbox event -> worker -> a real SMTP server (aiosmtpd)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from billing.clock import FrozenClock
from tests.conftest import AppFactory, Sql, log_lines, new_api_key, runtime_of
from tests.factories.accounts import create_account
from tests.notifications.conftest import (
    NOW,
    SmtpServer,
    dunning_payload,
    invoice_payload,
    payment_payload,
    record,
    record_receipt,
    smtp_runtime,
)


async def test_invoice_email_for_a_german_account_formats_euros_the_german_way(
    client: httpx.AsyncClient, make_app: AppFactory, smtp_server: SmtpServer, sql: Sql
) -> None:
    account = await create_account(
        client,
        email="kunde@example.de",
        name="Kunde GmbH",
        currency="EUR",
        locale="de_DE",
        timezone="Europe/Berlin",
    )
    runtime = smtp_runtime(make_app, smtp_server)
    await record(
        runtime,
        type="invoice.finalized",
        account_id=account["id"],
        data=invoice_payload(account_id=account["id"], amount_due=123456, currency="EUR"),
    )

    await runtime.worker().run_due()

    [mail] = smtp_server.received
    assert mail.recipients == ["kunde@example.de"]
    assert mail.sender == "billing@acme.test"
    assert str(mail.message["From"]) == "Billing <billing@acme.test>"
    # CLDR's de_DE currency pattern puts the symbol after the amount (with a no-break space).
    amount = "1.234,56\xa0€"
    assert mail.subject == f"Invoice INV-000042 for {amount}"
    for part in (mail.part("plain"), mail.part("html")):
        assert amount in part
        assert "INV-000042" in part
        assert "Kunde GmbH" in part
        assert "1. März 2026" in part  # the period, in German
    [(status, attempts)] = await sql("SELECT status, attempts FROM email_messages")
    assert (status, attempts) == ("sent", 1)


async def test_receipt_for_a_us_account_shows_dollars(
    client: httpx.AsyncClient, make_app: AppFactory, smtp_server: SmtpServer
) -> None:
    account = await create_account(client, email="ada@example.com", currency="USD", locale="en_US")
    runtime = smtp_runtime(make_app, smtp_server)
    await record_receipt(runtime, account)

    await runtime.worker().run_due()

    [mail] = smtp_server.received
    assert mail.recipients == ["ada@example.com"]
    assert mail.subject == "Receipt: payment of $29.00 received"
    assert "$29.00" in mail.part("plain")
    assert "$29.00" in mail.part("html")


async def test_failed_payment_for_a_japanese_account_shows_yen_and_the_next_retry(
    client: httpx.AsyncClient, make_app: AppFactory, smtp_server: SmtpServer
) -> None:
    account = await create_account(
        client, email="tanaka@example.jp", currency="JPY", locale="ja_JP", timezone="Asia/Tokyo"
    )
    runtime = smtp_runtime(make_app, smtp_server)
    await record(
        runtime,
        type="payment.failed",
        account_id=account["id"],
        data=payment_payload(
            account_id=account["id"],
            amount=500,
            currency="JPY",
            status="failed",
            failure_code="card_declined",
            failure_message="Your card was declined.",
            next_retry_at=(NOW + timedelta(days=3)).isoformat(),
        ),
    )

    await runtime.worker().run_due()

    [mail] = smtp_server.received
    assert mail.recipients == ["tanaka@example.jp"]
    assert mail.subject == "Your payment of ￥500 failed"
    for part in (mail.part("plain"), mail.part("html")):
        assert "￥500" in part
        assert "Your card was declined." in part
        assert "2026/03/04" in part  # the retry, in Tokyo time and Japanese date format


@pytest.mark.parametrize(
    ("step", "subject"),
    [
        ("reminder", "Reminder: $120.00 is overdue"),
        ("warning", "Action needed: $120.00 is overdue"),
        ("blocked", "Your account is blocked: $120.00 unpaid"),
        ("unblocked", "Your account is active again"),
    ],
)
async def test_dunning_steps_mail_the_customer(
    client: httpx.AsyncClient,
    make_app: AppFactory,
    smtp_server: SmtpServer,
    step: str,
    subject: str,
) -> None:
    account = await create_account(client, email="late@example.com", currency="USD")
    runtime = smtp_runtime(make_app, smtp_server)
    amount_due = 0 if step == "unblocked" else 12000
    await record(
        runtime,
        type=f"dunning.{step}",
        account_id=account["id"],
        data=dunning_payload(
            account_id=account["id"],
            step=step,
            days_overdue=14,
            amount_due=amount_due,
            currency="USD",
        ),
    )

    await runtime.worker().run_due()

    [mail] = smtp_server.received
    assert mail.recipients == ["late@example.com"]
    assert mail.subject == subject
    if amount_due:
        assert "$120.00" in mail.part("plain")
        assert "$120.00" in mail.part("html")
        assert "14 days" in mail.part("plain")
        assert "14 days" in mail.part("html")


async def test_only_events_with_a_template_mail_and_free_invoices_do_not(
    client: httpx.AsyncClient, make_app: AppFactory, smtp_server: SmtpServer, sql: Sql
) -> None:
    account = await create_account(client, email="trial@example.com", currency="USD")
    runtime = smtp_runtime(make_app, smtp_server)
    await record(
        runtime,
        type="invoice.finalized",
        account_id=account["id"],
        data=invoice_payload(account_id=account["id"], amount_due=0, currency="USD"),
    )
    await record(runtime, type="subscription.created", account_id=account["id"], data={})

    await runtime.worker().run_due()

    assert smtp_server.received == []
    assert await sql("SELECT count(*) FROM email_messages") == [(0,)]
    # The watermark still moved past them (and past account.created).
    [(last_seq,)] = await sql("SELECT last_seq FROM notification_cursors WHERE name = 'email'")
    [(max_seq,)] = await sql("SELECT max(seq) FROM events")
    assert last_seq == max_seq


async def test_a_replayed_outbox_never_mails_twice(
    client: httpx.AsyncClient, make_app: AppFactory, smtp_server: SmtpServer, sql: Sql
) -> None:
    account = await create_account(client, email="once@example.com", currency="USD")
    runtime = smtp_runtime(make_app, smtp_server)
    await record_receipt(runtime, account)
    await runtime.worker().run_due()
    assert len(smtp_server.received) == 1

    # Rewind the watermark, as a restore from backup or an operator's replay would.
    await sql("UPDATE notification_cursors SET last_seq = 0")
    await runtime.worker().run_due()

    assert len(smtp_server.received) == 1
    assert await sql("SELECT count(*) FROM email_messages") == [(1,)]


async def test_without_smtp_url_emails_are_logged_not_sent(
    client: httpx.AsyncClient,
    make_app: AppFactory,
    sql: Sql,
    capfd: pytest.CaptureFixture[str],
) -> None:
    account = await create_account(client, email="dev@example.com", currency="USD")
    runtime = runtime_of(make_app())
    await record_receipt(runtime, account)
    capfd.readouterr()

    await runtime.worker().run_due()

    logged = [line for line in log_lines(capfd) if line.get("event") == "email_logged"]
    assert [(line["to"], line["subject"]) for line in logged] == [
        ("dev@example.com", "Receipt: payment of $29.00 received")
    ]
    assert "$29.00" in logged[0]["text"]
    assert await sql("SELECT status FROM email_messages") == [("logged",)]


async def test_an_smtp_outage_is_retried_with_backoff_and_blocks_nothing_else(
    client: httpx.AsyncClient, make_app: AppFactory, stopped_smtp_server: SmtpServer, sql: Sql
) -> None:
    account = await create_account(client, email="later@example.com", currency="USD")
    clock = FrozenClock(NOW)
    runtime = smtp_runtime(make_app, stopped_smtp_server, clock=clock, smtp_timeout_seconds=2)
    await record_receipt(runtime, account)

    counts = await runtime.worker().run_due()  # every sweep ran; none raised

    assert counts["emails_send"] == 1
    [(status, attempts, next_at, error)] = await sql(
        "SELECT status, attempts, next_attempt_at, last_error FROM email_messages"
    )
    assert (status, attempts, next_at) == ("queued", 1, NOW + timedelta(minutes=1))
    assert error

    stopped_smtp_server.start()
    clock.set(NOW + timedelta(seconds=30))
    await runtime.worker().run_due()
    assert stopped_smtp_server.received == []  # not due yet

    clock.set(NOW + timedelta(minutes=1))
    await runtime.worker().run_due()
    [mail] = stopped_smtp_server.received
    assert mail.recipients == ["later@example.com"]
    assert await sql("SELECT status, attempts, last_error FROM email_messages") == [
        ("sent", 2, None)
    ]


async def test_after_six_failed_attempts_a_message_is_given_up(
    client: httpx.AsyncClient, make_app: AppFactory, stopped_smtp_server: SmtpServer, sql: Sql
) -> None:
    account = await create_account(client, email="never@example.com", currency="USD")
    clock = FrozenClock(NOW)
    runtime = smtp_runtime(make_app, stopped_smtp_server, clock=clock, smtp_timeout_seconds=2)
    await record_receipt(runtime, account)
    expected_delays = [
        timedelta(minutes=1),
        timedelta(minutes=5),
        timedelta(minutes=30),
        timedelta(hours=2),
        timedelta(hours=6),
    ]
    at = NOW
    for attempt, delay in enumerate(expected_delays, start=1):
        clock.set(at)
        await runtime.worker().run_due()
        [(status, attempts, next_at)] = await sql(
            "SELECT status, attempts, next_attempt_at FROM email_messages"
        )
        assert (status, attempts, next_at) == ("queued", attempt, at + delay)
        at += delay
    clock.set(at)
    await runtime.worker().run_due()
    [(status, attempts, next_at, error)] = await sql(
        "SELECT status, attempts, next_attempt_at, last_error FROM email_messages"
    )
    assert (status, attempts, next_at) == ("failed", 6, None)
    assert error


async def test_a_refused_recipient_fails_at_once_and_the_rest_of_the_batch_is_sent(
    client: httpx.AsyncClient, make_app: AppFactory, smtp_server: SmtpServer, sql: Sql
) -> None:
    smtp_server.handler.refuse.add("gone@example.com")
    gone = await create_account(client, email="gone@example.com", currency="USD")
    here = await create_account(client, email="here@example.com", currency="USD")
    runtime = smtp_runtime(make_app, smtp_server)
    for account in (gone, here):
        await record_receipt(runtime, account)

    await runtime.worker().run_due()

    assert [m.recipients for m in smtp_server.received] == [["here@example.com"]]
    rows = await sql("SELECT recipient, status, attempts, last_error FROM email_messages")
    by_recipient = {r[0]: r[1:] for r in rows}
    assert by_recipient["here@example.com"] == ("sent", 1, None)
    status, attempts, error = by_recipient["gone@example.com"]
    assert (status, attempts) == ("failed", 1)
    assert "550" in error


async def test_a_payload_that_does_not_fit_its_template_is_recorded_and_skipped(
    client: httpx.AsyncClient, make_app: AppFactory, smtp_server: SmtpServer, sql: Sql
) -> None:
    account = await create_account(client, email="broken@example.com", currency="USD")
    runtime = smtp_runtime(make_app, smtp_server)
    await record(runtime, type="payment.failed", account_id=account["id"], data={"id": "x"})
    await record_receipt(runtime, account)

    await runtime.worker().run_due()

    assert [m.subject for m in smtp_server.received] == ["Receipt: payment of $29.00 received"]
    rows = await sql(
        "SELECT event_type, status, last_error FROM email_messages ORDER BY event_type"
    )
    assert [(r[0], r[1]) for r in rows] == [
        ("payment.failed", "failed"),
        ("payment.succeeded", "sent"),
    ]
    assert "amount" in rows[0][2]


async def test_support_can_list_what_was_mailed_to_an_account(
    client: httpx.AsyncClient, app: Any, make_app: AppFactory, smtp_server: SmtpServer
) -> None:
    account = await create_account(client, email="list@example.com", currency="USD")
    runtime = smtp_runtime(make_app, smtp_server)
    await record_receipt(runtime, account)
    await runtime.worker().run_due()

    from billing.auth.permissions import Role
    from tests.conftest import http_client

    async with http_client(app, await new_api_key(app, Role.SUPPORT_REP)) as support:
        response = await support.get(f"/v1/accounts/{account['id']}/emails")
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["has_more"] is False
        [email] = body["data"]
        assert email["object"] == "email"
        assert email["recipient"] == "list@example.com"
        assert email["status"] == "sent"
        assert email["event_type"] == "payment.succeeded"
        assert email["subject"] == "Receipt: payment of $29.00 received"

        missing = await support.get("/v1/accounts/00000000-0000-0000-0000-000000000000/emails")
        assert missing.status_code == 404


async def test_a_disabled_webhook_endpoint_is_emailed_to_the_operator(
    make_app: AppFactory, smtp_server: SmtpServer
) -> None:
    data = {
        "object": "webhook_endpoint",
        "id": "5d1f0f3e-58a6-4a4e-9a43-1f3c8f0a2b11",
        "url": "https://hooks.example.com/billing",
        "reason_detail": "the receiver answered 410 Gone",
    }
    quiet = smtp_runtime(make_app, smtp_server)
    await record(quiet, type="webhook_endpoint.disabled", account_id=None, data=data)
    await quiet.worker().run_due()
    assert smtp_server.received == []  # no OPERATOR_EMAIL: only logged

    runtime = smtp_runtime(make_app, smtp_server, operator_email="ops@acme.test")
    await record(runtime, type="webhook_endpoint.disabled", account_id=None, data=data)
    await runtime.worker().run_due()
    [mail] = smtp_server.received
    assert mail.recipients == ["ops@acme.test"]
    assert mail.subject == "Webhook endpoint disabled: https://hooks.example.com/billing"
    assert "the receiver answered 410 Gone" in mail.part("plain")
    assert "https://hooks.example.com/billing" in mail.part("html")
