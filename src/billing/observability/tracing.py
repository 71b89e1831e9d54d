"""OpenTelemetry tracing, configured by the standard OTEL_* variables.

OTEL_TRACES_EXPORTER: `none` (default: no instrumentation, no overhead), `console`, or `otlp`
(OTEL_EXPORTER_OTLP_ENDPOINT and friends are read by the exporter itself).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from billing.db.engine import set_direct_tracer

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

_provider: TracerProvider | None = None


def tracing_exporter() -> str:
    return os.environ.get("OTEL_TRACES_EXPORTER", "none").strip().lower() or "none"


def configure_tracing(app: FastAPI, engine: AsyncEngine) -> bool:
    """Instrument FastAPI, SQLAlchemy and httpx when an exporter is configured."""
    global _provider
    exporter_name = tracing_exporter()
    if exporter_name == "none":
        return False

    from opentelemetry import trace
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SpanExporter,
    )

    if _provider is None:
        exporter: SpanExporter
        if exporter_name == "console":
            exporter = ConsoleSpanExporter()
        elif exporter_name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter()
        else:
            raise ValueError(f"OTEL_TRACES_EXPORTER={exporter_name!r} is not supported")
        service = os.environ.get("OTEL_SERVICE_NAME", "billing")
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        HTTPXClientInstrumentor().instrument()
        _provider = provider

    FastAPIInstrumentor.instrument_app(app, excluded_urls="health,metrics")
    # The instrumentation's declared range stops below SQLAlchemy 2.1; its event hooks work
    # with 2.1 (the test suite exports SELECT spans through it).
    SQLAlchemyInstrumentor().instrument(engine=engine.sync_engine, skip_dep_check=True)
    # Statements on the engine's direct pool do not go through SQLAlchemy.
    set_direct_tracer(trace.get_tracer("billing.db"))
    return True


def flush_tracing() -> None:
    """Export the spans still queued (at shutdown: nothing is lost on SIGTERM)."""
    if _provider is not None:
        _provider.force_flush()
