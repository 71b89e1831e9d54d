"""Migrations are the only way the schema is made: they run up and down, and match the models."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect

from billing.db.base import Base, import_all_models
from billing.db.engine import create_engine, with_database
from billing.db.migrate import downgrade, upgrade
from tests import database


async def _tables(url: str) -> set[str]:
    engine = create_engine(url, pool_size=1, max_overflow=0)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()


async def test_migrations_up_and_down_on_an_empty_database(admin_url: str) -> None:
    name = f"{database.PREFIX}{database.run_id()}_updown"
    url = await database.create_database(admin_url, name)
    try:
        assert await _tables(url) == set()
        await upgrade(url)
        import_all_models()
        assert await _tables(url) == set(Base.metadata.tables) | {"alembic_version"}
        await upgrade(url)  # idempotent
        await downgrade(url, "base")
        assert await _tables(url) == {"alembic_version"}
        await upgrade(url)
        assert await _tables(url) == set(Base.metadata.tables) | {"alembic_version"}
    finally:
        await database.drop_database(admin_url, name)


async def test_models_and_migrations_agree(database_url: str) -> None:
    import_all_models()
    engine = create_engine(database_url, pool_size=1, max_overflow=0)

    def diff(conn: Connection) -> list[Any]:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        return list(compare_metadata(context, Base.metadata))

    try:
        async with engine.connect() as conn:
            differences = await conn.run_sync(diff)
    finally:
        await engine.dispose()
    assert differences == []
    assert with_database(database_url, "x").endswith("/x") or "/x?" in with_database(
        database_url, "x"
    )
