"""Embedded PostgreSQL (the `pgserver` package) for a one-command local setup.

The server listens on a Unix socket inside the data directory, so it never takes a TCP port.
Every process that asks for it shares the same running server; the last one to exit stops it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from billing.db.engine import raw_connect

DATABASE_NAME = "billing"

_servers: dict[Path, Any] = {}


def embedded_server(data_dir: Path) -> Any:
    from pgserver.postgres_server import get_server

    pgdata = (data_dir / "pgdata").resolve()
    if pgdata not in _servers:
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        logging.getLogger("pgserver").setLevel(logging.WARNING)
        _servers[pgdata] = get_server(pgdata, cleanup_mode="stop")
    return _servers[pgdata]


def server_url(server: Any, database: str) -> str:
    info = server.get_postmaster_info()
    return f"postgresql+asyncpg://postgres@/{database}?host={info.socket_dir}&port={info.port}"


async def ensure_database(admin_url: str, name: str) -> None:
    """Create database `name` if it does not exist (admin_url points at any database)."""
    conn = await raw_connect(admin_url)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def start_embedded(data_dir: Path) -> str:
    """Start (or join) the embedded server and return the URL of the billing database."""
    import asyncio

    server = embedded_server(data_dir)
    asyncio.run(ensure_database(server_url(server, "postgres"), DATABASE_NAME))
    return server_url(server, DATABASE_NAME)


def release_embedded(data_dir: Path) -> None:
    """Leave the embedded server of `data_dir`; the last process to leave stops it.

    Processes leave at exit by themselves; a process that removes the data directory before
    exiting (a temporary one) must leave first, or the server outlives them all.
    """
    server = _servers.pop((data_dir / "pgdata").resolve(), None)
    if server is not None:
        server.cleanup()
