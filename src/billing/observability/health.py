"""Liveness, readiness and the Prometheus endpoint."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from starlette.responses import Response

from billing import __version__
from billing.deps import RuntimeDep
from billing.http.context import current_request_id
from billing.http.errors import problem_response
from billing.observability.metrics import render_metrics

router = APIRouter(tags=["health"])

CHECK_TIMEOUT_SECONDS = 2.0


@router.get("/health", summary="Liveness: the process answers (no I/O)")
async def health() -> dict[str, str]:
    return {"status": "ok", "version": __version__}


@router.get(
    "/health/ready",
    summary="Readiness: PostgreSQL (and Redis when configured) answer",
    responses={503: {"description": "A dependency is down; the body names it."}},
)
async def ready(runtime: RuntimeDep) -> Response:
    checks: dict[str, Any] = {}
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS), runtime.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"failed: {type(exc).__name__}"
    limiter = runtime.rate_limiter
    if limiter is not None and limiter.backend == "redis":
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
                ok = await limiter.check()
            checks["redis"] = "ok" if ok else "failed: no answer"
        except Exception as exc:
            checks["redis"] = f"failed: {type(exc).__name__}"
    else:
        checks["redis"] = "not_configured"
    failing = sorted(name for name, state in checks.items() if state.startswith("failed"))
    if failing:
        return problem_response(
            code="service_unavailable",
            detail=f"Not ready: {', '.join(failing)} unavailable.",
            extra={"checks": checks, "failing": failing},
            request_id=current_request_id(),
        )
    return JSONResponse({"status": "ready", "checks": checks})


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request, runtime: RuntimeDep) -> Response:
    body, content_type = render_metrics(runtime.pool_metrics)
    return Response(content=body, media_type=content_type)
