"""The audience port: who a broadcast goes to, read in batches of contact ids, resumable.

A broadcast's `audience` is one of
- `{"type": "list", "contact_ids": [...], "phones": [...]}`, uploaded with the broadcast
  (the default implementation here; unknown numbers become contacts of the channel), or
- `{"type": "segment", "segment": {...}}`, a saved segment's definition, resolved by
  `iter_segment_contact_ids` / `count_segment` below: the two functions the audiences
  domain plugs in (`audience.service.iter_contact_ids(db, workspace_id, definition,
  batch_size)`, keyset batches ordered by id, opted-out contacts excluded).

Materialisation calls `next_batch` with the cursor stored on the broadcast row and stores
the cursor it returns in the same transaction as the batch's recipient rows; the unique
(broadcast, contact) key makes a replayed batch harmless either way.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.channels.base import ChannelInfo
from botplatform.conversation import service as conversations
from botplatform.kit.errors import Unprocessable


class SegmentsUnavailable(Unprocessable):
    code = "segments_unavailable"
    message = "Segment audiences are not available yet: upload a list of contacts or numbers."


async def iter_segment_contact_ids(
    db: AsyncSession, workspace_id: uuid.UUID, definition: dict[str, Any], batch_size: int
) -> AsyncIterator[list[uuid.UUID]]:
    """WIRE POINT: the audiences domain's `iter_contact_ids` (keyset batches by id,
    opted-out contacts never included)."""
    raise SegmentsUnavailable()
    yield []  # pragma: no cover - makes this an async generator


async def count_segment(
    db: AsyncSession, workspace_id: uuid.UUID, definition: dict[str, Any]
) -> int:
    """WIRE POINT: the audiences domain's live count of a segment."""
    raise SegmentsUnavailable()


def _list_entries(audience: dict[str, Any]) -> list[str]:
    """The uploaded list, deduplicated in its order: contact ids, then `+digits` numbers."""
    entries = [str(item) for item in audience.get("contact_ids", [])]
    entries += [str(item) for item in audience.get("phones", [])]
    return list(dict.fromkeys(entries))


async def count(db: AsyncSession, workspace_id: uuid.UUID, audience: dict[str, Any]) -> int:
    """How many recipients at most (the plan's per-broadcast limit is checked on it)."""
    if audience.get("type") == "segment":
        return await count_segment(db, workspace_id, audience.get("segment") or {})
    return len(_list_entries(audience))


async def next_batch(
    db: AsyncSession,
    channel: ChannelInfo,
    audience: dict[str, Any],
    cursor: str | None,
    size: int,
) -> tuple[list[uuid.UUID], str | None]:
    """The next contact ids after `cursor`, and the cursor after them (None: the end)."""
    if audience.get("type") == "segment":
        return await _segment_batch(db, channel, audience.get("segment") or {}, cursor, size)
    entries = _list_entries(audience)
    start = int(cursor or 0)
    chunk = entries[start : start + size]
    ids: list[uuid.UUID] = []
    for entry in chunk:
        if entry.startswith("+"):
            contact = await conversations.contact_for(db, channel, entry[1:], None)
            ids.append(contact.id)
        else:
            ids.append(uuid.UUID(entry))
    end = start + len(chunk)
    return ids, (str(end) if end < len(entries) else None)


async def _segment_batch(
    db: AsyncSession,
    channel: ChannelInfo,
    definition: dict[str, Any],
    cursor: str | None,
    size: int,
) -> tuple[list[uuid.UUID], str | None]:
    """Keyset: the segment's batches are ordered by id, so the cursor is the last id taken;
    batches up to it are skipped (a resumed materialisation re-reads them, inserts none)."""
    after = uuid.UUID(cursor) if cursor else None
    batches = iter_segment_contact_ids(db, channel.workspace_id, definition, size)
    async for batch in batches:
        fresh = [contact_id for contact_id in batch if after is None or contact_id > after]
        if fresh:
            return fresh, str(fresh[-1])
    return [], None
