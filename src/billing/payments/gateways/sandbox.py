"""The built-in sandbox gateway: deterministic test payment methods, no network, no state.

Modelled on Stripe's test cards: a front end (or an API client) sends one of the tokens in
``SANDBOX_PAYMENT_METHODS`` instead of a real card. Some tokens verify fine and only fail
later when they are charged, exactly as their Stripe counterparts do, so the whole
collection and dunning flow can be exercised without a Stripe account.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from uuid import UUID

from billing.payments.gateways.base import CardDetails, PaymentMethodDeclined

# What happens when a verified sandbox card is charged.
ChargeOutcome = Literal["succeeds", "card_declined", "insufficient_funds", "timeout"]


@dataclass(frozen=True, slots=True)
class SandboxPaymentMethod:
    """What a sandbox test token stands for: its card and how it behaves."""

    brand: str
    last4: str
    exp_month: int
    exp_year: int
    # PaymentMethodDeclined code raised when the token is attached, or None if it verifies.
    verification_error: str | None
    # Outcome of a later charge (only meaningful when the token verifies).
    charge_outcome: ChargeOutcome
    description: str


# The single source of truth for sandbox tokens, keyed by token (documented in the README).
SANDBOX_PAYMENT_METHODS: dict[str, SandboxPaymentMethod] = {
    "pm_card_visa": SandboxPaymentMethod(
        brand="visa",
        last4="4242",
        exp_month=12,
        exp_year=2034,
        verification_error=None,
        charge_outcome="succeeds",
        description="Visa; verifies and every charge succeeds.",
    ),
    "pm_card_mastercard": SandboxPaymentMethod(
        brand="mastercard",
        last4="4444",
        exp_month=12,
        exp_year=2034,
        verification_error=None,
        charge_outcome="succeeds",
        description="Mastercard; verifies and every charge succeeds.",
    ),
    "pm_card_amex": SandboxPaymentMethod(
        brand="amex",
        last4="8431",
        exp_month=12,
        exp_year=2034,
        verification_error=None,
        charge_outcome="succeeds",
        description="American Express; verifies and every charge succeeds.",
    ),
    "pm_card_chargeDeclined": SandboxPaymentMethod(
        brand="visa",
        last4="0002",
        exp_month=12,
        exp_year=2034,
        verification_error=None,
        charge_outcome="card_declined",
        description="Visa; verifies, but every charge is declined (card_declined).",
    ),
    "pm_card_insufficientFunds": SandboxPaymentMethod(
        brand="visa",
        last4="9995",
        exp_month=12,
        exp_year=2034,
        verification_error=None,
        charge_outcome="insufficient_funds",
        description="Visa; verifies, but every charge fails with insufficient funds.",
    ),
    "pm_card_expired": SandboxPaymentMethod(
        brand="visa",
        last4="0069",
        exp_month=12,
        exp_year=2034,
        verification_error="expired_card",
        charge_outcome="card_declined",
        description="Visa; verification fails: the card has expired (expired_card).",
    ),
    "pm_card_timeout": SandboxPaymentMethod(
        brand="visa",
        last4="0341",
        exp_month=12,
        exp_year=2034,
        verification_error=None,
        charge_outcome="timeout",
        description="Visa; verifies, but every charge times out (outcome unknown).",
    ),
}

_VERIFICATION_MESSAGES: dict[str, str] = {
    "expired_card": "Your card has expired.",
}


class SandboxGateway:
    """Deterministic gateway for development, demos and tests. See ``SANDBOX_PAYMENT_METHODS``."""

    name = "sandbox"

    async def create_customer(self, *, account_id: UUID, email: str, name: str | None) -> str:
        return f"cus_sandbox_{account_id.hex}"

    async def attach_payment_method(self, *, token: str, customer_id: str | None) -> CardDetails:
        pm = SANDBOX_PAYMENT_METHODS.get(token)
        if pm is None:
            valid = ", ".join(SANDBOX_PAYMENT_METHODS)
            raise PaymentMethodDeclined(
                "invalid_token",
                f"Unknown sandbox payment method token {token!r}. Valid test tokens: {valid}.",
            )
        if pm.verification_error is not None:
            raise PaymentMethodDeclined(
                pm.verification_error,
                _VERIFICATION_MESSAGES.get(pm.verification_error, "The card was declined."),
            )
        return CardDetails(
            gateway_payment_method_id=token,
            brand=pm.brand,
            last4=pm.last4,
            exp_month=pm.exp_month,
            exp_year=pm.exp_year,
        )

    async def aclose(self) -> None:
        return None
