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

from typing import Final
from uuid import UUID

import stripe

from billing.payments.gateways.base import (
    CardDetails,
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

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._http_client.close_async()  # type: ignore[no-untyped-call]


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
