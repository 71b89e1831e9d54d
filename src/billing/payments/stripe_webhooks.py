"""`POST /webhooks/stripe`: PaymentIntent outcomes pushed by Stripe.

Public (Stripe has no API key of ours) but verified: the `Stripe-Signature` header is checked
by the official SDK against STRIPE_WEBHOOK_SECRET, with its five-minute tolerance, so a forged
or replayed-late request gets 400. Each event id is stored in the outcome's transaction: a
redelivered event changes nothing, and neither does one for a payment already settled.
"""

from __future__ import annotations

import uuid
from typing import Any

import stripe
from fastapi import APIRouter, Request
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from billing.clock import Clock
from billing.clock.service import account_now
from billing.deps import ClockDep, RuntimeDep, SessionDep
from billing.http.errors import DomainError
from billing.payments import charges
from billing.payments.gateways import ChargeResult
from billing.payments.gateways.stripe import _decline
from billing.payments.models import Payment, StripeWebhookEvent
from billing.payments.service import policy_of
from billing.settings import Settings

router = APIRouter(tags=["webhooks"])

HANDLED = ("payment_intent.succeeded", "payment_intent.payment_failed")


class BadSignature(DomainError):
    code = "malformed_request"


class NotConfigured(DomainError):
    code = "service_unavailable"


def verify(payload: bytes, signature: str | None, secret: str | None) -> dict[str, Any]:
    if not secret:
        raise NotConfigured("Stripe webhooks need STRIPE_WEBHOOK_SECRET to be set.")
    try:
        event = stripe.Webhook.construct_event(payload, signature or "", secret)
    except stripe.SignatureVerificationError as exc:
        raise BadSignature(
            "The Stripe-Signature header does not match this payload, or is too old."
        ) from exc
    except ValueError as exc:
        raise BadSignature("The webhook body is not a Stripe event.") from exc
    found: dict[str, Any] = event.to_dict()
    return found


def _result(event_type: str, intent: dict[str, Any]) -> ChargeResult:
    if event_type == "payment_intent.succeeded":
        return ChargeResult("succeeded", intent["id"])
    error = intent.get("last_payment_error") or {}
    code = _decline(error.get("decline_code"))
    if code is None:
        code = error.get("code") or "card_declined"
    return ChargeResult("failed", intent["id"], code, error.get("message"))


async def _payment_for(session: AsyncSession, intent: dict[str, Any]) -> Payment | None:
    metadata = intent.get("metadata") or {}
    try:
        payment_id = uuid.UUID(str(metadata.get("payment_id")))
    except ValueError:
        payment_id = None
    if payment_id is not None:
        found = await session.get(Payment, payment_id)
        if found is not None:
            return found
    return await session.scalar(
        select(Payment).where(Payment.gateway_transaction_id == str(intent.get("id")))
    )


async def handle(
    session: AsyncSession, *, event: dict[str, Any], clock: Clock, settings: Settings
) -> bool:
    """Apply one verified event; False if it was seen before."""
    stored = await session.execute(
        insert(StripeWebhookEvent)
        .values(id=str(event["id"]), type=str(event["type"]))
        .on_conflict_do_nothing()
        .returning(StripeWebhookEvent.id)
    )
    if stored.first() is None:
        await session.rollback()
        return False
    if event["type"] in HANDLED:
        intent = event["data"]["object"]
        payment = await _payment_for(session, intent)
        if payment is not None:
            now = await account_now(session, payment.account_id, clock)
            await charges.record_outcome(
                session,
                payment_id=payment.id,
                result=_result(event["type"], intent),
                at=now,
                policy=policy_of(settings),
            )
            return True
    await session.commit()
    return True


@router.post("/webhooks/stripe", summary="Stripe webhook endpoint (signed by Stripe)")
async def stripe_webhook(
    request: Request, session: SessionDep, clock: ClockDep, runtime: RuntimeDep
) -> dict[str, Any]:
    payload = await request.body()
    event = verify(
        payload, request.headers.get("stripe-signature"), runtime.settings.stripe_webhook_secret
    )
    fresh = await handle(session, event=event, clock=clock, settings=runtime.settings)
    return {"received": True, "duplicate": not fresh}
