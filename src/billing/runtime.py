"""What a running process holds: settings, engine, sessions, clock, auth and limits."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from billing.auth.keys import ApiKeyResolver
from billing.auth.ratelimit import RateLimiter
from billing.clock import Clock, SystemClock
from billing.db.engine import create_engine, create_session_factory
from billing.observability.metrics import PoolCollector
from billing.payments.gateways import PaymentGateway, get_gateway
from billing.settings import Settings
from billing.tax.providers import SESSION_KEY, TaxProvider, tax_provider
from billing.worker.listen import listen_for_deliveries
from billing.worker.runner import Worker
from billing.worker.sweeps import default_sweeps


@dataclass
class Runtime:
    settings: Settings
    database_url: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    clock: Clock
    api_keys: ApiKeyResolver
    rate_limiter: RateLimiter | None
    pool_metrics: PoolCollector
    gateway: PaymentGateway
    tax: TaxProvider

    @classmethod
    def build(cls, settings: Settings, database_url: str, clock: Clock | None = None) -> Runtime:
        engine = create_engine(
            database_url, pool_size=settings.db_pool_size, max_overflow=settings.db_max_overflow
        )
        sessions = create_session_factory(engine)
        tax = tax_provider(
            settings.tax_provider,
            seller_country=settings.seller_country,
            stripe_secret_key=settings.stripe_secret_key,
            stripe_api_base=settings.stripe_api_base,
        )
        # Invoice finalization (API and worker alike) finds the tax provider on its session.
        sessions.configure(info={SESSION_KEY: tax})
        return cls(
            settings=settings,
            database_url=database_url,
            engine=engine,
            sessions=sessions,
            clock=clock or SystemClock(),
            api_keys=ApiKeyResolver(sessions, settings.api_key_cache_seconds),
            rate_limiter=(
                RateLimiter(settings.rate_limit_per_hour, settings.redis_url)
                if settings.rate_limit_enabled
                else None
            ),
            pool_metrics=PoolCollector(engine),
            gateway=get_gateway(
                settings.payment_gateway,
                stripe_secret_key=settings.stripe_secret_key,
                stripe_api_base=settings.stripe_api_base,
                engine=engine,
            ),
            tax=tax,
        )

    def worker(self) -> Worker:
        return Worker(
            engine=self.engine,
            sessions=self.sessions,
            clock=self.clock,
            sweeps=default_sweeps(),
            settings=self.settings,
            batch_size=self.settings.worker_batch_size,
            tick_seconds=self.settings.worker_tick_seconds,
            gateway=self.gateway,
            listen=partial(listen_for_deliveries, database_url=self.database_url),
        )

    async def close(self) -> None:
        await self.gateway.aclose()
        await self.tax.aclose()
        await self.engine.dispose()
