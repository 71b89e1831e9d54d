"""Per-request context: the request id (a contextvar for logs and error bodies), and the
callbacks to run once the request is done."""

from __future__ import annotations

import os
import re
from collections.abc import Awaitable, Callable, MutableMapping
from contextvars import ContextVar
from typing import Any

from billing.observability.logging import get_logger

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def new_request_id(incoming: str | None) -> str:
    """Keep a caller's X-Request-ID if it is sane, else generate one."""
    if incoming and _VALID_REQUEST_ID.match(incoming):
        return incoming
    return os.urandom(16).hex()  # 32 hex characters, as a uuid4's hex


def current_request_id() -> str | None:
    return request_id_var.get()


# The ASGI scope key of the request's end-of-request callbacks (set by RequestMiddleware).
_AT_END = "billing.at_request_end"
log = get_logger("billing.http")


def start_request(scope: MutableMapping[str, Any]) -> None:
    scope[_AT_END] = []


def at_request_end(scope: MutableMapping[str, Any], callback: Callable[[], Awaitable[Any]]) -> None:
    """Run `callback` when the route has answered (the response is sent), like the code after
    `yield` in a FastAPI dependency, without the cost of a generator dependency."""
    try:
        scope[_AT_END].append(callback)
    except KeyError:
        raise RuntimeError("at_request_end needs the RequestMiddleware around the app") from None


async def finish_request(scope: MutableMapping[str, Any]) -> None:
    """Run the callbacks registered so far, newest first; each runs once, and a failing one
    is logged without stopping the others."""
    callbacks: list[Callable[[], Awaitable[Any]]] = scope.get(_AT_END) or []
    while callbacks:
        callback = callbacks.pop()
        try:
            await callback()
        except Exception:
            log.exception("request_cleanup_failed")
