"""Set-based writes: many rows with one statement.

Inserts go through COPY (binary): one round trip for the batch, every value encoded by the
driver's compiled codecs, and PostgreSQL's fastest load path; constraints, foreign keys and
triggers (statement triggers with their transition tables too) apply as to an INSERT.
Updates are `UPDATE … FROM unnest(...)` with one array parameter per column. Either costs a
whole batch one statement, where executemany costs one execution per row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from sqlalchemy import JSON, Table, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from billing.db.base import Base
from billing.db.engine import json_dumps

_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]


def _table(model: type[Base]) -> Table:
    return Base.metadata.tables[model.__tablename__]


@cache
def _array_type(table: Table, column: str) -> str:
    col_type = table.c[column].type
    return f"{col_type.compile(dialect=_DIALECT)}[]"


def _column_values(table: Table, column: str, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
    values = [row[column] for row in rows]
    if isinstance(table.c[column].type, JSON):  # jsonb too
        return [None if v is None else json_dumps(v) for v in values]
    return values


async def driver_of(session: AsyncSession) -> Any:
    """The asyncpg connection under `session` (the session's own, checked out for it)."""
    connection = await session.connection()
    return (await connection.get_raw_connection()).driver_connection


async def driver_connection(session: AsyncSession) -> Any:
    """The asyncpg connection under `session`, inside the session's transaction."""
    raw = await driver_of(session)
    if not raw.is_in_transaction():
        # The driver opens the transaction with the first statement: have one run.
        await session.execute(text("SELECT 1"))
    return raw


async def bulk_insert(
    session: AsyncSession, model: type[Base], rows: Sequence[Mapping[str, Any]]
) -> None:
    """Insert `rows` (dicts with the same keys) into `model`'s table with one COPY."""
    if not rows:
        return
    table = _table(model)
    columns = list(rows[0].keys())
    values = [_column_values(table, c, rows) for c in columns]
    db = await driver_connection(session)
    records = list(zip(*values, strict=True))
    await db.copy_records_to_table(table.name, records=records, columns=columns)


async def bulk_update(
    session: AsyncSession, model: type[Base], rows: Sequence[Mapping[str, Any]], *, key: str = "id"
) -> None:
    """Update `rows` (dicts with `key` and the same other keys) by `key`, in one statement."""
    if not rows:
        return
    table = _table(model)
    columns = list(rows[0].keys())
    casts = ", ".join(f"CAST(:c{i} AS {_array_type(table, c)})" for i, c in enumerate(columns))
    names = ", ".join(f'"{c}"' for c in columns)
    assignments = ", ".join(f'"{c}" = d."{c}"' for c in columns if c != key)
    statement = text(
        f'UPDATE "{table.name}" AS t SET {assignments} '  # noqa: S608
        f"FROM unnest({casts}) AS d({names}) "
        f'WHERE t."{key}" = d."{key}"'
    )
    params = {f"c{i}": _column_values(table, c, rows) for i, c in enumerate(columns)}
    await session.execute(statement, params)
