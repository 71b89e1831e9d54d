"""A real SMTP server (aiosmtpd) per test, and helpers to record contract-shaped events."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from billing.events.outbox import record_event
from billing.invoicing.schemas import InvoiceLineRead, InvoiceRead, InvoiceStatus
from billing.runtime import Runtime
from tests.conftest import AppFactory, free_port, runtime_of


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    def part(self, subtype: str) -> str:
        body = self.message.get_body(preferencelist=(subtype,))
        assert body is not None, f"no text/{subtype} part"
        content: str = body.get_content()
        return content


@dataclass
class Handler:
    received: list[Received] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 Message accepted"


@dataclass
class SmtpServer:
    handler: Handler
    port: int
    controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    def start(self, **kwargs: Any) -> None:
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, **kwargs)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


BILLING_FROM = "Billing <billing@acme.test>"


def smtp_runtime(
    make_app: AppFactory,
    server: SmtpServer,
    *,
    email_from: str | None = BILLING_FROM,
    **overrides: Any,
) -> Runtime:
    """An app that mails through `server`; `email_from=None` keeps the settings' default sender."""
    if email_from is not None:
        overrides["email_from"] = email_from
    return runtime_of(make_app(smtp_url=server.url, **overrides))


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer(Handler(), free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def stopped_smtp_server() -> Iterator[SmtpServer]:
    """An SMTP server that is not running yet (an outage); the test starts it."""
    server = SmtpServer(Handler(), free_port())
    yield server
    server.stop()


NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def invoice_payload(
    *, account_id: str, amount_due: int, currency: str, number: str = "INV-000042"
) -> dict[str, Any]:
    """An invoice.finalized payload: InvoiceRead as JSON, as invoicing records it."""
    invoice = InvoiceRead(
        id=uuid.uuid4(),
        number=number,
        account_id=uuid.UUID(account_id),
        subscription_id=uuid.uuid4(),
        currency=currency,
        status=InvoiceStatus.OPEN,
        billing_reason="subscription_cycle",
        period_start=date(2026, 3, 1),
        period_end=date(2026, 4, 1),
        lines=[
            InvoiceLineRead(
                id=uuid.uuid4(),
                kind="subscription",
                description="Pro (Mar 1 - Apr 1)",
                period_start=date(2026, 3, 1),
                period_end=date(2026, 4, 1),
                quantity=1,
                unit_amount=amount_due,
                unit_amount_decimal=None,
                amount=amount_due,
                details={},
            )
        ],
        subtotal=amount_due,
        tax=0,
        total=amount_due,
        credits_applied=0,
        amount_due=amount_due,
        amount_paid=0,
        amount_remaining=amount_due,
        created_at=NOW,
        finalized_at=NOW,
        due_at=NOW,
        paid_at=None,
        voided_at=None,
        marked_uncollectible_at=None,
    )
    return invoice.model_dump(mode="json")


def payment_payload(
    *,
    account_id: str,
    amount: int,
    currency: str,
    status: str = "succeeded",
    failure_code: str | None = None,
    failure_message: str | None = None,
    next_retry_at: str | None = None,
) -> dict[str, Any]:
    return {
        "object": "payment",
        "id": str(uuid.uuid4()),
        "invoice_id": str(uuid.uuid4()),
        "account_id": account_id,
        "amount": amount,
        "currency": currency,
        "status": status,
        "failure_code": failure_code,
        "failure_message": failure_message,
        "attempt_number": 1,
        "next_retry_at": next_retry_at,
        "created_at": NOW.isoformat(),
    }


def dunning_payload(
    *, account_id: str, step: str, days_overdue: int, amount_due: int, currency: str
) -> dict[str, Any]:
    return {
        "object": "dunning_step",
        "account_id": account_id,
        "step": step,
        "days_overdue": days_overdue,
        "invoice_ids": [str(uuid.uuid4())],
        "amount_due": amount_due,
        "currency": currency,
    }


async def record(
    runtime: Runtime, *, type: str, account_id: str | None, data: dict[str, Any]
) -> uuid.UUID:
    """Record an event in its own committed transaction, as a service would."""
    async with runtime.sessions() as session:
        event = record_event(
            session,
            type=type,
            account_id=uuid.UUID(account_id) if account_id else None,
            data=data,
            at=NOW,
        )
        await session.commit()
        return event.id


async def record_receipt(
    runtime: Runtime, account: dict[str, Any], amount: int = 2900
) -> uuid.UUID:
    """Record a payment.succeeded event (a receipt email) for `account`, in USD."""
    return await record(
        runtime,
        type="payment.succeeded",
        account_id=account["id"],
        data=payment_payload(account_id=account["id"], amount=amount, currency="USD"),
    )
