"""Alembic environment. Connections are handed in by billing.db.migrate (see alembic_config);
run standalone (`alembic` CLI, for autogenerate) it connects to DATABASE_URL."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection

from billing.db.base import Base, import_all_models
from billing.db.engine import create_engine

import_all_models()
target_metadata = Base.metadata


def run_with(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        compare_server_default=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_standalone() -> None:
    from billing.settings import get_settings

    url = get_settings().database_url
    if url is None:
        raise SystemExit("DATABASE_URL is required to run alembic directly")
    engine = create_engine(url, pool_size=1, max_overflow=0)
    async with engine.begin() as conn:
        await conn.run_sync(run_with)
    await engine.dispose()


connection = context.config.attributes.get("connection")
if connection is not None:
    run_with(connection)
else:
    asyncio.run(run_standalone())
