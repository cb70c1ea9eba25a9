"""Reads of the events domain, all through the scoping helper."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.events.catalog import ALL
from botplatform.kit.memo import remember
from botplatform.kit.scoping import scoped
from botplatform.models import WebhookEndpoint


async def subscribed_endpoints(
    db: AsyncSession, workspace_id: uuid.UUID, event_type: str
) -> list[WebhookEndpoint]:
    """Enabled endpoints of the workspace that take this event type (a workspace has few
    endpoints: the type filter runs here, the same on both databases)."""

    async def load() -> list[WebhookEndpoint]:
        statement = scoped(WebhookEndpoint, workspace_id).where(WebhookEndpoint.enabled.is_(True))
        return list((await db.execute(statement)).scalars().all())

    endpoints = await remember(db, WebhookEndpoint, workspace_id, load)
    return [e for e in endpoints if event_type in e.event_types or ALL in e.event_types]
