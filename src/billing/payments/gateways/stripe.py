"""The Stripe gateway: the official ``stripe`` SDK (async methods over httpx), no hand-written HTTP.

Every Stripe exception is translated into the gateway errors of ``base`` here, so nothing
above this module imports ``stripe``:

* ``CardError`` (402) -> ``PaymentMethodDeclined`` with Stripe's code (``expired_card``,
  ``card_declined``, ...).
* ``InvalidRequestError`` (400/404) on attach -> ``PaymentMethodDeclined`` (e.g.
  ``resource_missing``: no such PaymentMethod), unless Stripe blames the customer, which
  is our bug, not the card's -> ``GatewayError``.
* ``APIConnectionError`` (network, timeout), ``RateLimitError`` (429) and any 5xx ->
  ``GatewayUnavailable``: the outcome is unknown.
* Anything else (authentication, permission, idempotency key reuse) -> ``GatewayError``.

The SDK retries network errors, 409s and 5xx itself (``max_network_retries``) with the same
``Idempotency-Key``, so a retried POST never acts twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final
from uuid import UUID

import stripe

from billing.payments.gateways.base import (
    CardDetails,
    ChargeResult,
    GatewayError,
    GatewayUnavailable,
    PaymentMethodDeclined,
)

DEFAULT_TIMEOUT_SECONDS: Final = 30.0
DEFAULT_MAX_NETWORK_RETRIES: Final = 2


def customer_idempotency_key(account_id: UUID) -> str:
    """The Idempotency-Key for creating the Stripe customer of an account.

    Derived from the account id, so a retry (by the SDK or by our own code, after a timeout)
    returns the customer created by the first attempt instead of creating a second one.
    Stripe keeps keys for at least 24 hours and rejects a key reused with different
    parameters (``GatewayError`` code ``idempotency_error``).
    """
    return f"customer-{account_id}"


class StripeGateway:
    """Cards on Stripe customers, through ``stripe.StripeClient``."""

    name = "stripe"

    def __init__(
        self,
        *,
        api_key: str,
        api_base: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        max_network_retries: int = DEFAULT_MAX_NETWORK_RETRIES,
    ) -> None:
        if not api_key:
            raise ValueError("the stripe gateway needs a secret key (STRIPE_SECRET_KEY)")
        self._http_client = stripe.HTTPXClient(timeout=timeout)
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base.rstrip("/")} if api_base else None,
            http_client=self._http_client,
            max_network_retries=max_network_retries,
        )
        self._closed = False

    async def create_customer(self, *, account_id: UUID, email: str, name: str | None) -> str:
        params: stripe.params.CustomerCreateParams = {
            "email": email,
            "metadata": {"account_id": str(account_id)},
        }
        if name is not None:
            params["name"] = name
        try:
            customer = await self._client.v1.customers.create_async(
                params, {"idempotency_key": customer_idempotency_key(account_id)}
            )
        except stripe.StripeError as exc:
            raise _translate(exc, declined_on_invalid_request=False) from exc
        return customer.id

    async def attach_payment_method(self, *, token: str, customer_id: str | None) -> CardDetails:
        if customer_id is None:
            raise ValueError("the stripe gateway attaches payment methods to a customer id")
        try:
            payment_method = await self._client.v1.payment_methods.attach_async(
                token, {"customer": customer_id}
            )
        except stripe.StripeError as exc:
            raise _translate(exc, declined_on_invalid_request=True) from exc
        card = payment_method.card
        if payment_method.type != "card" or card is None:
            raise PaymentMethodDeclined(
                "unsupported_payment_method",
                f"Payment method {payment_method.id} is a {payment_method.type!r}, not a card.",
            )
        return CardDetails(
            gateway_payment_method_id=payment_method.id,
            brand=card.brand,
            last4=card.last4,
            exp_month=card.exp_month,
            exp_year=card.exp_year,
        )

    async def charge(
        self,
        *,
        amount: int,
        currency: str,
        customer_id: str | None,
        payment_method_id: str,
        idempotency_key: str,
        metadata: Mapping[str, str],
    ) -> ChargeResult:
        """A PaymentIntent confirmed off-session at once; a decline is a failed result."""
        params: stripe.params.PaymentIntentCreateParams = {
            "amount": amount,
            "currency": currency.lower(),
            "payment_method": payment_method_id,
            "confirm": True,
            "off_session": True,
            "metadata": {**metadata, "idempotency_key": idempotency_key},
        }
        if customer_id is not None:
            params["customer"] = customer_id
        try:
            intent = await self._client.v1.payment_intents.create_async(
                params, {"idempotency_key": idempotency_key}
            )
        except stripe.CardError as exc:
            return _declined(exc)
        except stripe.StripeError as exc:
            raise _translate(exc, declined_on_invalid_request=False) from exc
        return _intent_result(intent)

    async def retrieve_charge(
        self, *, idempotency_key: str, transaction_id: str | None
    ) -> ChargeResult | None:
        """By PaymentIntent id when known, else by the idempotency key kept in its metadata."""
        try:
            if transaction_id is not None:
                intent = await self._client.v1.payment_intents.retrieve_async(transaction_id)
            else:
                found = await self._client.v1.payment_intents.search_async(
                    {"query": f"metadata['idempotency_key']:'{idempotency_key}'"}
                )
                if not found.data:
                    return None
                intent = found.data[0]
        except stripe.StripeError as exc:
            raise _translate(exc, declined_on_invalid_request=False) from exc
        return _intent_result(intent)

    async def refund(
        self, *, transaction_id: str, amount: int, currency: str, idempotency_key: str
    ) -> ChargeResult:
        try:
            refund = await self._client.v1.refunds.create_async(
                {"payment_intent": transaction_id, "amount": amount},
                {"idempotency_key": idempotency_key},
            )
        except stripe.StripeError as exc:
            raise _translate(exc, declined_on_invalid_request=False) from exc
        if refund.status in ("failed", "canceled"):
            return ChargeResult("failed", refund.id, refund.failure_reason or "refund_failed")
        return ChargeResult("succeeded", refund.id)

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._http_client.close_async()  # type: ignore[no-untyped-call]


def _intent_result(intent: Any) -> ChargeResult:
    """Map a PaymentIntent to a result; a still-undecided one is an unknown outcome."""
    if intent.status == "succeeded":
        return ChargeResult("succeeded", intent.id)
    if intent.status in ("requires_payment_method", "canceled", "requires_action"):
        error = intent.last_payment_error
        code = (
            "authentication_required"
            if intent.status == "requires_action"
            else (_decline(error.decline_code) or error.code if error is not None else None)
        )
        message = error.message if error is not None else None
        return ChargeResult("failed", intent.id, _decline(code) or "card_declined", message)
    raise GatewayUnavailable(
        "processing", f"PaymentIntent {intent.id} is still {intent.status}; check again later."
    )


def _decline(code: str | None) -> str | None:
    """Stripe's specific decline reason; its generic one says no more than card_declined."""
    return None if code in (None, "generic_decline") else code


