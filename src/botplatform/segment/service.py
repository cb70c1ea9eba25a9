"""Segments: saved audiences, and the resolver the broadcast engine calls. Flushes, never
commits.

The interface for other domains (the broadcast engine), all tenant-scoped, all excluding
opted-out contacts whatever the definition says:

    definition = await resolve_segment(db, workspace_id, segment_id)   # 404 if not there
    total = await count(db, workspace_id, definition)                  # -> int
    async for ids in iter_contact_ids(db, workspace_id, definition, batch_size=1000):
        ...  # ids: list[uuid.UUID], ascending, each contact exactly once across batches

`definition` is a `SegmentDefinition` or its JSON (a dict, validated here: `Unprocessable`
on a bad one), so a broadcast can keep a snapshot of the audience it was sent to
(`definition.model_dump(mode="json")`) and resolve that later.

`iter_contact_ids` walks the contacts by id (keyset pagination: each batch is one short
query "id > last id of the previous batch ORDER BY id LIMIT n"), so no cursor or transaction
stays open between batches: the caller may insert a batch of recipients and commit before it
asks for the next. All three enter the workspace themselves (`enter_workspace`, before each
batch too: PostgreSQL's row-level security setting is transaction-local, and a commit ends
it), so a job's plain unit of work is enough. Relative conditions
(`days_ago`) are fixed once, when the iteration starts. A contact created during the walk
with an id below the current position is not picked up (ids are random): the audience is the
contacts that existed when their part of the id range was read.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import ColumnElement
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.kit.clock import utcnow
from botplatform.kit.errors import Conflict, Unprocessable
from botplatform.kit.handlers import plain_message
from botplatform.kit.scoping import enter_workspace
from botplatform.models import Segment
from botplatform.segment import filters, repository
from botplatform.segment.schemas import SegmentCreate, SegmentDefinition, SegmentUpdate

MAX_BATCH = 10_000


def definition_of(value: SegmentDefinition | dict[str, Any]) -> SegmentDefinition:
    """A validated definition; `Unprocessable` (422) with each problem when it is not one."""
    if isinstance(value, SegmentDefinition):
        return value
    try:
        return SegmentDefinition.model_validate(value)
    except ValidationError as exc:
        details = [
            {
                "field": ".".join(str(part) for part in error["loc"]),
                "message": plain_message(error),
                "type": error["type"],
            }
            for error in exc.errors()
        ]
        raise Unprocessable(
            "The audience definition is not valid.", code="invalid_definition", details=details
        ) from exc


def condition(
    db: AsyncSession,
    workspace_id: uuid.UUID,
    definition: SegmentDefinition | dict[str, Any],
    now: datetime | None = None,
) -> ColumnElement[bool]:
    """The SQL condition on `contacts` for this workspace's audience."""
    dialect = db.get_bind().dialect.name
    return filters.where(definition_of(definition), workspace_id, dialect, now or utcnow())


async def count(
    db: AsyncSession, workspace_id: uuid.UUID, definition: SegmentDefinition | dict[str, Any]
) -> int:
    """How many opted-in contacts of the workspace the definition matches now."""
    await enter_workspace(db, workspace_id)
    return await repository.count_contacts(
        db, workspace_id, condition(db, workspace_id, definition)
    )


async def iter_contact_ids(
    db: AsyncSession,
    workspace_id: uuid.UUID,
    definition: SegmentDefinition | dict[str, Any],
    batch_size: int = 1000,
) -> AsyncIterator[list[uuid.UUID]]:
    """The audience's contact ids in batches of at most `batch_size`, ascending; every
    matching contact exactly once (see the module docstring)."""
    if not 1 <= batch_size <= MAX_BATCH:
        raise ValueError(f"batch_size must be between 1 and {MAX_BATCH}")
    where = condition(db, workspace_id, definition)
    after: uuid.UUID | None = None
    while True:
        await enter_workspace(db, workspace_id)
        ids = await repository.contact_ids_after(db, workspace_id, where, after, batch_size)
        if not ids:
            return
        yield ids
        if len(ids) < batch_size:
            return
        after = ids[-1]


async def contact_ids_after(
    db: AsyncSession,
    workspace_id: uuid.UUID,
    definition: SegmentDefinition | dict[str, Any],
    after: uuid.UUID | None,
    batch_size: int = 1000,
) -> list[uuid.UUID]:
    """One batch of `iter_contact_ids`: the ids after `after` (None: from the start), for a
    walk that stops between batches and resumes from a stored cursor."""
    if not 1 <= batch_size <= MAX_BATCH:
        raise ValueError(f"batch_size must be between 1 and {MAX_BATCH}")
    await enter_workspace(db, workspace_id)
    where = condition(db, workspace_id, definition)
    return await repository.contact_ids_after(db, workspace_id, where, after, batch_size)


async def resolve_segment(
    db: AsyncSession, workspace_id: uuid.UUID, segment_id: uuid.UUID
) -> SegmentDefinition:
    """The saved segment's definition (404 `segment_not_found` if the workspace has none)."""
    await enter_workspace(db, workspace_id)
    segment = await repository.get(db, workspace_id, segment_id)
    return definition_of(segment.definition)


# --- saved segments -------------------------------------------------------------------------


async def _check_name(
    db: AsyncSession, segment: Segment | None, workspace_id: uuid.UUID, name: str
) -> None:
    found = await repository.find_by_name(db, workspace_id, name)
    if found is not None and (segment is None or found.id != segment.id):
        raise Conflict("A segment with this name already exists.", code="segment_exists")


async def create(db: AsyncSession, workspace_id: uuid.UUID, data: SegmentCreate) -> Segment:
    await _check_name(db, None, workspace_id, data.name)
    segment = Segment(
        workspace_id=workspace_id,
        name=data.name,
        description=data.description,
        definition=data.definition.model_dump(mode="json"),
    )
    db.add(segment)
    await db.flush()
    return segment


async def update(db: AsyncSession, segment: Segment, data: SegmentUpdate) -> dict[str, Any]:
    """Applies the given fields; returns what changed (for the audit log)."""
    changes: dict[str, Any] = {}
    if data.name is not None and data.name != segment.name:
        await _check_name(db, segment, segment.workspace_id, data.name)
        changes["name"] = [segment.name, data.name]
        segment.name = data.name
    if data.description is not None and data.description != segment.description:
        changes["description"] = [segment.description, data.description]
        segment.description = data.description
    if data.definition is not None:
        new = data.definition.model_dump(mode="json")
        if new != segment.definition:
            changes["definition"] = new
            segment.definition = new
    await db.flush()
    return changes


async def delete(db: AsyncSession, segment: Segment) -> None:
    await db.delete(segment)
    await db.flush()
