"""Alembic, driven from code: the only way the schema is created (the CLI, the server, tests)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text

from billing.db.engine import one_off_engine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Two processes starting at once (e.g. `billing serve` replicas) must not migrate twice.
_MIGRATION_LOCK_ID = 7_246_001


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


async def _run(url: str, action: str, revision: str) -> None:
    def run(sync_conn: Connection) -> None:
        sync_conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
        cfg = alembic_config(sync_conn)
        if action == "upgrade":
            command.upgrade(cfg, revision)
        else:
            command.downgrade(cfg, revision)

    async with one_off_engine(url) as engine, engine.begin() as conn:
        await conn.run_sync(run)


async def upgrade(url: str, revision: str = "head") -> None:
    await _run(url, "upgrade", revision)


async def downgrade(url: str, revision: str = "base") -> None:
    await _run(url, "downgrade", revision)
