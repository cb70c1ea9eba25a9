"""The webhook endpoints a workspace's events go to, kept in process (`kit.shared_cache`):
every domain event asks, and the answer changes only when an endpoint is added, deleted,
enabled, disabled or given other event types.

    subscribed = await webhook_cache.subscriptions(db, workspace_id)  # once per batch of events
    for endpoint_id in webhook_cache.subscribed(subscribed, "message.received"):
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.events.catalog import ALL
from botplatform.kit import shared_cache
from botplatform.kit.scoping import scoped
from botplatform.models import WebhookEndpoint

KIND = "webhook_endpoints"

# (endpoint id, the event types it takes) of each enabled endpoint of a workspace.
Subscriptions = tuple[tuple[uuid.UUID, frozenset[str]], ...]


async def subscriptions(db: AsyncSession, workspace_id: uuid.UUID) -> Subscriptions:
    async def load() -> Subscriptions:
        statement = (
            scoped(WebhookEndpoint, workspace_id)
            .where(WebhookEndpoint.enabled.is_(True))
            .with_only_columns(WebhookEndpoint.id, WebhookEndpoint.event_types)
            .order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
        )
        rows = (await db.execute(statement)).all()
        return tuple((endpoint_id, frozenset(types or ())) for endpoint_id, types in rows)

    return await shared_cache.cached(db, KIND, workspace_id, None, load)


def subscribed(endpoints: Subscriptions, event_type: str) -> tuple[uuid.UUID, ...]:
    """Ids of `endpoints` that take this event type (a workspace has few endpoints: the type
    filter runs here, the same on both databases)."""
    return tuple(
        endpoint_id for endpoint_id, types in endpoints if event_type in types or ALL in types
    )


shared_cache.watch(
    WebhookEndpoint, KIND, lambda row: (row.workspace_id, None), ("enabled", "event_types")
)
