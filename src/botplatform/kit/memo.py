"""Per-unit-of-work memos of small, rarely changing workspace settings that one transaction
asks about many times — the enabled webhook endpoints, the events that have automation rules.
Processing one inbound message asks each several times (one per event it causes); the memo
makes that one query per transaction. A memo lives in the session and ends with its
transaction, and it is dropped as soon as the session flushes a row of the kind it holds.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, UOWTransaction

T = TypeVar("T")
_MEMO = "memo"


async def remember(
    db: AsyncSession, model: type[Any], key: Hashable, load: Callable[[], Awaitable[T]]
) -> T:
    """`load()` once per session for (`model`, `key`); again after a flush writes a `model`."""
    memo: dict[tuple[type[Any], Hashable], Any] = db.info.setdefault(_MEMO, {})
    if (model, key) not in memo:
        memo[(model, key)] = await load()
    value: T = memo[(model, key)]
    return value


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _forget_all(session: Session) -> None:
    session.info.pop(_MEMO, None)


@event.listens_for(Session, "after_flush")
def _forget_written(session: Session, _: UOWTransaction) -> None:
    memo: dict[tuple[type[Any], Hashable], Any] | None = session.info.get(_MEMO)
    if not memo:
        return
    written = {type(row) for row in (*session.new, *session.dirty, *session.deleted)}
    for cached in [k for k in memo if k[0] in written]:
        del memo[cached]
