"""The outermost middleware: request id, access log, metrics, body limit, last-resort errors.

One pure-ASGI middleware instead of several keeps the per-request overhead small.
"""

from __future__ import annotations

import time
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from billing.http.context import finish_request, new_request_id, request_id_var, start_request
from billing.http.errors import problem_body, send_problem
from billing.observability.logging import get_logger
from billing.observability.metrics import API_ERRORS, API_REQUEST_DURATION, API_REQUESTS

log = get_logger("billing.http")


class BodyTooLarge(BaseException):
    """Raised from `receive`. A BaseException, so body parsers that turn any Exception into a
    generic 400 let it through to this middleware."""


class RequestMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        headers = dict(scope["headers"])
        request_id = new_request_id(_header(headers, b"x-request-id"))
        token = request_id_var.set(request_id)
        structlog.contextvars.bind_contextvars(request_id=request_id)
        method: str = scope["method"]
        path: str = scope["path"]
        started = time.perf_counter()
        status = 500
        response_started = False
        request_id_header = (b"x-request-id", request_id.encode())

        async def send_wrapper(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message["headers"] = [*message.get("headers", []), request_id_header]
            await send(message)

        declared = _header(headers, b"content-length")
        received = 0

        async def receive_limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLarge
            return message

        start_request(scope)
        try:
            if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
                raise BodyTooLarge
            try:
                await self.app(scope, receive_limited, send_wrapper)
            finally:
                await finish_request(scope)
        except BodyTooLarge:
            if not response_started:
                status = 413
                await send_problem(
                    send,
                    problem_body(
                        code="payload_too_large",
                        detail=f"The request body exceeds {self.max_body_bytes} bytes.",
                        request_id=request_id,
                    ),
                    headers=[request_id_header],
                )
        except Exception:
            log.exception("unhandled_error", method=method, path=path)
            if not response_started:
                status = 500
                await send_problem(
                    send,
                    problem_body(
                        code="internal_error",
                        detail="An unexpected error occurred. Quote the request_id when "
                        "reporting it.",
                        request_id=request_id,
                    ),
                    headers=[request_id_header],
                )
        finally:
            duration = time.perf_counter() - started
            route = _route_template(scope)
            labels = (method, route, str(status))
            API_REQUEST_DURATION.labels(*labels).observe(duration)
            API_REQUESTS.labels(*labels).inc()
            if status >= 400:
                API_ERRORS.labels(*labels).inc()
            log.info(
                "request",
                method=method,
                path=path,
                route=route,
                status_code=status,
                duration_ms=round(duration * 1000, 2),
            )
            structlog.contextvars.clear_contextvars()
            request_id_var.reset(token)


def _header(headers: dict[bytes, bytes], name: bytes) -> str | None:
    value = headers.get(name)
    return value.decode("latin-1") if value is not None else None


def _route_template(scope: Scope) -> str:
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    # Unmatched paths are not used as labels: that would let clients create unbounded series.
    return path if isinstance(path, str) else "unmatched"
