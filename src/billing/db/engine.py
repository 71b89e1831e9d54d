"""Async engine and session factory (SQLAlchemy 2 + asyncpg)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


def async_url(url: str) -> str:
    """Accept plain `postgresql://` URLs (as libpq tools print them) and use asyncpg."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


def create_engine(url: str, *, pool_size: int = 10, max_overflow: int = 10) -> AsyncEngine:
    return create_async_engine(
        async_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=False,
        pool_recycle=1800,
        connect_args={"server_settings": {"application_name": "billing", "timezone": "UTC"}},
    )


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


@contextlib.asynccontextmanager
async def read_connection(session: AsyncSession) -> AsyncIterator[AsyncConnection]:
    """A connection for read-only statements on behalf of `session`.

    When the session has a transaction open, its own connection (the reads must see its
    writes). Otherwise a pooled connection in autocommit mode: each statement is its own
    snapshot, exactly as under READ COMMITTED, without the BEGIN and ROLLBACK round trips a
    session transaction costs. The session itself stays unused, so it cannot be left in
    autocommit for later writes.
    """
    bind = session.bind
    if session.in_transaction() or not isinstance(bind, AsyncEngine):
        yield await session.connection()
        return
    async with bind.connect() as conn:
        yield await conn.execution_options(isolation_level="AUTOCOMMIT")


@contextlib.asynccontextmanager
async def driver_connection(engine: AsyncEngine) -> AsyncIterator[Any]:
    """The asyncpg connection of a pooled connection, for hot single statements.

    Skips SQLAlchemy's statement execution layer (compiled cache lookup, parameter
    processing, result wrapping); asyncpg prepares and caches the statement per connection.
    No transaction is started: each statement commits on its own. A connection that broke
    under the statement is invalidated, so the pool does not hand it out again.
    """
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver: asyncpg.Connection = raw.driver_connection
        try:
            yield driver
        except BaseException:
            if driver.is_closed():
                await conn.invalidate()
            raise


def libpq_url(url: str) -> str:
    """The same URL in the plain form that asyncpg.connect() and psql understand."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def with_database(url: str, database: str) -> str:
    return make_url(url).set(database=database).render_as_string(hide_password=False)


async def raw_connect(url: str) -> asyncpg.Connection:
    return await asyncpg.connect(libpq_url(url))
