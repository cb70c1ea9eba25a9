"""Webhook endpoints: create with a fresh secret, change, rotate the secret, replay a
delivery. Flushes, never commits."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.config import Settings
from botplatform.kit import clock
from botplatform.kit.errors import Conflict
from botplatform.kit.safe_http import Allowlist, check_url, resolve_target
from botplatform.models import WebhookDelivery, WebhookEndpoint
from botplatform.webhook import repository, signing
from botplatform.webhook.schemas import EndpointCreate, EndpointUpdate
from botplatform.webhook.tasks import DELIVER_JOB
from botplatform.worker.jobs import enqueue

RESOLVE_TIMEOUT = 3.0
MAX_ENDPOINTS = 50  # per workspace: every event costs one delivery per endpoint


async def check_target(url: str, settings: Settings) -> None:
    """Refuses (422 blocked_destination) a URL that is, or resolves to, an address the
    platform never calls. A name that does not resolve yet is accepted: deliveries check
    again, every time."""
    target = check_url(url)
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT):
            await resolve_target(target, Allowlist.parse(settings.outbound_allowlist))
    except (httpx.ConnectError, TimeoutError):
        return


async def create(
    db: AsyncSession,
    settings: Settings,
    ws: uuid.UUID,
    body: EndpointCreate,
    created_by: uuid.UUID | None,
) -> tuple[WebhookEndpoint, str]:
    if await repository.count_endpoints(db, ws) >= MAX_ENDPOINTS:
        raise Conflict(
            f"A workspace has at most {MAX_ENDPOINTS} webhook endpoints.",
            code="too_many_webhook_endpoints",
        )
    await check_target(body.url, settings)
    secret = signing.new_secret()
    endpoint = WebhookEndpoint(
        workspace_id=ws,
        url=body.url,
        description=body.description,
        event_types=body.event_types,
        enabled=body.enabled,
        secret=secret,
        created_by_id=created_by,
    )
    db.add(endpoint)
    await db.flush()
    return endpoint, secret


async def update(
    db: AsyncSession, settings: Settings, endpoint: WebhookEndpoint, body: EndpointUpdate
) -> None:
    if body.url is not None and body.url != endpoint.url:
        await check_target(body.url, settings)
        endpoint.url = body.url
    if body.event_types is not None:
        endpoint.event_types = body.event_types
    if body.description is not None:
        endpoint.description = body.description
    if body.enabled is True and not endpoint.enabled:
        endpoint.enabled = True
        endpoint.disabled_at = endpoint.disabled_reason = None
        endpoint.failing_since = None
    elif body.enabled is False and endpoint.enabled:
        endpoint.enabled = False
        endpoint.disabled_at = clock.utcnow()
        endpoint.disabled_reason = "disabled by a member"
    await db.flush()


def rotate_secret(endpoint: WebhookEndpoint, overlap_seconds: int) -> str:
    """A new secret signs from now on; the old one also signs (a second signature in the
    header) for `overlap_seconds`, so receivers can switch without losing a delivery."""
    secret = signing.new_secret()
    if overlap_seconds > 0:
        endpoint.previous_secret = endpoint.secret
        endpoint.previous_secret_expires_at = clock.utcnow() + timedelta(seconds=overlap_seconds)
    else:
        endpoint.previous_secret = endpoint.previous_secret_expires_at = None
    endpoint.secret = secret
    return secret


async def replay(
    db: AsyncSession, endpoint: WebhookEndpoint, delivery: WebhookDelivery
) -> WebhookDelivery:
    """Sends the delivery's event again, as a new delivery with its own attempts; the
    webhook-id stays the event's id."""
    if not endpoint.enabled:
        raise Conflict(
            "The endpoint is disabled: enable it before replaying.", code="endpoint_disabled"
        )
    again = WebhookDelivery(
        id=uuid.uuid4(),
        workspace_id=delivery.workspace_id,
        endpoint_id=endpoint.id,
        event_id=delivery.event_id,
        event_type=delivery.event_type,
        status="pending",
        attempt_count=0,
        next_attempt_at=clock.utcnow(),
        replay_of_id=delivery.id,
    )
    db.add(again)
    await db.flush()
    enqueue(db, DELIVER_JOB, str(again.workspace_id), str(again.id))
    return again
