"""The audience port: who a broadcast goes to, read in batches of contact ids, resumable.

A broadcast's `audience` is one of
- `{"type": "list", "contact_ids": [...], "phones": [...]}`, uploaded with the broadcast
  (the default implementation here; unknown numbers become contacts of the channel), or
- `{"type": "segment", "segment": {...}}`, a segment's definition (kept with the broadcast,
  `snapshot`), walked by the segments domain in keyset batches ordered by id, opted-out
  contacts never included (`segment.service`).

Materialisation calls `next_batch` with the cursor stored on the broadcast row and stores
the cursor it returns in the same transaction as the batch's recipient rows; the unique
(broadcast, contact) key makes a replayed batch harmless either way.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.channels.base import ChannelInfo
from botplatform.conversation import service as conversations
from botplatform.segment import service as segments


async def snapshot(db: AsyncSession, workspace_id: uuid.UUID, given: Any) -> dict[str, Any]:
    """The audience as the broadcast keeps it: a saved segment (`segment_id`) is replaced by
    its definition as it is now (404 if the workspace has no such segment), an inline one is
    checked (422 listing its problems); a later edit of the segment changes no broadcast."""
    kept: dict[str, Any] = given.model_dump(mode="json", exclude_none=True)
    if kept.get("type") != "segment":
        return kept
    if given.segment_id is not None:
        definition = await segments.resolve_segment(db, workspace_id, given.segment_id)
    else:
        definition = segments.definition_of(given.segment or {})
    kept["segment"] = definition.model_dump(mode="json")
    return kept


async def count_segment(
    db: AsyncSession, workspace_id: uuid.UUID, definition: dict[str, Any]
) -> int:
    """The segment's live count (the plan's per-broadcast limit is checked on it)."""
    return await segments.count(db, workspace_id, definition)


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
    workspace_id: uuid.UUID,
    channel: ChannelInfo | None,
    audience: dict[str, Any],
    cursor: str | None,
    size: int,
) -> tuple[list[uuid.UUID], str | None]:
    """The next contact ids after `cursor`, and the cursor after them (None: the end).
    `channel` is None for an email broadcast (its list holds contact ids only)."""
    if audience.get("type") == "segment":
        definition = audience.get("segment") or {}
        return await _segment_batch(db, workspace_id, definition, cursor, size)
    entries = _list_entries(audience)
    start = int(cursor or 0)
    chunk = entries[start : start + size]
    ids: list[uuid.UUID] = []
    for entry in chunk:
        if entry.startswith("+"):
            if channel is None:
                continue  # refused at creation: an email audience has no numbers
            contact = await conversations.contact_for(db, channel, entry[1:], None)
            ids.append(contact.id)
        else:
            ids.append(uuid.UUID(entry))
    end = start + len(chunk)
    return ids, (str(end) if end < len(entries) else None)


async def _segment_batch(
    db: AsyncSession,
    workspace_id: uuid.UUID,
    definition: dict[str, Any],
    cursor: str | None,
    size: int,
) -> tuple[list[uuid.UUID], str | None]:
    """Keyset: the segment's contacts in id order, the cursor is the last id taken, so a
    resumed materialisation reads on from there."""
    after = uuid.UUID(cursor) if cursor else None
    batch = await segments.contact_ids_after(db, workspace_id, definition, after, size)
    if not batch:
        return [], None
    return batch, (str(batch[-1]) if len(batch) == size else None)
