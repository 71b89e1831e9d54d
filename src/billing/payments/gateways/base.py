"""The payment gateway interface: what the payments domain needs from a card processor.

A gateway turns a payment method token collected by a front end (Stripe.js, or a sandbox
test token such as ``pm_card_visa``) into a stored, verified card on a gateway customer.
Gateways are async, hold no database state and raise only the errors defined here, so the
services above them never see a vendor SDK's exceptions:

* ``PaymentMethodDeclined``: the gateway answered and said no (invalid, expired or declined
  card). Definitive; retrying the same token will not help.
* ``GatewayUnavailable``: timeout, network failure, rate limit or a 5xx. The outcome of the
  request is unknown; try again later with the same idempotency key, never blindly.
* ``GatewayError``: any other definitive failure (bad credentials, a reused idempotency key,
  an unknown customer). Usually a configuration or programming error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol
from uuid import UUID


@dataclass(frozen=True, slots=True)
class CardDetails:
    """A verified card as stored by the gateway. Never holds the full card number."""

    gateway_payment_method_id: str
    brand: str  # Stripe's vocabulary: "visa", "mastercard", "amex", "discover", ...
    last4: str
    exp_month: int
    exp_year: int


@dataclass(frozen=True, slots=True)
class ChargeResult:
    """What the gateway says about a charge (or a refund) it has answered for."""

    status: Literal["succeeded", "failed"]
    transaction_id: str | None
    failure_code: str | None = None
    failure_message: str | None = None


class GatewayError(Exception):
    """A definitive failure reported by (or about) the gateway. ``code`` is stable."""

    code: str
    message: str

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class PaymentMethodDeclined(GatewayError):
    """The token is invalid, expired or declined at verification.

    ``code`` is the gateway's reason, e.g. ``"expired_card"``, ``"card_declined"``,
    ``"invalid_token"`` (sandbox) or ``"resource_missing"`` (Stripe: no such PaymentMethod).
    """


class GatewayUnavailable(GatewayError):
    """Timeout, network error, rate limit or 5xx: the outcome is unknown, try again later."""


class PaymentGateway(Protocol):
    """A card processor. Implementations: ``SandboxGateway`` and ``StripeGateway``."""

    name: str

    async def create_customer(self, *, account_id: UUID, email: str, name: str | None) -> str:
        """Create the gateway's customer for one of our accounts; return its id.

        Idempotent per account: calling it again for the same account (a retry after a
        timeout) returns the same customer instead of creating a second one.
        """
        ...

    async def attach_payment_method(self, *, token: str, customer_id: str | None) -> CardDetails:
        """Verify a payment method token and attach it to the customer.

        ``customer_id`` is required by gateways that have customers (Stripe); the sandbox
        ignores it. Raises ``PaymentMethodDeclined`` when the card cannot be used.
        """
        ...

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
        """Charge a stored payment method off-session, at most once per ``idempotency_key``.

        A decline is a ``ChargeResult`` with status ``failed``, not an exception. Raises
        ``GatewayUnavailable`` when the outcome is unknown (ask ``retrieve_charge`` later,
        never charge with a new key), ``GatewayError`` for other definitive failures.
        """
        ...

    async def retrieve_charge(
        self, *, idempotency_key: str, transaction_id: str | None
    ) -> ChargeResult | None:
        """The outcome of an earlier ``charge``, or None when the gateway never received it."""
        ...

    async def refund(
        self, *, transaction_id: str, amount: int, currency: str, idempotency_key: str
    ) -> ChargeResult:
        """Refund ``amount`` of a succeeded charge, at most once per ``idempotency_key``."""
        ...

    async def aclose(self) -> None:
        """Release network resources (connection pools). Idempotent."""
        ...
