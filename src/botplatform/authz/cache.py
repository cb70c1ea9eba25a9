"""A member's standing in a workspace, as every request's permission check reads it, kept in
process (`kit.shared_cache`) under (KIND, workspace, user id): the workspace's and the
membership's committed column values, or None for "not a member".

    found = await authz_cache.workspace_and_membership(db, workspace_id, user_id)

A change to either row (a role changed, a member removed or added, the workspace edited or
deleted) drops the entry in every process once it commits, so a demoted member loses the
permission on the very next request, whichever process answers it.

The endpoints behind the check edit these rows (rename a workspace, leave it): a kept entry
is rebuilt as the session's own persistent rows, exactly as a SELECT would have given them,
without the SELECT."""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import make_transient_to_detached

from botplatform.kit import shared_cache
from botplatform.models import Membership, Workspace
from botplatform.workspace import repository as workspace_repository

KIND = "membership"

Values = tuple[tuple[str, Any], ...]
RowT = TypeVar("RowT")


@dataclass(frozen=True)
class _Standing:
    workspace: Values
    membership: Values


async def workspace_and_membership(
    db: AsyncSession, workspace_id: uuid.UUID, user_id: uuid.UUID
) -> tuple[Workspace, Membership] | None:
    """The workspace (not deleted) and the user's membership of it, or None."""
    loaded: tuple[Workspace, Membership] | None = None

    async def load() -> _Standing | None:
        nonlocal loaded
        loaded = await workspace_repository.get_with_membership(db, workspace_id, user_id)
        return None if loaded is None else _Standing(_values(loaded[0]), _values(loaded[1]))

    standing = await shared_cache.cached(db, KIND, workspace_id, str(user_id), load)
    if loaded is not None or standing is None:
        return loaded
    return _attached(db, Workspace, standing.workspace), _attached(
        db, Membership, standing.membership
    )


def _values(row: Any) -> Values:
    # Deep copies: a JSON column's dict must not be shared between requests.
    return tuple(
        (attribute.key, copy.deepcopy(getattr(row, attribute.key)))
        for attribute in inspect(type(row)).column_attrs
    )


def _attached(db: AsyncSession, model: type[RowT], values: Values) -> RowT:
    """The row as if just loaded by this session (already loaded: that one)."""
    session = db.sync_session
    present = session.identity_map.get(session.identity_key(model, dict(values)["id"]))
    if present is not None:
        return present  # type: ignore[no-any-return]
    row = model(**{key: copy.deepcopy(value) for key, value in values})
    make_transient_to_detached(row)  # no pending change: as loaded, persistent once added
    session.add(row)
    return row


shared_cache.watch(Membership, KIND, lambda row: (row.workspace_id, str(row.user_id)))
shared_cache.watch(Workspace, KIND, lambda row: (row.id, None))
