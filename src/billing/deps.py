"""FastAPI dependencies shared by every router: the runtime, a session, the caller."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from billing.auth.jwt import looks_like_jwt, verify_jwt
from billing.auth.keys import Principal
from billing.auth.permissions import Permission, allows
from billing.clock import Clock
from billing.http.context import at_request_end
from billing.http.errors import DomainError
from billing.payments.gateways import PaymentGateway
from billing.runtime import Runtime


# Dependencies are `async def` even when they never await: FastAPI runs a plain `def`
# dependency in the thread pool, a thread hop per dependency per request.
async def get_runtime(request: Request) -> Runtime:
    return _runtime(request)


def _runtime(request: Request) -> Runtime:
    # The shared dependencies below read the runtime directly rather than through
    # RuntimeDep: every sub-dependency is another round of FastAPI's dependency solving.
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_session(request: Request) -> AsyncSession:
    # Services commit explicitly; closing only rolls back leftovers and returns the
    # connection. The close runs when the route has answered, as it would after `yield` in
    # a generator dependency; those cost FastAPI a shielded exit stack entry per request.
    session = _runtime(request).sessions()
    at_request_end(request.scope, lambda: _close(session))
    return session


async def _close(session: AsyncSession) -> None:
    # A session the route never used (its reads went to the direct pool) holds no
    # connection and no objects: closing it would only cost a greenlet round trip.
    if session.in_transaction() or session.identity_map or session.new or session.deleted:
        await session.close()


SessionDep = Annotated[AsyncSession, Depends(get_session)]


async def get_gateway(request: Request) -> PaymentGateway:
    return _runtime(request).gateway


GatewayDep = Annotated[PaymentGateway, Depends(get_gateway)]


async def get_clock(request: Request) -> Clock:
    return _runtime(request).clock


ClockDep = Annotated[Clock, Depends(get_clock)]


class Unauthenticated(DomainError):
    code = "unauthenticated"


class Forbidden(DomainError):
    code = "forbidden"


class RateLimited(DomainError):
    code = "rate_limited"


async def authenticate(request: Request, runtime: Runtime) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated(
            "Send an API key as `Authorization: Bearer <key>` (create one with "
            "`billing apikey create --role billing_admin`).",
            headers={"WWW-Authenticate": "Bearer"},
        )
    token = token.strip()
    settings = runtime.settings
    principal: Principal | None
    if looks_like_jwt(token) and settings.jwt_public_key:
        principal = verify_jwt(
            token,
            public_key=settings.jwt_public_key,
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
        )
    else:
        principal = await runtime.api_keys.resolve(token)
    if principal is None:
        raise Unauthenticated(
            "The API key or token is invalid, expired or revoked.",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    return principal


def require(permission: Permission) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency that authenticates, checks `permission` and applies the rate limit."""

    async def dependency(request: Request) -> Principal:
        runtime = _runtime(request)
        principal = await authenticate(request, runtime)
        if runtime.rate_limiter is not None:
            retry_after = await runtime.rate_limiter.hit(f"{principal.kind}:{principal.id}")
            if retry_after is not None:
                raise RateLimited(
                    f"Rate limit of {runtime.settings.rate_limit_per_hour} requests per hour "
                    f"exceeded. Retry after {retry_after} seconds.",
                    headers={"Retry-After": str(retry_after)},
                )
        if not allows(principal.role, permission):
            raise Forbidden(
                f"The role {principal.role.value!r} lacks the permission {permission.value!r}.",
                extra={"required_permission": permission.value},
            )
        return principal

    dependency.required_permission = permission  # type: ignore[attr-defined]
    return dependency


# Permission aliases shared by several routers (the accounts ones live in accounts.router).
EventsRead = Annotated[Principal, Depends(require(Permission.EVENTS_READ))]
WebhooksWrite = Annotated[Principal, Depends(require(Permission.WEBHOOKS_WRITE))]
