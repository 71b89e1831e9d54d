"""Async engine and session factory (SQLAlchemy 2 + asyncpg), and the direct pool.

The direct pool is a small asyncpg pool next to the engine's, for the few single statements
every request runs (idempotency bookkeeping, the hottest reads). Through SQLAlchemy's async
layer one such statement costs about 200 us of CPU: pool checkout events, a greenlet per
call (Python maps a fresh frame stack for each), compiled-cache lookup, result wrapping. On
the direct pool it costs about 30 us. Statements are still written with SQLAlchemy Core and
compiled once (`DirectStatement`), so they follow the models.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import weakref
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg
import orjson
from sqlalchemy import Select, event
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.util import await_

SERVER_SETTINGS = {"application_name": "billing", "timezone": "UTC"}
DIRECT_POOL_CLOSE_SECONDS = 10.0


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
        connect_args={"server_settings": dict(SERVER_SETTINGS)},
        json_serializer=json_dumps,
        json_deserializer=json_loads,
    )


@contextlib.asynccontextmanager
async def one_off_engine(url: str) -> AsyncIterator[AsyncEngine]:
    """A single-connection engine for one command (migrate, create a key), disposed after."""
    engine = create_engine(url, pool_size=1, max_overflow=0)
    try:
        yield engine
    finally:
        await engine.dispose()


def _json_default(value: object) -> str:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


# orjson reads integers beyond 64 bits as floats (losing digits); text with such a long run of
# digits goes through the standard library, which keeps them exact. Everything else, orjson.
_LONG_NUMBER = re.compile(r"\d{19}")


def json_loads(text: str | bytes) -> Any:
    if _LONG_NUMBER.search(text if isinstance(text, str) else text.decode()):
        return json.loads(text)
    return orjson.loads(text)


def json_dumps(value: object) -> str:
    return orjson.dumps(value, default=_json_default).decode()


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def libpq_url(url: str) -> str:
    """The same URL in the plain form that asyncpg.connect() and psql understand."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def with_database(url: str, database: str) -> str:
    return make_url(url).set(database=database).render_as_string(hide_password=False)


async def raw_connect(url: str) -> asyncpg.Connection:
    return await asyncpg.connect(libpq_url(url))


# --------------------------------------------------------------------------- direct pool


_DIALECT = PGDialect_asyncpg()  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class DirectStatement:
    """A Core statement with its asyncpg SQL (`$1` placeholders), compiled once."""

    core: Select[Any]
    sql: str
    names: tuple[str, ...]

    @classmethod
    def of(cls, stmt: Select[Any]) -> DirectStatement:
        compiled = stmt.compile(dialect=_DIALECT)
        return cls(core=stmt, sql=str(compiled), names=tuple(compiled.positiontup or ()))

    def args(self, params: Mapping[str, Any]) -> list[Any]:
        return [params[name] for name in self.names]


async def _no_reset(conn: asyncpg.Connection) -> None:
    """Only single autocommit statements run on the direct pool: no state to reset on release
    (asyncpg's default reset is a round trip per release)."""


async def _init_connection(conn: asyncpg.Connection) -> None:
    # JSON columns come back as Python values, as they do through SQLAlchemy (same codec).
    for name in ("json", "jsonb"):
        await conn.set_type_codec(
            name, schema="pg_catalog", encoder=json_dumps, decoder=json_loads, format="text"
        )


class DirectPool:
    """A lazily created asyncpg pool (it belongs to the event loop that first uses it)."""

    def __init__(self, url: str, *, max_size: int) -> None:
        self._url = url
        self._max_size = max_size
        self._pool: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()

    async def _get(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._lock:
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(
                        self._url,
                        min_size=1,
                        max_size=self._max_size,
                        server_settings=dict(SERVER_SETTINGS),
                        init=_init_connection,
                        reset=_no_reset,
                    )
        return self._pool

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection for single statements, each committing on its own."""
        pool = self._pool or await self._get()
        async with pool.acquire() as conn:
            yield conn

    async def execute(self, sql: str, *args: Any) -> str:
        """Run one statement on its own (it commits by itself), traced."""
        with traced(sql):
            async with self.acquire() as conn:
                status: str = await conn.execute(sql, *args)
        return status

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        """Run one read on its own, traced."""
        with traced(sql):
            async with self.acquire() as conn:
                rows: list[asyncpg.Record] = await conn.fetch(sql, *args)
        return rows

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), DIRECT_POOL_CLOSE_SECONDS)
        except TimeoutError:
            pool.terminate()
        except BaseException:
            pool.terminate()
            raise


_direct_pools: weakref.WeakKeyDictionary[Engine, DirectPool] = weakref.WeakKeyDictionary()


def direct_pool(engine: AsyncEngine) -> DirectPool:
    """The engine's direct pool: same database and settings, at most as many connections as
    the engine's pool size; closed when the engine is disposed."""
    sync_engine = engine.sync_engine
    found = _direct_pools.get(sync_engine)
    if found is None:
        url = libpq_url(sync_engine.url.render_as_string(hide_password=False))
        size = getattr(sync_engine.pool, "size", lambda: 10)()
        found = _direct_pools[sync_engine] = DirectPool(url, max_size=max(1, size))
        if not event.contains(sync_engine, "engine_disposed", _close_direct_pool):
            event.listen(sync_engine, "engine_disposed", _close_direct_pool)
    return found


def _close_direct_pool(sync_engine: Engine) -> None:
    # AsyncEngine.dispose() runs Engine.dispose() in a greenlet, so this sync event handler
    # can wait for the asyncpg pool to close.
    found = _direct_pools.pop(sync_engine, None)
    if found is not None:
        await_(found.close())


async def fetch_rows(
    session: AsyncSession, stmt: DirectStatement, params: Mapping[str, Any]
) -> Sequence[Mapping[str, Any]]:
    """Run a read-only statement on behalf of `session`.

    On the session's own connection when it has a transaction open (the read must see its
    writes); otherwise as one autocommit statement on the direct pool, which reads the same
    snapshot a READ COMMITTED transaction would.
    """
    bind = session.bind
    if session.in_transaction() or not isinstance(bind, AsyncEngine):
        result = await session.execute(stmt.core, dict(params))
        return [dict(row) for row in result.mappings()]
    return await direct_pool(bind).fetch(stmt.sql, *stmt.args(params))


# Statements on the direct pool bypass the SQLAlchemy instrumentation, so when tracing is on
# they get a span of their own (observability.tracing sets the tracer).
_tracer: Any = None


def set_direct_tracer(tracer: Any) -> None:
    global _tracer
    _tracer = tracer


def traced(sql: str) -> contextlib.AbstractContextManager[Any]:
    if _tracer is None:
        return contextlib.nullcontext()
    return _span(sql)


@contextlib.contextmanager
def _span(sql: str) -> Iterator[Any]:
    operation = sql.lstrip().split(None, 1)[0].upper()
    with _tracer.start_as_current_span(
        operation, attributes={"db.system": "postgresql", "db.statement": sql}
    ) as span:
        yield span
