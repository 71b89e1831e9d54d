"""The registry of sweeps the worker runs, in order. Each domain adds its own here."""

from __future__ import annotations

from billing.http.idempotency import purge_expired
from billing.worker.runner import Sweep, SweepContext


async def purge_idempotency_keys(ctx: SweepContext) -> int:
    return await purge_expired(ctx.engine, ctx.batch_size)


def default_sweeps() -> list[Sweep]:
    return [
        Sweep("idempotency_keys_expired", purge_idempotency_keys),
    ]
