"""Cursor pagination: `?limit=&starting_after=<id>` → `{"data": [...], "has_more": bool}`.

Lists are ordered newest first by (created_at, id), so a cursor stays valid while rows are
added.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel
from sqlalchemy import FromClause, Select, bindparam, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from billing.db.engine import DirectStatement, fetch_rows
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


_PAGES: dict[tuple[FromClause, tuple[str, ...], bool], DirectStatement] = {}
_CURSORS: dict[FromClause, DirectStatement] = {}


async def paginate_direct(
    session: AsyncSession, table: FromClause, page: PageParams, *, where: Mapping[str, Any]
) -> tuple[list[Mapping[str, Any]], bool]:
    """`paginate` for plain rows of `table` whose columns equal `where`, read with compiled
    statements (one per combination of filters) on the engine's direct pool."""
    params: dict[str, Any] = {**where, "limit": page.limit + 1}
    after = page.starting_after is not None
    if after:
        cursor = await fetch_rows(session, _cursor_statement(table), {"after": page.starting_after})
        if not cursor:
            raise ValidationFailed("No object with this id is in the list.", param="starting_after")
        params["after_created_at"] = cursor[0]["created_at"]
        params["after_id"] = cursor[0]["id"]
    stmt = _page_statement(table, tuple(sorted(where)), after)
    rows = await fetch_rows(session, stmt, params)
    return list(rows[: page.limit]), len(rows) > page.limit


def _cursor_statement(table: FromClause) -> DirectStatement:
    found = _CURSORS.get(table)
    if found is None:
        created_at, row_id = table.c.created_at, table.c.id
        stmt = select(created_at, row_id).where(row_id == bindparam("after", type_=row_id.type))
        found = _CURSORS[table] = DirectStatement.of(stmt)
    return found


def _page_statement(table: FromClause, filters: tuple[str, ...], after: bool) -> DirectStatement:
    key = (table, filters, after)
    found = _PAGES.get(key)
    if found is None:
        created_at, row_id = table.c.created_at, table.c.id
        stmt = select(table)
        for name in filters:
            column = table.c[name]
            stmt = stmt.where(column == bindparam(name, type_=column.type))
        if after:
            stmt = stmt.where(
                tuple_(created_at, row_id)
                < tuple_(
                    bindparam("after_created_at", type_=created_at.type),
                    bindparam("after_id", type_=row_id.type),
                )
            )
        stmt = stmt.order_by(created_at.desc(), row_id.desc()).limit(bindparam("limit"))
        found = _PAGES[key] = DirectStatement.of(stmt)
    return found
