"""Test databases: migrated once per run into a template, cloned once per xdist worker.

With TEST_DATABASE_URL unset the suite starts an embedded PostgreSQL (pgserver). Tests create
and drop their own databases (named billing_test_<run>_*) and never touch any other.
"""

from __future__ import annotations

import functools
import os
import uuid
from pathlib import Path

from billing.db.base import Base, import_all_models
from billing.db.engine import raw_connect, with_database
from billing.db.migrate import upgrade

PREFIX = "billing_test_"
_TEMPLATE_LOCK = 7_246_100


def run_id() -> str:
    return os.environ.setdefault("BILLING_TEST_RUN_ID", uuid.uuid4().hex[:10])


def admin_url() -> str:
    url = os.environ.get("TEST_DATABASE_URL", "").strip()
    if url:
        return url
    from billing.db.embedded import embedded_server, server_url

    data_dir = Path(os.environ.get("BILLING_TEST_DATA_DIR", ".billing/test"))
    return server_url(embedded_server(data_dir), "postgres")


def template_name() -> str:
    return f"{PREFIX}{run_id()}_tpl"


def worker_db_name(worker: str) -> str:
    return f"{PREFIX}{run_id()}_{worker}"


async def ensure_template(admin: str) -> str:
    name = template_name()
    conn = await raw_connect(admin)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _TEMPLATE_LOCK)
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{name}"')
            await upgrade(with_database(admin, name))
        await conn.execute("SELECT pg_advisory_unlock($1)", _TEMPLATE_LOCK)
    finally:
        await conn.close()
    return name


async def create_database(admin: str, name: str, *, template: str | None = None) -> str:
    conn = await raw_connect(admin)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        clause = f' TEMPLATE "{template}" STRATEGY FILE_COPY' if template else ""
        await conn.execute(f'CREATE DATABASE "{name}"{clause}')
    finally:
        await conn.close()
    return with_database(admin, name)


async def drop_database(admin: str, name: str) -> None:
    conn = await raw_connect(admin)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def drop_run_databases(admin: str) -> None:
    conn = await raw_connect(admin)
    try:
        names = await conn.fetch(
            "SELECT datname FROM pg_database WHERE datname LIKE $1",
            f"{PREFIX}{run_id()}_%",
        )
        for row in names:
            await conn.execute(f'DROP DATABASE IF EXISTS "{row["datname"]}" WITH (FORCE)')
    finally:
        await conn.close()


# Tables whose rows the migrations seed: reset, not emptied.
SEEDED = {
    "invoice_number_counters": "UPDATE invoice_number_counters SET value = 0",
    "notification_cursors": (
        "UPDATE notification_cursors SET last_seq = 0, gap_seq = NULL, gap_xmax = NULL"
    ),
    "usage_rollup_state": "UPDATE usage_rollup_state SET rolled_through = 0",
}


@functools.cache
def truncate_statement() -> str:
    import_all_models()
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables if t.name not in SEEDED)
    return f"TRUNCATE {tables} RESTART IDENTITY CASCADE; " + "; ".join(SEEDED.values())
