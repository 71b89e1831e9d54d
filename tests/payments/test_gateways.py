"""Payment gateways: the sandbox's test tokens, and the Stripe gateway against a local fake.

The Stripe gateway runs the official SDK over real HTTP against ``tests.stripe_server``;
nothing is mocked or patched.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Protocol

import httpx
import pytest

from billing.payments.gateways import (
    SANDBOX_PAYMENT_METHODS,
    CardDetails,
    GatewayError,
    GatewayUnavailable,
    PaymentMethodDeclined,
    SandboxGateway,
    StripeGateway,
    get_gateway,
)
from tests.stripe_server import StripeFake, decode_form

# The stripe SDK hands httpx its form body as a str (`data=`), which httpx deprecates.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Use 'content=<...>' to upload raw bytes/text content.:DeprecationWarning"
)

ACCOUNT_ID = uuid.UUID("0b7f3a1e-5c2d-4e8f-9a10-2b3c4d5e6f70")


# --------------------------------------------------------------------------- sandbox

# token, brand, last4, what a later charge does
SANDBOX_VERIFIES = [
    ("pm_card_visa", "visa", "4242", "succeeds"),
    ("pm_card_mastercard", "mastercard", "4444", "succeeds"),
    ("pm_card_amex", "amex", "8431", "succeeds"),
    ("pm_card_chargeDeclined", "visa", "0002", "card_declined"),
    ("pm_card_insufficientFunds", "visa", "9995", "insufficient_funds"),
    ("pm_card_timeout", "visa", "0341", "timeout"),
]

# token, PaymentMethodDeclined code at verification
SANDBOX_REJECTED = [
    ("pm_card_expired", "expired_card"),
    ("pm_card_unknown", "invalid_token"),
    ("PM_CARD_VISA", "invalid_token"),
    ("pm_card_chargeDeclinedExpiredCard", "invalid_token"),  # a Stripe token, not a sandbox one
    ("", "invalid_token"),
]


@pytest.mark.parametrize(("token", "brand", "last4", "charge_outcome"), SANDBOX_VERIFIES)
async def test_sandbox_token_verifies(
    token: str, brand: str, last4: str, charge_outcome: str
) -> None:
    gateway = SandboxGateway()

    card = await gateway.attach_payment_method(token=token, customer_id="cus_sandbox_x")

    assert card == CardDetails(
        gateway_payment_method_id=token, brand=brand, last4=last4, exp_month=12, exp_year=2034
    )
    assert SANDBOX_PAYMENT_METHODS[token].charge_outcome == charge_outcome


@pytest.mark.parametrize(("token", "code"), SANDBOX_REJECTED)
async def test_sandbox_token_is_rejected(token: str, code: str) -> None:
    with pytest.raises(PaymentMethodDeclined) as caught:
        await SandboxGateway().attach_payment_method(token=token, customer_id=None)

    assert caught.value.code == code
    assert caught.value.message


def test_every_sandbox_token_has_a_tested_outcome() -> None:
    tested = {row[0] for row in SANDBOX_VERIFIES} | {row[0] for row in SANDBOX_REJECTED}
    assert set(SANDBOX_PAYMENT_METHODS) <= tested


async def test_sandbox_unknown_token_lists_the_valid_tokens() -> None:
    with pytest.raises(PaymentMethodDeclined) as caught:
        await SandboxGateway().attach_payment_method(token="tok_visa", customer_id=None)

    assert "'tok_visa'" in caught.value.message
    for token in SANDBOX_PAYMENT_METHODS:
        assert token in caught.value.message


async def test_sandbox_customer_id_is_derived_from_the_account() -> None:
    gateway = SandboxGateway()

    first = await gateway.create_customer(account_id=ACCOUNT_ID, email="a@example.com", name="A")
    again = await gateway.create_customer(account_id=ACCOUNT_ID, email="b@example.com", name=None)

    assert first == again == "cus_sandbox_0b7f3a1e5c2d4e8f9a102b3c4d5e6f70"


# --------------------------------------------------------------------------- factory


async def test_factory_builds_the_sandbox() -> None:
    gateway = get_gateway("sandbox", stripe_secret_key=None, stripe_api_base=None)

    assert isinstance(gateway, SandboxGateway)
    assert gateway.name == "sandbox"
    await gateway.aclose()


async def test_factory_builds_a_working_stripe_gateway(fake: StripeFake) -> None:
    gateway = get_gateway("stripe", stripe_secret_key=fake.api_key, stripe_api_base=fake.url)
    try:
        assert isinstance(gateway, StripeGateway)
        assert gateway.name == "stripe"
        customer_id = await gateway.create_customer(
            account_id=ACCOUNT_ID, email="a@example.com", name=None
        )
        assert customer_id in fake.customers
    finally:
        await gateway.aclose()


def test_factory_needs_a_stripe_secret_key() -> None:
    with pytest.raises(ValueError, match="STRIPE_SECRET_KEY"):
        get_gateway("stripe", stripe_secret_key=None, stripe_api_base=None)


def test_factory_rejects_an_unknown_gateway() -> None:
    with pytest.raises(ValueError, match="'paypal'"):
        get_gateway("paypal", stripe_secret_key="sk_test_x", stripe_api_base=None)


# --------------------------------------------------------------------------- stripe


class GatewayFactory(Protocol):
    def __call__(
        self,
        *,
        api_key: str | None = None,
        api_base: str | None = None,
        timeout: float = 2.0,
        max_network_retries: int = 0,
    ) -> StripeGateway: ...


@pytest.fixture
async def make_gateway(fake: StripeFake) -> AsyncIterator[GatewayFactory]:
    made: list[StripeGateway] = []

    def make(
        *,
        api_key: str | None = None,
        api_base: str | None = None,
        timeout: float = 2.0,
        max_network_retries: int = 0,
    ) -> StripeGateway:
        gateway = StripeGateway(
            api_key=api_key or fake.api_key,
            api_base=api_base or fake.url,
            timeout=timeout,
            max_network_retries=max_network_retries,
        )
        made.append(gateway)
        return gateway

    yield make
    for gateway in made:
        await gateway.aclose()


@pytest.fixture
def gateway(make_gateway: GatewayFactory) -> StripeGateway:
    return make_gateway()


async def new_customer(gateway: StripeGateway) -> str:
    return await gateway.create_customer(
        account_id=uuid.uuid4(), email="billing@example.com", name="Example Inc."
    )


async def test_stripe_create_customer(fake: StripeFake, gateway: StripeGateway) -> None:
    customer_id = await gateway.create_customer(
        account_id=ACCOUNT_ID, email="billing@example.com", name="Example Inc."
    )

    assert customer_id.startswith("cus_")
    (request,) = fake.requests
    assert (request.method, request.path) == ("POST", "/v1/customers")
    assert request.params == {
        "email": "billing@example.com",
        "name": "Example Inc.",
        "metadata": {"account_id": str(ACCOUNT_ID)},
    }
    assert request.idempotency_key == f"customer-{ACCOUNT_ID}"
    assert request.header("Authorization") == f"Bearer {fake.api_key}"
    assert request.header("Content-Type") == "application/x-www-form-urlencoded"
    stored = fake.customers[customer_id]
    assert stored["object"] == "customer"
    assert stored["email"] == "billing@example.com"
    assert stored["livemode"] is False


async def test_stripe_create_customer_without_a_name(
    fake: StripeFake, gateway: StripeGateway
) -> None:
    customer_id = await gateway.create_customer(
        account_id=ACCOUNT_ID, email="billing@example.com", name=None
    )

    assert "name" not in fake.requests[0].params
    assert fake.customers[customer_id]["name"] is None


async def test_stripe_create_customer_twice_for_one_account_creates_one_customer(
    fake: StripeFake, gateway: StripeGateway
) -> None:
    first = await gateway.create_customer(account_id=ACCOUNT_ID, email="a@example.com", name="A")
    again = await gateway.create_customer(account_id=ACCOUNT_ID, email="a@example.com", name="A")
    other = await gateway.create_customer(account_id=uuid.uuid4(), email="a@example.com", name="A")

    assert again == first
    assert other != first
    assert set(fake.customers) == {first, other}


async def test_stripe_create_customer_retried_after_a_500_keeps_the_idempotency_key(
    fake: StripeFake, make_gateway: GatewayFactory
) -> None:
    gateway = make_gateway(max_network_retries=1)
    fake.fail_next(1, status=500)

    customer_id = await gateway.create_customer(
        account_id=ACCOUNT_ID, email="a@example.com", name=None
    )

    attempts = fake.requests_to("POST", "/v1/customers")
    assert len(attempts) == 2
    assert {r.idempotency_key for r in attempts} == {f"customer-{ACCOUNT_ID}"}
    assert list(fake.customers) == [customer_id]


async def test_stripe_create_customer_after_a_timeout_finds_the_customer_it_created(
    fake: StripeFake, make_gateway: GatewayFactory
) -> None:
    gateway = make_gateway(timeout=0.2)
    fake.hang_next(1, seconds=1.0)  # Stripe creates the customer, the response is too late

    with pytest.raises(GatewayUnavailable):
        await gateway.create_customer(account_id=ACCOUNT_ID, email="a@example.com", name=None)
    (created,) = fake.customers  # the outcome the client did not learn

    # The retry with an ordinary timeout: 0.2 s is too tight for a loaded machine.
    retry_gateway = make_gateway()
    retried = await retry_gateway.create_customer(
        account_id=ACCOUNT_ID, email="a@example.com", name=None
    )

    assert retried == created
    assert len(fake.customers) == 1


async def test_stripe_create_customer_with_changed_details_is_an_idempotency_error(
    gateway: StripeGateway,
) -> None:
    await gateway.create_customer(account_id=ACCOUNT_ID, email="a@example.com", name=None)

    with pytest.raises(GatewayError) as caught:
        await gateway.create_customer(account_id=ACCOUNT_ID, email="b@example.com", name=None)

    assert type(caught.value) is GatewayError
    assert caught.value.code == "idempotency_error"


@pytest.mark.parametrize(
    ("token", "brand", "last4"),
    [
        ("pm_card_visa", "visa", "4242"),
        ("pm_card_mastercard", "mastercard", "4444"),
        ("pm_card_amex", "amex", "8431"),
        ("pm_card_chargeCustomerFail", "visa", "0341"),
    ],
)
async def test_stripe_attach_returns_the_verified_card(
    fake: StripeFake, gateway: StripeGateway, token: str, brand: str, last4: str
) -> None:
    customer_id = await new_customer(gateway)

    card = await gateway.attach_payment_method(token=token, customer_id=customer_id)

    assert (card.brand, card.last4, card.exp_month, card.exp_year) == (brand, last4, 12, 2034)
    assert card.gateway_payment_method_id.startswith("pm_")
    assert card.gateway_payment_method_id != token  # Stripe makes a new PaymentMethod
    assert fake.payment_methods[card.gateway_payment_method_id]["customer"] == customer_id
    request = fake.requests[-1]
    assert (request.method, request.path) == ("POST", f"/v1/payment_methods/{token}/attach")
    assert request.params == {"customer": customer_id}


@pytest.mark.parametrize(
    ("token", "code"),
    [
        ("pm_card_expired", "expired_card"),
        ("pm_card_chargeDeclinedExpiredCard", "expired_card"),
        ("pm_card_chargeDeclined", "card_declined"),
        ("pm_card_doesNotExist", "resource_missing"),
    ],
)
async def test_stripe_attach_declined(
    fake: StripeFake, gateway: StripeGateway, token: str, code: str
) -> None:
    customer_id = await new_customer(gateway)

    with pytest.raises(PaymentMethodDeclined) as caught:
        await gateway.attach_payment_method(token=token, customer_id=customer_id)

    assert caught.value.code == code
    assert caught.value.message
    assert fake.payment_methods == {}


async def test_stripe_attach_to_an_unknown_customer_is_not_a_decline(
    gateway: StripeGateway,
) -> None:
    with pytest.raises(GatewayError) as caught:
        await gateway.attach_payment_method(token="pm_card_visa", customer_id="cus_missing")

    assert type(caught.value) is GatewayError
    assert caught.value.code == "resource_missing"


async def test_stripe_attach_needs_a_customer(fake: StripeFake, gateway: StripeGateway) -> None:
    with pytest.raises(ValueError, match="customer"):
        await gateway.attach_payment_method(token="pm_card_visa", customer_id=None)

    assert fake.requests == []


async def test_stripe_bad_api_key_is_a_gateway_error(
    fake: StripeFake, make_gateway: GatewayFactory
) -> None:
    gateway = make_gateway(api_key="sk_test_wrong")

    with pytest.raises(GatewayError) as caught:
        await gateway.create_customer(account_id=ACCOUNT_ID, email="a@example.com", name=None)

    assert type(caught.value) is GatewayError
    assert caught.value.code == "authentication_error"
    assert "Invalid API Key" in caught.value.message
    assert "sk_test_wrong" not in caught.value.message  # Stripe redacts the key
    assert fake.customers == {}


@pytest.mark.parametrize("status", [500, 502, 503, 429])
async def test_stripe_server_errors_are_unavailable(
    fake: StripeFake, gateway: StripeGateway, status: int
) -> None:
    fake.fail_next(1, status=status)

    with pytest.raises(GatewayUnavailable):
        await gateway.create_customer(account_id=ACCOUNT_ID, email="a@example.com", name=None)

    assert fake.customers == {}


async def test_stripe_persistent_500s_exhaust_the_retries(
    fake: StripeFake, make_gateway: GatewayFactory
) -> None:
    gateway = make_gateway(max_network_retries=1)
    customer_id = await new_customer(gateway)
    fake.fail_next(2, status=500)

    with pytest.raises(GatewayUnavailable):
        await gateway.attach_payment_method(token="pm_card_visa", customer_id=customer_id)

    attempts = fake.requests_to("POST", "/v1/payment_methods/pm_card_visa/attach")
    assert len(attempts) == 2
    assert len({r.idempotency_key for r in attempts}) == 1  # the SDK's key, reused


async def test_stripe_timeout_is_unavailable(
    fake: StripeFake, make_gateway: GatewayFactory
) -> None:
    gateway = make_gateway(timeout=0.2)
    customer_id = await new_customer(gateway)
    fake.hang_next(1, seconds=1.0)

    started = time.monotonic()
    with pytest.raises(GatewayUnavailable) as caught:
        await gateway.attach_payment_method(token="pm_card_visa", customer_id=customer_id)

    assert time.monotonic() - started < 1.0
    assert caught.value.code == "api_connection_error"


async def test_stripe_unreachable_is_unavailable(make_gateway: GatewayFactory) -> None:
    with StripeFake() as stopped:
        dead_url = stopped.url
    gateway = make_gateway(api_base=dead_url)

    with pytest.raises(GatewayUnavailable):
        await gateway.create_customer(account_id=ACCOUNT_ID, email="a@example.com", name=None)


# --------------------------------------------------------------------------- the fake itself


def test_fake_starts_and_stops_quickly() -> None:
    started = time.monotonic()
    with StripeFake() as server:
        assert server.url.startswith("http://127.0.0.1:")
    assert time.monotonic() - started < 1.0


def test_fake_rejects_a_missing_api_key(fake: StripeFake) -> None:
    response = httpx.post(f"{fake.url}/v1/customers", data={"email": "a@example.com"})

    assert response.status_code == 401
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert "did not provide an API key" in error["message"]
    assert response.headers["Request-Id"].startswith("req_")
    assert fake.customers == {}


def test_fake_replays_an_idempotent_request(fake: StripeFake) -> None:
    headers = {"Authorization": f"Bearer {fake.api_key}", "Idempotency-Key": "k1"}
    url = f"{fake.url}/v1/customers"

    first = httpx.post(url, data={"email": "a@example.com"}, headers=headers)
    replay = httpx.post(url, data={"email": "a@example.com"}, headers=headers)
    conflict = httpx.post(url, data={"email": "b@example.com"}, headers=headers)

    assert first.status_code == replay.status_code == 200
    assert replay.json() == first.json()
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.headers["Original-Request"] == first.headers["Request-Id"]
    assert conflict.status_code == 400
    assert conflict.json()["error"]["type"] == "idempotency_error"
    assert len(fake.customers) == 1


def test_fake_retrieves_customers_and_reports_missing_ones(fake: StripeFake) -> None:
    auth = {"Authorization": f"Bearer {fake.api_key}"}
    created = httpx.post(f"{fake.url}/v1/customers", data={"name": "A"}, headers=auth).json()

    found = httpx.get(f"{fake.url}/v1/customers/{created['id']}", headers=auth)
    missing = httpx.get(f"{fake.url}/v1/customers/cus_nope", headers=auth)
    unknown = httpx.post(f"{fake.url}/v1/widgets", headers=auth)
    bad_param = httpx.post(f"{fake.url}/v1/customers", data={"colour": "red"}, headers=auth)

    assert found.json() == created
    assert missing.status_code == 404
    assert missing.json()["error"] == {
        "type": "invalid_request_error",
        "code": "resource_missing",
        "doc_url": "https://stripe.com/docs/error-codes/resource-missing",
        "message": "No such customer: 'cus_nope'",
        "param": "id",
        "request_log_url": missing.json()["error"]["request_log_url"],
    }
    assert unknown.status_code == 404
    assert bad_param.status_code == 400
    assert bad_param.json()["error"]["code"] == "parameter_unknown"


def test_fake_card_error_shape(fake: StripeFake) -> None:
    auth = {"Authorization": f"Bearer {fake.api_key}"}
    customer = httpx.post(f"{fake.url}/v1/customers", headers=auth).json()

    response = httpx.post(
        f"{fake.url}/v1/payment_methods/pm_card_chargeDeclinedExpiredCard/attach",
        data={"customer": customer["id"]},
        headers=auth,
    )

    assert response.status_code == 402
    error = response.json()["error"]
    assert (error["type"], error["code"], error["decline_code"], error["param"]) == (
        "card_error",
        "expired_card",
        "expired_card",
        "exp_month",
    )


def test_decode_form_nests_stripe_keys() -> None:
    pairs = [
        ("email", "a@example.com"),
        ("metadata[account_id]", "42"),
        ("expand[0]", "customer"),
        ("expand[1]", "invoice"),
        ("items[0][price]", "price_1"),
        ("items[0][quantity]", "2"),
    ]

    assert decode_form(pairs) == {
        "email": "a@example.com",
        "metadata": {"account_id": "42"},
        "expand": ["customer", "invoice"],
        "items": [{"price": "price_1", "quantity": "2"}],
    }
