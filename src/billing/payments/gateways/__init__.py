"""Payment gateways: the ``PaymentGateway`` interface, its implementations and a factory.

``sandbox`` (the default) is deterministic and offline; ``stripe`` talks to Stripe through
the official SDK. Pick one with ``get_gateway(settings.payment_gateway, ...)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from billing.payments.gateways.base import (
    CardDetails,
    ChargeResult,
    GatewayError,
    GatewayUnavailable,
    PaymentGateway,
    PaymentMethodDeclined,
)
from billing.payments.gateways.sandbox import SANDBOX_PAYMENT_METHODS, SandboxGateway
from billing.payments.gateways.stripe import StripeGateway

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

GATEWAY_NAMES = ("sandbox", "stripe")

__all__ = [
    "GATEWAY_NAMES",
    "SANDBOX_PAYMENT_METHODS",
    "CardDetails",
    "ChargeResult",
    "GatewayError",
    "GatewayUnavailable",
    "PaymentGateway",
    "PaymentMethodDeclined",
    "SandboxGateway",
    "StripeGateway",
    "get_gateway",
]


def get_gateway(
    name: str,
    *,
    stripe_secret_key: str | None,
    stripe_api_base: str | None,
    engine: AsyncEngine | None = None,
) -> PaymentGateway:
    """Build the gateway called ``name`` ("sandbox" or "stripe").

    Raises ``ValueError`` for an unknown name, or for "stripe" without a secret key.
    The caller owns the gateway and should ``await gateway.aclose()`` on shutdown. The
    sandbox keeps its ledger of charges in ``engine``'s database (needed to charge).
    """
    if name == "sandbox":
        return SandboxGateway(engine=engine)
    if name == "stripe":
        if not stripe_secret_key:
            raise ValueError("payment gateway 'stripe' needs STRIPE_SECRET_KEY to be set")
        return StripeGateway(api_key=stripe_secret_key, api_base=stripe_api_base)
    raise ValueError(
        f"unknown payment gateway {name!r}; expected one of: {', '.join(GATEWAY_NAMES)}"
    )
