"""Set-based writes: many rows in one statement, as one array parameter per column.

`INSERT … SELECT FROM unnest(...)` costs one round trip and one statement execution for a
whole batch, where executemany costs one execution per row. The worker's hot paths use it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from sqlalchemy import Table, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import JSONB
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
    if isinstance(table.c[column].type, JSONB):
        return [None if v is None else json_dumps(v) for v in values]
    return values


async def bulk_insert(
    session: AsyncSession, model: type[Base], rows: Sequence[Mapping[str, Any]]
) -> None:
    """Insert `rows` (dicts with the same keys) into `model`'s table with one statement."""
    if not rows:
        return
    table = _table(model)
    columns = list(rows[0].keys())
    casts = ", ".join(f"CAST(:c{i} AS {_array_type(table, c)})" for i, c in enumerate(columns))
    names = ", ".join(f'"{c}"' for c in columns)
    # Names come from our own table metadata, never from input.
    statement = text(f'INSERT INTO "{table.name}" ({names}) SELECT * FROM unnest({casts})')  # noqa: S608
    params = {f"c{i}": _column_values(table, c, rows) for i, c in enumerate(columns)}
    await session.execute(statement, params)


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
