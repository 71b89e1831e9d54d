"""Prometheus series. One module defines them all, so names and labels stay consistent.

With several server processes (`billing serve --workers N`) the series are aggregated across
processes through PROMETHEUS_MULTIPROC_DIR, which the CLI sets up.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

API_REQUEST_DURATION = Histogram(
    "api_request_duration_seconds",
    "HTTP request latency by method, route template and status.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0),
)
API_REQUESTS = Counter("api_requests", "HTTP requests served.", ["method", "route", "status"])
API_ERRORS = Counter(
    "api_errors", "HTTP responses with a 4xx or 5xx status.", ["method", "route", "status"]
)
WORKER_SWEEP_ITEMS = Counter(
    "worker_sweep_items", "Rows processed by each worker sweep.", ["sweep"]
)
WORKER_SWEEP_FAILURES = Counter(
    "worker_sweep_failures", "Worker sweep batches that raised.", ["sweep"]
)
INVOICES_GENERATED = Counter("invoices_generated", "Invoices finalized.")
PAYMENTS_ATTEMPTED = Counter(
    "payments_attempted", "Payment attempts by outcome (succeeded, failed, unknown).", ["status"]
)
PAYMENT_AMOUNT = Counter(
    "payment_amount",
    "Amounts of payment attempts in minor units, by currency and outcome.",
    ["currency", "status"],
)
DUNNING_TRANSITIONS = Counter(
    "dunning_transitions", "Dunning steps taken (reminder, warning, blocked, unblocked).", ["step"]
)
SUBSCRIPTIONS_ACTIVE = Gauge(
    "subscriptions_active",
    "Subscriptions in the active or trialing state, read at the worker's last count.",
    multiprocess_mode="max",
)
WORKER_HEARTBEAT = Gauge(
    "worker_last_heartbeat_timestamp_seconds",
    "Unix time of this worker's last completed tick.",
    multiprocess_mode="max",
)

WEBHOOK_DELIVERIES = Counter(
    "webhook_deliveries",
    "Webhook delivery attempts by result: succeeded, retrying, or failed (no retry left).",
    ["status"],
)
WEBHOOK_DELIVERY_DURATION = Histogram(
    "webhook_delivery_duration_seconds",
    "Time from sending a webhook to the receiver's full answer.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0),
)
OUTBOX_BACKLOG = Gauge(
    "outbox_backlog",
    "Webhook deliveries not yet delivered (due, being sent, or waiting for a retry).",
    multiprocess_mode="max",
)


class PoolCollector(Collector):
    """Connection pool gauges, read at scrape time from the engine's pool."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    def collect(self) -> Iterable[GaugeMetricFamily]:
        pool = self._engine.sync_engine.pool
        if not isinstance(pool, QueuePool):
            return
        values = {
            "db_pool_size": ("Configured pool size.", pool.size()),
            "db_pool_checked_out": ("Connections in use.", pool.checkedout()),
            "db_pool_checked_in": ("Idle connections in the pool.", pool.checkedin()),
            # QueuePool counts overflow from -pool_size; report connections above the size.
            "db_pool_overflow": ("Connections above pool size.", max(0, pool.overflow())),
        }
        for name, (doc, value) in values.items():
            family = GaugeMetricFamily(name, doc, labels=["pid"])
            family.add_metric([str(os.getpid())], value)
            yield family


def render_metrics(pool: PoolCollector | None) -> tuple[bytes, str]:
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        from prometheus_client import REGISTRY

        registry = REGISTRY
    output = generate_latest(registry)
    if pool is not None:
        extra = CollectorRegistry()
        extra.register(pool)
        output += generate_latest(extra)
    return output, CONTENT_TYPE_LATEST
