"""A local, Stripe-shaped HTTP server for tests: the real ``stripe`` SDK talks to it over HTTP.

    with StripeFake() as fake:
        gateway = StripeGateway(api_key=fake.api_key, api_base=fake.url)
        ...
        assert fake.requests[-1].params["metadata"] == {"account_id": "..."}

It speaks Stripe's v1 protocol closely enough for the SDK not to notice:

* form-encoded request bodies with nested keys (``metadata[account_id]=...``,
  ``expand[0]=...``), decoded into nested dicts and lists;
* ``Authorization: Bearer <secret key>``; a missing or wrong key gets Stripe's 401;
* JSON objects shaped like Stripe's (``object``, ``id``, ``created``, ``livemode``, ...), the
  shapes taken from Stripe's published OpenAPI fixtures;
* Stripe's error body ``{"error": {"type", "code", "message", "param", ...}}`` with Stripe's
  statuses: 402 card errors, 400/404 invalid requests, 401 authentication, 500 api errors;
* the ``Idempotency-Key`` header: the same key with the same method, path and parameters
  replays the first response (with ``Idempotent-Replayed: true``); the same key with anything
  different gets a 400 ``idempotency_error``. As on Stripe, a response is only stored once an
  endpoint ran: authentication failures and injected faults are not stored.

Every request is recorded (``fake.requests``), and faults can be injected:
``fake.fail_next(n, status=500)`` answers the next n requests with an error without running
them, ``fake.hang_next(n, seconds=...)`` runs the next n requests and then holds the response
for ``seconds`` (longer than the client's timeout: the work is done but the client never
learns it, which is exactly the "outcome unknown" case).

Adding an endpoint (payment_intents, refunds, tax calculations, ...) is adding a function
decorated with ``@route("POST", r"/v1/payment_intents")`` that takes ``(fake, call)`` and
returns the JSON object, or raises ``StripeAPIError``; state lives in ``fake.objects(kind)``.

Test payment methods (Stripe's magic ``pm_card_*`` tokens): attaching one creates a new
PaymentMethod with a fresh ``pm_...`` id on the customer, as Stripe does. Declining tokens
fail the attach itself, because Stripe validates a card when it is attached to a customer:
``pm_card_chargeDeclined`` -> 402 ``card_declined`` (decline_code ``generic_decline``);
``pm_card_chargeDeclinedExpiredCard`` and its alias ``pm_card_expired`` -> 402
``expired_card`` (param ``exp_month``). ``pm_card_chargeCustomerFail`` attaches fine (it is
Stripe's card that only fails when charged).
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import socket
import socketserver
import string
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

JSONObject = dict[str, Any]

DEFAULT_API_KEY = "sk_test_fake_4eC39HqLyjWDarjtT1zdp7dc"
STRIPE_VERSION = "2025-09-30.clover"


# --------------------------------------------------------------------------- errors


class StripeAPIError(Exception):
    """Raised by a handler to answer with Stripe's error body."""

    def __init__(
        self,
        status: int,
        type: str,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        decline_code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type
        self.message = message
        self.code = code
        self.param = param
        self.decline_code = decline_code

    def body(self, request_id: str) -> JSONObject:
        error: JSONObject = {"type": self.type, "message": self.message}
        if self.code is not None:
            error["code"] = self.code
            error["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        if self.param is not None:
            error["param"] = self.param
        if self.decline_code is not None:
            error["decline_code"] = self.decline_code
        error["request_log_url"] = f"https://dashboard.stripe.com/test/logs/{request_id}"
        return {"error": error}


def no_such(kind: str, object_id: str, *, param: str, status: int = 400) -> StripeAPIError:
    return StripeAPIError(
        status,
        "invalid_request_error",
        f"No such {kind}: '{object_id}'",
        code="resource_missing",
        param=param,
    )


def _fault_error(status: int) -> StripeAPIError:
    if status == 429:
        return StripeAPIError(
            429,
            "invalid_request_error",
            "Request rate limit exceeded. Learn more about rate limits here "
            "https://stripe.com/docs/rate-limits.",
            code="rate_limit",
        )
    if status >= 500:
        return StripeAPIError(status, "api_error", "An unknown error occurred")
    return StripeAPIError(status, "invalid_request_error", f"Injected fault ({status})")


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it."""

    method: str
    path: str
    params: JSONObject  # decoded form body (POST) or query string (GET), nested
    headers: dict[str, str]  # names lower-cased
    body: str

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @property
    def idempotency_key(self) -> str | None:
        return self.header("Idempotency-Key")


@dataclass(frozen=True)
class Call:
    """What a handler gets: the request plus the groups matched in the path."""

    request: RecordedRequest
    path_args: tuple[str, ...]

    @property
    def params(self) -> JSONObject:
        return self.request.params


Handler = Callable[["StripeFake", Call], JSONObject]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler


ROUTES: list[Route] = []


def route(method: str, path_regex: str) -> Callable[[Handler], Handler]:
    """Register a handler for ``method`` and a path regex (groups become ``call.path_args``)."""

    def register(handler: Handler) -> Handler:
        ROUTES.append(Route(method.upper(), re.compile(path_regex + r"\Z"), handler))
        return handler

    return register


def decode_form(pairs: list[tuple[str, str]]) -> JSONObject:
    """Decode Stripe's form encoding: ``a[b][0]=x`` -> ``{"a": {"b": ["x"]}}``."""
    root: JSONObject = {}
    for key, value in pairs:
        head, _, rest = key.partition("[")
        parts = [head] + (rest[:-1].split("][") if rest.endswith("]") else [])
        node = root
        for i, part in enumerate(parts):
            name = part if part else str(len(node))  # "a[]" appends
            if i == len(parts) - 1:
                node[name] = value
            else:
                node = node.setdefault(name, {})
    return {name: _lists_from_indexed_dicts(value) for name, value in root.items()}


def _lists_from_indexed_dicts(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    converted = {k: _lists_from_indexed_dicts(v) for k, v in value.items()}
    if converted and all(k.isdigit() for k in converted):
        return [converted[k] for k in sorted(converted, key=int)]
    return converted


def new_id(prefix: str, length: int = 14) -> str:
    alphabet = string.ascii_letters + string.digits
    return prefix + "".join(secrets.choice(alphabet) for _ in range(length))


def _check_params(call: Call, allowed: set[str]) -> None:
    for name in call.params:
        if name not in allowed:
            raise StripeAPIError(
                400,
                "invalid_request_error",
                f"Received unknown parameter: {name}",
                code="parameter_unknown",
                param=name,
            )


# --------------------------------------------------------------------------- the server


@dataclass
class _Idempotent:
    method: str
    path: str
    params: JSONObject
    status: int
    body: JSONObject
    request_id: str


@dataclass
class _Faults:
    fail: list[int] = field(default_factory=list)  # statuses of the next failing requests
    hang: list[float] = field(default_factory=list)  # delays of the next slow responses


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins the handler threads: a clean shutdown
    block_on_close = True
    fake: StripeFake

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name (socket.getfqdn), which can be slow.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out and closed the connection is expected, not an error.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's connection pool expects
    server: _Server

    def setup(self) -> None:
        super().setup()
        fake = self.server.fake
        with fake._lock:
            fake._connections.add(self.connection)
        if fake._stopping.is_set():  # accepted while stop() was closing the connections
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

    def finish(self) -> None:
        with self.server.fake._lock:
            self.server.fake._connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        raw = body if self.command == "POST" else split.query
        request = RecordedRequest(
            method=self.command,
            path=split.path,
            params=decode_form(parse_qsl(raw, keep_blank_values=True)),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        status, payload, headers, delay = self.server.fake._handle(request)
        if delay and self.server.fake._stopping.wait(delay):
            return  # shutting down: drop the response
        data = json.dumps(payload, indent=2).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


class StripeFake:
    """A Stripe-shaped HTTP server on 127.0.0.1 (ephemeral port), run in a background thread."""

    def __init__(self, *, api_key: str = DEFAULT_API_KEY) -> None:
        self.api_key = api_key
        self._lock = threading.RLock()
        self._requests: list[RecordedRequest] = []
        self._objects: dict[str, dict[str, JSONObject]] = {}
        self._idempotency: dict[str, _Idempotent] = {}  # by Idempotency-Key
        self._faults = _Faults()
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError("StripeFake is already running")
        server = _Server(("127.0.0.1", 0), _RequestHandler)
        server.fake = self
        self._server = server
        self._stopping.clear()
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._stopping.set()  # wakes handlers held by hang_next()
        server.shutdown()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:  # wakes the handlers waiting on keep-alive connections
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        server.server_close()  # joins the handler threads
        thread.join()
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The API base to give the SDK (``base_addresses={"api": fake.url}``)."""
        if self._server is None:
            raise RuntimeError("StripeFake is not running")
        return f"http://127.0.0.1:{self._server.server_port}"

    # -- inspection

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first (a copy)."""
        with self._lock:
            return list(self._requests)

    def requests_to(self, method: str, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == method.upper() and r.path == path]

    def objects(self, kind: str) -> dict[str, JSONObject]:
        """The stored objects of one kind ("customer", "payment_method", ...), by id (a copy)."""
        with self._lock:
            return dict(self._objects.get(kind, {}))

    @property
    def customers(self) -> dict[str, JSONObject]:
        return self.objects("customer")

    @property
    def payment_methods(self) -> dict[str, JSONObject]:
        return self.objects("payment_method")

    def reset(self) -> None:
        """Forget every request, object, idempotency key and pending fault."""
        with self._lock:
            self._requests.clear()
            self._objects.clear()
            self._idempotency.clear()
            self._faults = _Faults()

    # -- fault injection

    def fail_next(self, count: int = 1, *, status: int = 500) -> None:
        """Answer the next ``count`` requests with ``status`` (Stripe's error body) unrun."""
        with self._lock:
            self._faults.fail.extend([status] * count)

    def hang_next(self, count: int = 1, *, seconds: float = 2.0) -> None:
        """Run the next ``count`` requests but hold each response for ``seconds``."""
        with self._lock:
            self._faults.hang.extend([seconds] * count)

    # -- state for handlers

    def store(self, obj: JSONObject) -> JSONObject:
        with self._lock:
            self._objects.setdefault(str(obj["object"]), {})[str(obj["id"])] = obj
        return obj

    def get(self, kind: str, object_id: str) -> JSONObject | None:
        with self._lock:
            return self._objects.get(kind, {}).get(object_id)

    # -- request processing (runs in the handler threads)

    def _handle(self, request: RecordedRequest) -> tuple[int, JSONObject, dict[str, str], float]:
        request_id = new_id("req_")
        headers = {
            "Request-Id": request_id,
            "Stripe-Version": request.header("Stripe-Version") or STRIPE_VERSION,
        }
        with self._lock:
            self._requests.append(request)
            fail = self._faults.fail.pop(0) if self._faults.fail else None
            delay = self._faults.hang.pop(0) if self._faults.hang else 0.0
        if fail is not None:
            return fail, _fault_error(fail).body(request_id), headers, delay

        auth_error = self._authenticate(request)
        if auth_error is not None:
            return 401, auth_error.body(request_id), headers, delay

        key = request.idempotency_key if request.method == "POST" else None
        if key is not None:
            headers["Idempotency-Key"] = key
        with self._lock:  # one request at a time past this point: a consistent store
            if key is not None:
                previous = self._idempotency.get(key)
                if previous is not None:
                    same = (previous.method, previous.path, previous.params) == (
                        request.method,
                        request.path,
                        request.params,
                    )
                    if not same:
                        err = StripeAPIError(
                            400,
                            "idempotency_error",
                            "Keys for idempotent requests can only be used with the same "
                            "parameters they were first used with. Try using a key other than "
                            f"'{key}' if you meant to execute a different request.",
                        )
                        return 400, err.body(request_id), headers, delay
                    headers["Idempotent-Replayed"] = "true"
                    headers["Original-Request"] = previous.request_id
                    return previous.status, previous.body, headers, delay
            status, body = self._route(request, request_id)
            if key is not None:
                self._idempotency[key] = _Idempotent(
                    method=request.method,
                    path=request.path,
                    params=request.params,
                    status=status,
                    body=body,
                    request_id=request_id,
                )
        return status, body, headers, delay

    def _authenticate(self, request: RecordedRequest) -> StripeAPIError | None:
        authorization = request.header("Authorization") or ""
        scheme, _, key = authorization.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return StripeAPIError(
                401,
                "invalid_request_error",
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
                "YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, "
                "or we can help at https://support.stripe.com/.",
            )
        if not secrets.compare_digest(key.strip(), self.api_key):
            return StripeAPIError(
                401,
                "invalid_request_error",
                f"Invalid API Key provided: {_redact(key.strip())}",
            )
        return None

    def _route(self, request: RecordedRequest, request_id: str) -> tuple[int, JSONObject]:
        for r in ROUTES:
            match = r.pattern.match(request.path)
            if match is not None and r.method == request.method:
                try:
                    return 200, r.handler(self, Call(request, match.groups()))
                except StripeAPIError as err:
                    return err.status, err.body(request_id)
                except Exception as exc:  # a bug in the fake: say so instead of hanging up
                    crash = StripeAPIError(500, "api_error", f"StripeFake handler crashed: {exc!r}")
                    return 500, crash.body(request_id)
        not_found = StripeAPIError(
            404,
            "invalid_request_error",
            f"Unrecognized request URL ({request.method}: {request.path}). Please see "
            "https://stripe.com/docs or we can help at https://support.stripe.com/.",
        )
        return 404, not_found.body(request_id)


def _redact(key: str) -> str:
    prefix = key[:8] if key.startswith(("sk_", "rk_")) else ""
    return f"{prefix}{'*' * 12}{key[-4:]}"


# --------------------------------------------------------------------------- objects


def now() -> int:
    return int(time.time())


def customer_object(params: JSONObject) -> JSONObject:
    return {
        "id": new_id("cus_"),
        "object": "customer",
        "address": None,
        "balance": 0,
        "created": now(),
        "currency": None,
        "customer_account": None,
        "default_source": None,
        "delinquent": False,
        "description": params.get("description"),
        "discount": None,
        "email": params.get("email"),
        "invoice_prefix": secrets.token_hex(4).upper(),
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        "livemode": False,
        "metadata": dict(params.get("metadata") or {}),
        "name": params.get("name"),
        "next_invoice_sequence": 1,
        "phone": params.get("phone"),
        "preferred_locales": list(params.get("preferred_locales") or []),
        "shipping": None,
        "tax_exempt": params.get("tax_exempt", "none"),
        "test_clock": None,
    }


@dataclass(frozen=True)
class FakeCard:
    """What one of Stripe's test PaymentMethod tokens stands for, and what attaching it does."""

    brand: str
    last4: str
    attach_error: Callable[[], StripeAPIError] | None = None
    exp_month: int = 12
    exp_year: int = 2034
    funding: str = "credit"
    country: str = "US"


def _expired_card() -> StripeAPIError:
    return StripeAPIError(
        402,
        "card_error",
        "Your card has expired.",
        code="expired_card",
        param="exp_month",
        decline_code="expired_card",
    )


def _card_declined() -> StripeAPIError:
    return StripeAPIError(
        402,
        "card_error",
        "Your card was declined.",
        code="card_declined",
        decline_code="generic_decline",
    )


TEST_CARDS: dict[str, FakeCard] = {
    "pm_card_visa": FakeCard("visa", "4242"),
    "pm_card_mastercard": FakeCard("mastercard", "4444"),
    "pm_card_amex": FakeCard("amex", "8431"),
    "pm_card_chargeCustomerFail": FakeCard("visa", "0341"),
    "pm_card_chargeDeclined": FakeCard("visa", "0002", _card_declined),
    "pm_card_chargeDeclinedExpiredCard": FakeCard("visa", "0069", _expired_card),
    "pm_card_expired": FakeCard("visa", "0069", _expired_card),
}


def payment_method_object(card: FakeCard, *, customer: str | None) -> JSONObject:
    return {
        "id": new_id("pm_1", 23),
        "object": "payment_method",
        "allow_redisplay": "unspecified",
        "billing_details": {
            "address": {
                "city": None,
                "country": None,
                "line1": None,
                "line2": None,
                "postal_code": None,
                "state": None,
            },
            "email": None,
            "name": None,
            "phone": None,
            "tax_id": None,
        },
        "card": {
            "brand": card.brand,
            "checks": {
                "address_line1_check": None,
                "address_postal_code_check": None,
                "cvc_check": None,
            },
            "country": card.country,
            "display_brand": card.brand,
            "exp_month": card.exp_month,
            "exp_year": card.exp_year,
            "fingerprint": new_id("", 16),
            "funding": card.funding,
            "generated_from": None,
            "last4": card.last4,
            "networks": {"available": [card.brand], "preferred": None},
            "regulated_status": "unregulated",
            "three_d_secure_usage": {"supported": True},
            "wallet": None,
        },
        "created": now(),
        "customer": customer,
        "customer_account": None,
        "livemode": False,
        "metadata": {},
        "type": "card",
    }


# --------------------------------------------------------------------------- endpoints

_CUSTOMER_CREATE_PARAMS = {
    "address",
    "description",
    "email",
    "expand",
    "invoice_settings",
    "metadata",
    "name",
    "phone",
    "preferred_locales",
    "tax_exempt",
}


@route("POST", r"/v1/customers")
def create_customer(fake: StripeFake, call: Call) -> JSONObject:
    _check_params(call, _CUSTOMER_CREATE_PARAMS)
    return fake.store(customer_object(call.params))


@route("GET", r"/v1/customers/([^/]+)")
def retrieve_customer(fake: StripeFake, call: Call) -> JSONObject:
    (customer_id,) = call.path_args
    customer = fake.get("customer", customer_id)
    if customer is None:
        raise no_such("customer", customer_id, param="id", status=404)
    return customer


@route("POST", r"/v1/payment_methods/([^/]+)/attach")
def attach_payment_method(fake: StripeFake, call: Call) -> JSONObject:
    (pm_id,) = call.path_args
    _check_params(call, {"customer", "expand"})
    customer_id = call.params.get("customer")
    if not customer_id:
        raise StripeAPIError(
            400,
            "invalid_request_error",
            "Missing required param: customer.",
            code="parameter_missing",
            param="customer",
        )
    if fake.get("customer", customer_id) is None:
        raise no_such("customer", customer_id, param="customer")
    stored = fake.get("payment_method", pm_id)
    if stored is not None:
        return fake.store({**stored, "customer": customer_id})
    card = TEST_CARDS.get(pm_id)
    if card is None:
        raise no_such("PaymentMethod", pm_id, param="payment_method")
    if card.attach_error is not None:
        raise card.attach_error()
    attached = fake.store(payment_method_object(card, customer=customer_id))
    fake.store({"object": "_pm_token", "id": attached["id"], "token": pm_id})
    return attached


# Cards that attach fine but fail when charged, with Stripe's decline code.
CHARGE_DECLINES: dict[str, str] = {"pm_card_chargeCustomerFail": "card_declined"}


def _card_token(fake: StripeFake, pm_id: str) -> str:
    """The test token a PaymentMethod was made from (or the token itself, as Stripe allows)."""
    token = fake.get("_pm_token", pm_id)
    return str(token["token"]) if token is not None else pm_id


def payment_intent_object(params: JSONObject) -> JSONObject:
    return {
        "id": new_id("pi_3", 21),
        "object": "payment_intent",
        "amount": int(params["amount"]),
        "amount_received": 0,
        "currency": params["currency"],
        "customer": params.get("customer"),
        "payment_method": params.get("payment_method"),
        "confirm": params.get("confirm") == "true",
        "off_session": params.get("off_session") == "true",
        "metadata": dict(params.get("metadata") or {}),
        "status": "requires_confirmation",
        "last_payment_error": None,
        "latest_charge": None,
        "created": now(),
        "livemode": False,
    }


@route("POST", r"/v1/payment_intents")
def create_payment_intent(fake: StripeFake, call: Call) -> JSONObject:
    _check_params(
        call,
        {"amount", "currency", "customer", "payment_method", "confirm", "off_session", "metadata"},
    )
    intent = payment_intent_object(call.params)
    pm_id = str(intent["payment_method"])
    token = _card_token(fake, pm_id)
    if token not in TEST_CARDS and fake.get("payment_method", pm_id) is None:
        raise no_such("PaymentMethod", pm_id, param="payment_method")
    decline = CHARGE_DECLINES.get(token)
    if decline is not None:
        intent["status"] = "requires_payment_method"
        error = {
            "type": "card_error",
            "code": "card_declined",
            "decline_code": decline,
            "message": "Your card was declined.",
        }
        intent["last_payment_error"] = error
        fake.store(intent)
        raise _intent_declined(intent)
    intent["status"] = "succeeded"
    intent["amount_received"] = intent["amount"]
    intent["latest_charge"] = new_id("ch_3", 21)
    return fake.store(intent)


class _IntentDeclined(StripeAPIError):
    def __init__(self, intent: JSONObject) -> None:
        super().__init__(
            402,
            "card_error",
            "Your card was declined.",
            code="card_declined",
            decline_code=str(intent["last_payment_error"]["decline_code"]),
        )
        self.intent = intent

    def body(self, request_id: str) -> JSONObject:
        body = super().body(request_id)
        body["error"]["payment_intent"] = self.intent
        return body


def _intent_declined(intent: JSONObject) -> StripeAPIError:
    return _IntentDeclined(intent)


@route("GET", r"/v1/payment_intents/search")
def search_payment_intents(fake: StripeFake, call: Call) -> JSONObject:
    match = re.fullmatch(r"metadata\['(\w+)'\]:'([^']*)'", str(call.params.get("query", "")))
    if match is None:
        raise StripeAPIError(400, "invalid_request_error", "Unsupported search query.")
    key, value = match.groups()
    found = [i for i in fake.objects("payment_intent").values() if i["metadata"].get(key) == value]
    return {
        "object": "search_result",
        "data": found,
        "has_more": False,
        "next_page": None,
        "url": "/v1/payment_intents/search",
    }


@route("GET", r"/v1/payment_intents/([^/]+)")
def retrieve_payment_intent(fake: StripeFake, call: Call) -> JSONObject:
    (intent_id,) = call.path_args
    intent = fake.get("payment_intent", intent_id)
    if intent is None:
        raise no_such("payment_intent", intent_id, param="intent", status=404)
    return intent


@route("POST", r"/v1/refunds")
def create_refund(fake: StripeFake, call: Call) -> JSONObject:
    _check_params(call, {"payment_intent", "amount", "reason", "metadata"})
    intent_id = str(call.params.get("payment_intent"))
    intent = fake.get("payment_intent", intent_id)
    if intent is None or intent["status"] != "succeeded":
        raise no_such("payment_intent", intent_id, param="payment_intent")
    amount = int(str(call.params.get("amount", intent["amount"])))
    refunded = sum(
        r["amount"] for r in fake.objects("refund").values() if r["payment_intent"] == intent_id
    )
    if amount > intent["amount"] - refunded:
        raise StripeAPIError(
            400,
            "invalid_request_error",
            "Refund amount is greater than unrefunded amount on charge.",
            code="amount_too_large",
            param="amount",
        )
    return fake.store(
        {
            "id": new_id("re_3", 21),
            "object": "refund",
            "amount": amount,
            "currency": intent["currency"],
            "payment_intent": intent_id,
            "charge": intent["latest_charge"],
            "status": "succeeded",
            "failure_reason": None,
            "metadata": {},
            "created": now(),
        }
    )


# --------------------------------------------------------------------------- tax

# Rates the fake's Stripe Tax knows, by (country, state or None): (tax type, display name,
# percentage). Tests may add to ``fake.tax_rates``; a state's entry wins over its country's.
DEFAULT_TAX_RATES: dict[tuple[str, str | None], tuple[str, str, str]] = {
    ("DE", None): ("vat", "VAT", "19.0"),
    ("FR", None): ("vat", "TVA", "20.0"),
    ("US", "CA"): ("sales_tax", "Sales Tax", "7.25"),
}

_TAX_CALCULATION_PARAMS = {
    "currency",
    "customer",
    "customer_details",
    "line_items",
    "expand",
    "shipping_cost",
    "tax_date",
}


def _tax_rates(fake: StripeFake) -> dict[tuple[str, str | None], tuple[str, str, str]]:
    rates = getattr(fake, "tax_rates", None)
    return DEFAULT_TAX_RATES if rates is None else rates


def _half_up(amount: int, percentage: str) -> int:
    from decimal import ROUND_HALF_UP, Decimal

    exact = Decimal(amount) * Decimal(percentage) / 100
    return int(exact.to_integral_value(rounding=ROUND_HALF_UP))


@route("POST", r"/v1/tax/calculations")
def create_tax_calculation(fake: StripeFake, call: Call) -> JSONObject:
    """Stripe Tax, simplified: one rate per location, exclusive amounts, per-line rounding.

    ``taxability_override`` ``customer_exempt`` and ``reverse_charge`` give 0 tax with that
    taxability reason, as Stripe does.
    """
    _check_params(call, _TAX_CALCULATION_PARAMS)
    params = call.params
    for name in ("currency", "line_items"):
        if not params.get(name):
            raise StripeAPIError(
                400,
                "invalid_request_error",
                f"Missing required param: {name}.",
                code="parameter_missing",
                param=name,
            )
    details = params.get("customer_details") or {}
    address = details.get("address") or {}
    country, state = address.get("country"), address.get("state") or None
    if not country:
        raise StripeAPIError(
            400,
            "invalid_request_error",
            "Missing required param: customer_details[address][country].",
            code="parameter_missing",
            param="customer_details[address][country]",
        )
    override = details.get("taxability_override", "none")
    rates = _tax_rates(fake)
    found = rates.get((country, state)) or rates.get((country, None))
    calc_id = new_id("taxcalc_")
    items = []
    total_tax = 0
    total = 0
    for index, line in enumerate(params["line_items"]):
        amount = int(line["amount"])
        if amount < 0:
            raise StripeAPIError(
                400,
                "invalid_request_error",
                "This value must be greater than or equal to 0.",
                param=f"line_items[{index}][amount]",
            )
        if override in ("customer_exempt", "reverse_charge"):
            reason, tax, rate = override, 0, None
        elif found is None:
            reason, tax, rate = "not_collecting", 0, None
        else:
            reason, tax, rate = "standard_rated", _half_up(amount, found[2]), found
        total += amount
        total_tax += tax
        items.append(
            {
                "id": new_id("tax_li_"),
                "object": "tax.calculation_line_item",
                "amount": amount,
                "amount_tax": tax,
                "livemode": False,
                "product": None,
                "quantity": 1,
                "reference": line.get("reference"),
                "tax_behavior": line.get("tax_behavior", "exclusive"),
                "tax_code": line.get("tax_code", "txcd_10000000"),
                "tax_breakdown": [
                    {
                        "amount": tax,
                        "jurisdiction": {
                            "country": country,
                            "display_name": country if state is None else f"{state}, {country}",
                            "level": "country" if state is None else "state",
                            "state": state,
                        },
                        "sourcing": "destination",
                        "tax_rate_details": None
                        if rate is None
                        else {
                            "display_name": rate[1],
                            "percentage_decimal": rate[2],
                            "tax_type": rate[0],
                        },
                        "taxability_reason": reason,
                        "taxable_amount": amount if rate is not None else 0,
                    }
                ],
            }
        )
    calc: JSONObject = {
        "id": calc_id,
        "object": "tax.calculation",
        "amount_total": total + total_tax,
        "currency": params["currency"],
        "customer": params.get("customer"),
        "customer_details": {
            "address": {
                "city": None,
                "country": country,
                "line1": None,
                "line2": None,
                "postal_code": None,
                "state": state,
            },
            "address_source": details.get("address_source", "billing"),
            "ip_address": None,
            "tax_ids": list(details.get("tax_ids") or []),
            "taxability_override": override,
        },
        "expires_at": now() + 90 * 24 * 3600,
        "livemode": False,
        "shipping_cost": None,
        "tax_amount_exclusive": total_tax,
        "tax_amount_inclusive": 0,
        "tax_breakdown": [],
        "tax_date": int(params.get("tax_date") or now()),
    }
    line_items = {
        "object": "list",
        "data": items,
        "has_more": False,
        "url": f"/v1/tax/calculations/{calc_id}/line_items",
    }
    if "line_items" in (params.get("expand") or []):
        calc["line_items"] = line_items
    else:
        calc["line_items"] = None
    return fake.store(calc)
