"""Per-principal rate limits with the `limits` library: Redis when configured, else memory."""

from __future__ import annotations

import math
import time

from limits import RateLimitItemPerHour
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.storage import storage_from_string

from billing.observability.logging import get_logger

log = get_logger(__name__)


class RateLimiter:
    def __init__(self, per_hour: int, redis_url: str | None) -> None:
        self.backend = "redis" if redis_url else "memory"
        self._storage: Storage = MemoryStorage()
        if redis_url:
            storage = storage_from_string(f"async+{redis_url}", implementation="redispy")
            assert isinstance(storage, Storage)
            self._storage = storage
        self._limiter = SlidingWindowCounterRateLimiter(self._storage)
        self._item = RateLimitItemPerHour(per_hour)

    async def hit(self, key: str) -> int | None:
        """Count one request; return None if allowed, else the seconds until it would be."""
        try:
            if await self._limiter.hit(self._item, "api", key):
                return None
            stats = await self._limiter.get_window_stats(self._item, "api", key)
        except Exception as exc:  # a rate-limit store outage must not take the API down
            log.warning("rate_limit_unavailable", error=str(exc), backend=self.backend)
            return None
        return max(1, math.ceil(stats.reset_time - time.time()))

    async def check(self) -> bool:
        return bool(await self._storage.check())

    async def reset(self) -> None:
        await self._storage.reset()