def _declined(exc: stripe.CardError) -> ChargeResult:
    error = exc.error
    intent = getattr(error, "payment_intent", None) if error is not None else None
    decline_code = getattr(error, "decline_code", None) if error is not None else None
    return ChargeResult(
        "failed",
        intent.id if intent is not None else None,
        _decline(decline_code) or exc.code or "card_declined",
        _message(exc),
    )


def _message(exc: stripe.StripeError) -> str:
    message = exc.user_message  # an untyped property in the SDK
    return str(message) if message else type(exc).__name__


def _translate(exc: stripe.StripeError, *, declined_on_invalid_request: bool) -> GatewayError:
    """Map a Stripe SDK exception to one of our gateway errors."""
    message = _message(exc)
    if isinstance(exc, stripe.CardError):
        return PaymentMethodDeclined(exc.code or "card_declined", message)
    if isinstance(exc, stripe.InvalidRequestError):
        code = exc.code or "invalid_request_error"
        param = getattr(exc, "param", None)
        if declined_on_invalid_request and param != "customer":
            return PaymentMethodDeclined(code, message)
        return GatewayError(code, message)
    if isinstance(exc, stripe.APIConnectionError):
        return GatewayUnavailable("api_connection_error", message)
    if isinstance(exc, stripe.RateLimitError):
        return GatewayUnavailable(exc.code or "rate_limit", message)
    if isinstance(exc, stripe.AuthenticationError):
        return GatewayError("authentication_error", message)
    if isinstance(exc, stripe.PermissionError):
        return GatewayError("permission_error", message)
    if isinstance(exc, stripe.IdempotencyError):
        return GatewayError("idempotency_error", message)
    if exc.http_status is None or exc.http_status >= 500:
        return GatewayUnavailable(exc.code or "api_error", message)
    return GatewayError(exc.code or "api_error", message)
