"""`Idempotency-Key` for every mutating request, stored in PostgreSQL.

- same key + same request: the stored status and body are replayed (`Idempotent-Replayed: true`);
- same key + a different request: 422 `idempotency_key_reused`;
- same key while the first request still runs: 409 `idempotency_key_in_use`.
Keys are scoped to the caller's credentials. Requests that never reached the business logic
(bad auth, validation errors, rate limits) and server errors are not stored, so they can be
retried with the same key. Neither are responses marked `Cache-Control: no-store` (they carry a
secret, such as a new API key, that must not be kept in clear).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from sqlalchemy import CHAR, Integer, LargeBinary, String, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Mapped, mapped_column
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from billing.db.base import Base
from billing.db.engine import direct_pool, traced
from billing.http.context import current_request_id, finish_request
from billing.http.errors import problem_body, send_problem

MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_KEY_LENGTH = 255
# Statuses that mean "the operation did not run": not stored, so a retry may run it.
NOT_EXECUTED = frozenset({400, 401, 403, 404, 405, 413, 415, 422, 429})
REPLAYED_HEADERS = frozenset({b"content-type", b"location"})


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"

    scope: Mapped[str] = mapped_column(CHAR(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(MAX_KEY_LENGTH), primary_key=True)
    method: Mapped[str] = mapped_column(String(10))
    path: Mapped[str] = mapped_column(String(2048))
    request_hash: Mapped[str] = mapped_column(CHAR(64))
    status: Mapped[str] = mapped_column(String(16))
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_headers: Mapped[list[Any] | None] = mapped_column(JSONB)
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(index=True)


# Statements for the engine's direct pool (prepared once per connection): the middleware runs
# them on every idempotent request, so they skip SQLAlchemy's async layer.
_CLAIM = """
    WITH expired AS (
        DELETE FROM idempotency_keys
        WHERE scope = $1 AND key = $2 AND expires_at < now()
    )
    INSERT INTO idempotency_keys (scope, key, method, path, request_hash, status, expires_at)
    VALUES ($1, $2, $3, $4, $5, 'in_flight', now() + make_interval(hours => $6))
    ON CONFLICT (scope, key) DO NOTHING
    RETURNING 1
"""
_LOOKUP = (
    "SELECT request_hash, status, response_status, response_headers, response_body "
    "FROM idempotency_keys WHERE scope = $1 AND key = $2"
)
_COMPLETE = (
    "UPDATE idempotency_keys SET status = 'completed', response_status = $3, "
    "response_headers = $4::jsonb, response_body = $5 WHERE scope = $1 AND key = $2"
)
_RELEASE = "DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2"


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp, *, engine: AsyncEngine, ttl_hours: int) -> None:
        self.app = app
        self.engine = engine
        self.ttl_hours = ttl_hours

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in MUTATING_METHODS:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        raw_key = headers.get(b"idempotency-key")
        authorization = headers.get(b"authorization")
        if raw_key is None or authorization is None:
            await self.app(scope, receive, send)
            return
        key = raw_key.decode("latin-1")
        if not key or len(key) > MAX_KEY_LENGTH:
            await send_problem(
                send,
                problem_body(
                    code="validation_error",
                    detail=f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters.",
                    param="Idempotency-Key",
                    errors=[{"field": "Idempotency-Key", "message": "invalid length"}],
                    request_id=current_request_id(),
                ),
            )
            return

        body = await _read_body(receive)
        path = scope["path"]
        query = scope.get("query_string", b"")
        digest = hashlib.sha256()
        for part in (scope["method"].encode(), path.encode(), query, body):
            digest.update(part)
            digest.update(b"\0")
        key_scope = hashlib.sha256(authorization).hexdigest()
        request_hash = digest.hexdigest()

        # Every statement here stands alone (the claim is one INSERT, the completion one
        # UPDATE) and commits on its own: one round trip each, no BEGIN/COMMIT around it.
        # The business transaction in between is the route's own.
        pool = direct_pool(self.engine)
        with traced(_CLAIM):
            async with pool.acquire() as conn:
                claimed = (
                    await conn.fetchrow(
                        _CLAIM,
                        key_scope,
                        key,
                        scope["method"],
                        path[:2048],
                        request_hash,
                        self.ttl_hours,
                    )
                    is not None
                )
                existing = None if claimed else await conn.fetchrow(_LOOKUP, key_scope, key)

        if not claimed:
            await self._answer_existing(send, existing, request_hash)
            return

        captured: dict[str, Any] = {"status": 500, "headers": [], "body": bytearray()}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                captured["headers"] = message.get("headers", [])
            elif message["type"] == "http.response.body":
                captured["body"] += message.get("body", b"")
            await send(message)

        replayed = False

        async def replay_body() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        try:
            try:
                await self.app(scope, replay_body, capture)
            finally:
                # Close the route's sessions before the completion, as a generator
                # dependency would have: no connection or lock outlives the route.
                await finish_request(scope)
        except BaseException:
            await pool.execute(_RELEASE, key_scope, key)
            raise

        status = captured["status"]
        no_store = any(
            k.lower() == b"cache-control" and b"no-store" in v.lower()
            for k, v in captured["headers"]
        )
        if status >= 500 or status in NOT_EXECUTED or no_store:
            await pool.execute(_RELEASE, key_scope, key)
            return
        stored_headers = [
            [k.decode("latin-1"), v.decode("latin-1")]
            for k, v in captured["headers"]
            if k.lower() in REPLAYED_HEADERS
        ]
        await pool.execute(
            _COMPLETE, key_scope, key, status, stored_headers, bytes(captured["body"])
        )

    async def _answer_existing(self, send: Send, row: Any, request_hash: str) -> None:
        if row is None:  # released between our insert attempt and the lookup: let them retry
            await send_problem(send, _in_use())
            return
        if row["request_hash"] != request_hash:
            await send_problem(
                send,
                problem_body(
                    code="idempotency_key_reused",
                    detail="This Idempotency-Key was used with a different request. Use a new "
                    "key for a new request.",
                    param="Idempotency-Key",
                    request_id=current_request_id(),
                ),
            )
            return
        if row["status"] != "completed":
            await send_problem(send, _in_use())
            return
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in row["response_headers"]]
        headers.append((b"idempotent-replayed", b"true"))
        body = row["response_body"] or b""
        headers.append((b"content-length", str(len(body)).encode()))
        await send(
            {"type": "http.response.start", "status": row["response_status"], "headers": headers}
        )
        await send({"type": "http.response.body", "body": body})


def _in_use() -> dict[str, Any]:
    return problem_body(
        code="idempotency_key_in_use",
        detail="A request with this Idempotency-Key is still being processed. Retry shortly.",
        param="Idempotency-Key",
        request_id=current_request_id(),
    )


async def _read_body(receive: Receive) -> bytes:
    chunks = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks += message.get("body", b"")
        if not message.get("more_body", False):
            break
    return bytes(chunks)


async def purge_expired(engine: AsyncEngine, limit: int) -> int:
    async with engine.begin() as conn:
        result = await conn.execute(
            text(
                "DELETE FROM idempotency_keys WHERE ctid IN (SELECT ctid FROM idempotency_keys "
                "WHERE expires_at < now() LIMIT :limit)"
            ),
            {"limit": limit},
        )
    return int(result.rowcount)
