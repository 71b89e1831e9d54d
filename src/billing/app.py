"""create_app(): routers, middleware and error handlers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from billing import __version__, heap
from billing.clock import Clock
from billing.http.context import current_request_id
from billing.http.errors import DomainError, problem_response
from billing.http.idempotency import IdempotencyMiddleware
from billing.http.middleware import RequestMiddleware
from billing.observability.logging import configure_logging, get_logger
from billing.observability.tracing import configure_tracing, flush_tracing
from billing.runtime import Runtime
from billing.settings import Settings, get_settings

log = get_logger("billing.app")

API_DESCRIPTION = """
Subscription billing: accounts, a versioned plan catalog, subscriptions, invoices, payments,
usage. Authenticate with `Authorization: Bearer <api key>`. Every mutating request accepts an
`Idempotency-Key` header. Errors are RFC 9457 `application/problem+json` with a stable `code`.
"""


def create_app(
    settings: Settings | None = None,
    *,
    database_url: str | None = None,
    clock: Clock | None = None,
    run_worker: bool | None = None,
) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_format)
    url = database_url or settings.database_url
    if url is None:
        from billing.db.embedded import start_embedded

        url = start_embedded(settings.billing_data_dir)
    runtime = Runtime.build(settings, url, clock)
    start_worker = settings.run_worker if run_worker is None else run_worker

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        task: asyncio.Task[None] | None = None
        if start_worker:
            task = asyncio.create_task(runtime.worker().run_forever(stop))
        heap.settle()
        try:
            yield
        finally:
            stop.set()
            if task is not None:
                await task
            await runtime.close()
            flush_tracing()

    app = FastAPI(
        title="Billing",
        version=__version__,
        description=API_DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    _install_error_handlers(app)
    _include_routers(app)
    configure_tracing(app, runtime.engine)
    # Added last = outermost: the request middleware wraps idempotency and the routes.
    app.add_middleware(
        IdempotencyMiddleware, engine=runtime.engine, ttl_hours=settings.idempotency_ttl_hours
    )
    app.add_middleware(RequestMiddleware, max_body_bytes=settings.max_request_bytes)
    return app


def _include_routers(app: FastAPI) -> None:
    from billing.accounts.router import router as accounts_router
    from billing.auth.router import router as api_keys_router
    from billing.catalog.router import router as catalog_router
    from billing.clock.router import router as test_clocks_router
    from billing.credits.router import router as credits_router
    from billing.dunning.router import router as dunning_router
    from billing.events.router import router as events_router
    from billing.invoicing.router import router as invoices_router
    from billing.notifications.router import router as notifications_router
    from billing.observability.health import router as health_router
    from billing.payments.payments_router import router as payments_router
    from billing.payments.router import router as payment_methods_router
    from billing.payments.stripe_webhooks import router as stripe_webhooks_router
    from billing.subscriptions.router import router as subscriptions_router
    from billing.tax.router import router as tax_rates_router
    from billing.usage.router import router as usage_router
    from billing.webhooks.router import router as webhooks_router

    app.include_router(health_router)
    app.include_router(api_keys_router)
    app.include_router(accounts_router)
    app.include_router(payment_methods_router)
    app.include_router(catalog_router)
    app.include_router(subscriptions_router)
    app.include_router(invoices_router)
    app.include_router(payments_router)
    app.include_router(dunning_router)
    app.include_router(stripe_webhooks_router)
    app.include_router(credits_router)
    app.include_router(tax_rates_router)
    app.include_router(test_clocks_router)
    app.include_router(notifications_router)
    app.include_router(events_router)
    app.include_router(webhooks_router)
    app.include_router(usage_router)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def domain_error(request: Request, exc: DomainError) -> Response:
        extra = dict(exc.extra)
        errors = extra.pop("errors", None)
        return problem_response(
            code=exc.code,
            detail=exc.detail,
            param=exc.param,
            errors=errors,
            extra=extra,
            headers=exc.headers,
            request_id=current_request_id(),
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        raw = exc.errors()
        if any(err.get("type") == "json_invalid" for err in raw):
            return problem_response(
                code="malformed_request",
                detail="The request body is not valid JSON.",
                request_id=current_request_id(),
            )
        errors: list[dict[str, Any]] = []
        for err in raw:
            error = _field_error(err)
            if all(e["field"] != error["field"] for e in errors):
                errors.append(error)
        first = errors[0]["field"] if errors else None
        summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        return problem_response(
            code="validation_error",
            detail=f"Invalid request: {summary}",
            param=first,
            errors=errors,
            request_id=current_request_id(),
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = {
            404: "not_found",
            405: "method_not_allowed",
            413: "payload_too_large",
            415: "unsupported_media_type",
        }.get(exc.status_code, "malformed_request")
        detail = (
            f"No route {request.method} {request.url.path}."
            if exc.status_code == 404
            else f"{request.method} is not allowed on {request.url.path}."
            if exc.status_code == 405
            else str(exc.detail)
        )
        return problem_response(
            code=code,
            status=exc.status_code,
            detail=detail,
            headers=exc.headers,
            request_id=current_request_id(),
        )


def _field_error(err: Any) -> dict[str, Any]:
    loc = [str(part) for part in err.get("loc", ())]
    # Drop FastAPI's "body"/"query"/"path" prefix: the client knows where it sent the field.
    if loc and loc[0] in ("body", "query", "path", "header"):
        where = loc[0]
        loc = loc[1:]
    else:
        where = "body"
    # Union members add a tag to the location ("literal['start']", "function-after[...]"):
    # it names pydantic's machinery, not the client's field.
    loc = [part for part in loc if "[" not in part and "-" not in part]
    field = ".".join(loc) or where
    return {
        "field": field,
        "location": where,
        "message": err.get("msg", "invalid"),
        "type": err.get("type"),
    }
