"""Every query of the webhook domain, through the scoping helper."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.authz.permissions import Role
from botplatform.kit.errors import NotFound
from botplatform.kit.scoping import scoped
from botplatform.member.repository import members_with_users
from botplatform.models import Membership, WebhookAttempt, WebhookDelivery, WebhookEndpoint


async def get_endpoint(
    db: AsyncSession, ws: uuid.UUID, endpoint_id: uuid.UUID, *, lock: bool = False
) -> WebhookEndpoint:
    statement = scoped(WebhookEndpoint, ws).where(WebhookEndpoint.id == endpoint_id)
    if lock:
        statement = statement.with_for_update().execution_options(populate_existing=True)
    found = (await db.execute(statement)).scalar_one_or_none()
    if found is None:
        raise NotFound("Webhook endpoint not found.", code="webhook_endpoint_not_found")
    return found


def endpoints(ws: uuid.UUID) -> Select[Any]:
    return scoped(WebhookEndpoint, ws)


async def get_delivery(
    db: AsyncSession, ws: uuid.UUID, endpoint_id: uuid.UUID, delivery_id: uuid.UUID
) -> WebhookDelivery:
    statement = scoped(WebhookDelivery, ws).where(
        WebhookDelivery.id == delivery_id, WebhookDelivery.endpoint_id == endpoint_id
    )
    found = (await db.execute(statement)).scalar_one_or_none()
    if found is None:
        raise NotFound("Delivery not found.", code="webhook_delivery_not_found")
    return found


def deliveries(
    ws: uuid.UUID,
    endpoint_id: uuid.UUID,
    *,
    status: str | None = None,
    event_type: str | None = None,
    event_id: uuid.UUID | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Select[Any]:
    statement = scoped(WebhookDelivery, ws).where(WebhookDelivery.endpoint_id == endpoint_id)
    if status:
        statement = statement.where(WebhookDelivery.status == status)
    if event_type:
        statement = statement.where(WebhookDelivery.event_type == event_type)
    if event_id:
        statement = statement.where(WebhookDelivery.event_id == event_id)
    if since:
        statement = statement.where(WebhookDelivery.created_at >= since)
    if until:
        statement = statement.where(WebhookDelivery.created_at < until)
    return statement


async def attempts(db: AsyncSession, ws: uuid.UUID, delivery_id: uuid.UUID) -> list[WebhookAttempt]:
    statement = (
        scoped(WebhookAttempt, ws)
        .where(WebhookAttempt.delivery_id == delivery_id)
        .order_by(WebhookAttempt.number)
    )
    return list((await db.execute(statement)).scalars().all())


async def admin_emails(db: AsyncSession, ws: uuid.UUID) -> list[str]:
    statement = members_with_users(ws).where(
        Membership.role.in_((Role.OWNER.value, Role.ADMIN.value))
    )
    return sorted({row[1].email for row in (await db.execute(statement)).all()})
