"""Cursor pagination: `?limit=&starting_after=<id>` → `{"data": [...], "has_more": bool}`.

Lists are ordered newest first by (created_at, id), so a cursor stays valid while rows are
added.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel
from sqlalchemy import FromClause, RowMapping, Select, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from billing.http.errors import ValidationFailed

T = TypeVar("T")
M = TypeVar("M")


class ListResponse(BaseModel, Generic[T]):
    object: str = "list"
    data: list[T]
    has_more: bool


@dataclass(frozen=True)
class PageParams:
    limit: int
    starting_after: uuid.UUID | None


async def page_params(  # async: a plain def would run in the thread pool
    limit: Annotated[int, Query(ge=1, le=100, description="Page size, 1 to 100.")] = 20,
    starting_after: Annotated[
        uuid.UUID | None, Query(description="The id of the last item of the previous page.")
    ] = None,
) -> PageParams:
    return PageParams(limit=limit, starting_after=starting_after)


PageDep = Annotated[PageParams, Depends(page_params)]


async def paginate(
    session: AsyncSession, stmt: Select[Any], model: type[M], page: PageParams
) -> tuple[list[M], bool]:
    """Apply the cursor and limit to `stmt` (a select of `model`), newest first."""
    entity: Any = model
    if page.starting_after is not None:
        cursor = (
            await session.execute(
                select(entity.created_at, entity.id).where(entity.id == page.starting_after)
            )
        ).first()
        if cursor is None:
            raise ValidationFailed("No object with this id is in the list.", param="starting_after")
        stmt = stmt.where(tuple_(entity.created_at, entity.id) < tuple_(cursor[0], cursor[1]))
    stmt = stmt.order_by(entity.created_at.desc(), entity.id.desc()).limit(page.limit + 1)
    rows = list((await session.scalars(stmt)).all())
    return rows[: page.limit], len(rows) > page.limit


async def paginate_rows(
    conn: AsyncConnection, stmt: Select[Any], table: FromClause, page: PageParams
) -> tuple[list[RowMapping], bool]:
    """`paginate` for a Core select of `table`'s columns: rows as mappings, no ORM objects."""
    created_at, row_id = table.c.created_at, table.c.id
    if page.starting_after is not None:
        cursor = (
            await conn.execute(select(created_at, row_id).where(row_id == page.starting_after))
        ).first()
        if cursor is None:
            raise ValidationFailed("No object with this id is in the list.", param="starting_after")
        stmt = stmt.where(tuple_(created_at, row_id) < tuple_(cursor[0], cursor[1]))
    stmt = stmt.order_by(created_at.desc(), row_id.desc()).limit(page.limit + 1)
    rows = list((await conn.execute(stmt)).mappings().all())
    return rows[: page.limit], len(rows) > page.limit
