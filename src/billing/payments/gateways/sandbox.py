"""The built-in sandbox gateway: deterministic test payment methods, no network.

Modelled on Stripe's test cards: a front end (or an API client) sends one of the tokens in
``SANDBOX_PAYMENT_METHODS`` instead of a real card. Some tokens verify fine and only fail
later when they are charged, exactly as their Stripe counterparts do, so the whole
collection and dunning flow can be exercised without a Stripe account.

Charges and refunds are remembered in the ``sandbox_charges`` table, the simulated
processor's own ledger keyed by idempotency key (what Stripe keeps on its side): a second
charge with the same key replays the first answer, and after a crash or a timeout
``retrieve_charge`` tells whether the charge happened. ``pm_card_timeout`` charges succeed
in that ledger, but the call raises ``GatewayUnavailable``, as a lost response would.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from billing.payments.gateways.base import (
    CardDetails,
    ChargeResult,
    GatewayError,
    GatewayUnavailable,
    PaymentMethodDeclined,
)

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


_CHARGE_MESSAGES: dict[str, str] = {
    "card_declined": "Your card was declined.",
    "insufficient_funds": "Your card has insufficient funds.",
}

_INSERT = text(
    """
    INSERT INTO sandbox_charges (idempotency_key, kind, transaction_id, charge_transaction_id,
                                 payment_method, amount, currency, status, failure_code)
    VALUES (:key, :kind, :transaction_id, :charge_transaction_id, :payment_method, :amount,
            :currency, :status, :failure_code)
    ON CONFLICT (idempotency_key) DO NOTHING
    """
)
_SELECT = text(
    "SELECT kind, transaction_id, charge_transaction_id, payment_method, amount, currency, "
    "status, failure_code FROM sandbox_charges WHERE idempotency_key = :key"
)


class SandboxGateway:
    """Deterministic gateway for development, demos and tests. See ``SANDBOX_PAYMENT_METHODS``."""

    name = "sandbox"

    def __init__(self, *, engine: AsyncEngine | None = None) -> None:
        self._engine = engine

    def _ledger(self) -> AsyncEngine:
        if self._engine is None:
            raise GatewayError("sandbox_unconfigured", "the sandbox gateway needs a database")
        return self._engine

    async def _record(self, key: str, row: dict[str, Any]) -> Any:
        """Write a ledger row unless the key is known; return the row stored under the key."""
        async with self._ledger().begin() as conn:
            await conn.execute(_INSERT, {"key": key, **row})
            return (await conn.execute(_SELECT, {"key": key})).one()

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
        pm = SANDBOX_PAYMENT_METHODS.get(payment_method_id)
        outcome = "card_declined" if pm is None else pm.charge_outcome
        failure = None if outcome in ("succeeds", "timeout") else outcome
        stored = await self._record(
            idempotency_key,
            {
                "kind": "charge",
                "transaction_id": f"ch_sandbox_{uuid.uuid4().hex[:24]}",
                "charge_transaction_id": None,
                "payment_method": payment_method_id,
                "amount": amount,
                "currency": currency,
                "status": "failed" if failure else "succeeded",
                "failure_code": failure,
            },
        )
        if (stored.kind, stored.amount, stored.currency) != ("charge", amount, currency):
            raise GatewayError(
                "idempotency_error", f"idempotency key {idempotency_key} reused with other data"
            )
        if outcome == "timeout":
            raise GatewayUnavailable("timeout", "The sandbox card timed out (outcome unknown).")
        return _result(stored)

    async def retrieve_charge(
        self, *, idempotency_key: str, transaction_id: str | None
    ) -> ChargeResult | None:
        async with self._ledger().connect() as conn:
            stored = (await conn.execute(_SELECT, {"key": idempotency_key})).first()
        return None if stored is None else _result(stored)

    async def refund(
        self, *, transaction_id: str, amount: int, currency: str, idempotency_key: str
    ) -> ChargeResult:
        stored = await self._record(
            idempotency_key,
            {
                "kind": "refund",
                "transaction_id": f"re_sandbox_{uuid.uuid4().hex[:24]}",
                "charge_transaction_id": transaction_id,
                "payment_method": None,
                "amount": amount,
                "currency": currency,
                "status": "succeeded",
                "failure_code": None,
            },
        )
        return _result(stored)

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


def _result(stored: Any) -> ChargeResult:
    failure = stored.failure_code
    return ChargeResult(
        status="failed" if stored.status == "failed" else "succeeded",
        transaction_id=stored.transaction_id,
        failure_code=failure,
        failure_message=None if failure is None else _CHARGE_MESSAGES.get(failure, failure),
    )
