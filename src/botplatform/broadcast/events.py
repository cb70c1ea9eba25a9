"""`broadcast.started|paused|completed|failed`: to webhooks and the live socket."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.events.service import emit
from botplatform.models import Broadcast


def _time(value: Any) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def payload(row: Broadcast) -> dict[str, Any]:
    return {
        "broadcast": {
            "id": str(row.id),
            "name": row.name,
            "channel_id": str(row.channel_id) if row.channel_id else None,
            "status": row.status,
            "total": row.total or 0,
            "error": row.error,
            "started_at": _time(row.started_at),
            "completed_at": _time(row.completed_at),
        }
    }


async def emit_broadcast(db: AsyncSession, row: Broadcast, event_type: str) -> None:
    await emit(db, row.workspace_id, event_type, payload(row))
