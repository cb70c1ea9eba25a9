"""The archive of one retention run: the messages about to be deleted, as gzipped JSON lines
(one message per line, with its conversation's contact), stored as one object per workspace
per run through the media storage (local folder or S3)."""

from __future__ import annotations

import gzip
import io
import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botplatform.kit.clock import utcnow
from botplatform.kit.scoping import enter_workspace
from botplatform.models import Message
from botplatform.retention import repository
from botplatform.retention.repository import Position

if TYPE_CHECKING:
    from botplatform.runtime import Runtime

PAGE = 1_000  # messages read per (short, read-only) transaction
CONTENT_TYPE = "application/gzip"
_COLUMNS = [column.key for column in Message.__table__.columns]


@dataclass(frozen=True)
class Written:
    key: str
    count: int
    last: Position  # the newest (created_at, id) archived: nothing after it may be deleted


def archive_key(ws: uuid.UUID, now: datetime) -> str:
    """Under the workspace's storage prefix, named by the run's time (sortable) and a random
    suffix (two runs in one second never overwrite each other)."""
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    return f"ws/{ws}/archives/messages-{stamp}-{secrets.token_hex(4)}.jsonl.gz"


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def line_of(message: Message, contact_id: uuid.UUID) -> bytes:
    record = {name: _plain(getattr(message, name)) for name in _COLUMNS}
    record["contact_id"] = str(contact_id)
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


async def write(runtime: Runtime, ws: uuid.UUID, cutoff: datetime, limit: int) -> Written | None:
    """Archives up to `limit` of the oldest messages created before `cutoff`; None when there
    are none. Raises (and nothing is deleted) if the object cannot be stored."""
    buffer = io.BytesIO()
    count, last = 0, None
    with gzip.GzipFile(fileobj=buffer, mode="wb") as archive:
        while count < limit:
            async with runtime.db.unit_of_work(write=False) as db:
                await enter_workspace(db, ws)
                page = await repository.archive_page(db, ws, cutoff, last, min(PAGE, limit - count))
            if not page:
                break
            for message, contact_id in page:
                archive.write(line_of(message, contact_id))
            count += len(page)
            last = (page[-1][0].created_at, page[-1][0].id)
    if last is None:
        return None
    key = archive_key(ws, utcnow())
    await runtime.media.put(key, buffer.getvalue(), CONTENT_TYPE)
    return Written(key, count, last)
