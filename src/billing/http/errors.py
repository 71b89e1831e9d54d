"""RFC 9457 problem+json for every error, and the one table that maps domain codes to statuses.

Domain code raises `DomainError` subclasses (a stable `code`, no HTTP status); this module is
the only place that knows which status each code gets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

import orjson
from starlette.responses import Response
from starlette.types import Send

PROBLEM_CONTENT_TYPE = "application/problem+json"

# code -> (status, title). Documented in OpenAPI and the README.
ERROR_CODES: dict[str, tuple[int, str]] = {
    "malformed_request": (400, "Malformed request"),
    "unauthenticated": (401, "Authentication required"),
    "forbidden": (403, "Permission denied"),
    "not_found": (404, "Not found"),
    "method_not_allowed": (405, "Method not allowed"),
    "conflict": (409, "Conflict"),
    "invalid_state": (409, "Invalid state for this operation"),
    "idempotency_key_in_use": (409, "Idempotency key in use"),
    "payload_too_large": (413, "Payload too large"),
    "unsupported_media_type": (415, "Unsupported media type"),
    "payment_method_declined": (402, "Payment method declined"),
    "validation_error": (422, "Validation failed"),
    "idempotency_key_reused": (422, "Idempotency key reused"),
    "rate_limited": (429, "Too many requests"),
    "internal_error": (500, "Internal server error"),
    "service_unavailable": (503, "Service unavailable"),
    "gateway_error": (502, "Payment gateway error"),
    "gateway_unavailable": (503, "Payment gateway unavailable"),
}


class DomainError(Exception):
    """A failure the client can act on. `code` is stable and machine-readable."""

    code = "conflict"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        param: str | None = None,
        extra: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = dict(headers or {})
        if code is not None:
            self.code = code
        self.param = param
        self.extra = dict(extra or {})


class NotFound(DomainError):
    code = "not_found"


class Conflict(DomainError):
    code = "conflict"


class InvalidState(DomainError):
    code = "invalid_state"


class ValidationFailed(DomainError):
    """Input that parses but breaks a rule (the field is named in `param`)."""

    code = "validation_error"

    def __init__(self, detail: str, *, param: str, **kwargs: Any) -> None:
        extra = {"errors": [{"field": param, "message": detail}]}
        super().__init__(detail, param=param, extra=extra | kwargs.pop("extra", {}), **kwargs)


def status_for(code: str) -> int:
    return ERROR_CODES.get(code, (400, ""))[0]


def problem_body(
    *,
    code: str,
    detail: str,
    status: int | None = None,
    param: str | None = None,
    errors: Sequence[Mapping[str, Any]] | None = None,
    request_id: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    status = status or status_for(code)
    title = ERROR_CODES.get(code, (status, HTTPStatus(status).phrase))[1]
    body: dict[str, Any] = {
        "type": f"https://billing.dev/problems/{code.replace('_', '-')}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if param is not None:
        body["param"] = param
    if errors is not None:
        body["errors"] = list(errors)
    if extra:
        body.update({k: v for k, v in extra.items() if k not in body})
    if request_id is not None:
        body["request_id"] = request_id
    return body


def problem_response(*, headers: Mapping[str, str] | None = None, **kwargs: Any) -> Response:
    body = problem_body(**kwargs)
    return Response(
        content=orjson.dumps(body),
        status_code=body["status"],
        media_type=PROBLEM_CONTENT_TYPE,
        headers=dict(headers or {}),
    )


async def send_problem(
    send: Send, body: dict[str, Any], *, headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    """Send a `problem_body` as a whole ASGI response (for middleware, below the routes)."""
    payload = orjson.dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": body["status"],
            "headers": [
                (b"content-type", PROBLEM_CONTENT_TYPE.encode()),
                (b"content-length", str(len(payload)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
