"""Cursor (keyset) pagination, ordered by (created_at, id): stable under inserts, and
every list the API serves has an index that matches."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel
from sqlalchemy import Select, and_, or_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from botplatform.kit.errors import BadRequest

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


@dataclass(frozen=True)
class PageParams:
    limit: int
    cursor: str | None


def page_params(
    limit: Annotated[int, Query(ge=1, le=200, description="Items per page")] = 50,
    cursor: Annotated[
        str | None, Query(max_length=200, description="`next_cursor` of the previous page")
    ] = None,
) -> PageParams:
    return PageParams(limit, cursor)


PageQuery = Annotated[PageParams, Depends(page_params)]


def encode_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    raw = json.dumps([created_at.isoformat(), str(row_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, row_id = json.loads(raw)
        return datetime.fromisoformat(created), uuid.UUID(row_id)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise BadRequest("The cursor is not valid.", code="invalid_cursor") from exc


async def paginate(
    db: AsyncSession,
    statement: Select[Any],
    created_column: InstrumentedAttribute[datetime],
    id_column: InstrumentedAttribute[uuid.UUID],
    params: PageParams,
    *,
    newest_first: bool = False,
) -> tuple[list[Any], str | None]:
    """Rows of one page (as returned by `execute`) and the cursor of the next, if any.
    The first entity of each row must be the one that owns the two ordering columns."""
    if params.cursor:
        created, row_id = decode_cursor(params.cursor)
        if newest_first:
            after = or_(
                created_column < created, and_(created_column == created, id_column < row_id)
            )
        else:
            after = or_(
                created_column > created, and_(created_column == created, id_column > row_id)
            )
        statement = statement.where(after)
    order = (
        (created_column.desc(), id_column.desc()) if newest_first else (created_column, id_column)
    )
    statement = statement.order_by(*order).limit(params.limit + 1)
    rows = list((await db.execute(statement)).all())
    if len(rows) <= params.limit:
        return rows, None
    rows = rows[: params.limit]
    last = rows[-1][0]
    return rows, encode_cursor(getattr(last, created_column.key), getattr(last, id_column.key))
