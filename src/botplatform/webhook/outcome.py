"""What an attempt's answer means for the delivery and its endpoint.

2xx: delivered. 408, 429, 5xx, timeouts and network errors: tried again later (see
`schedule`), honouring Retry-After. 410 Gone: the endpoint is disabled. Any other answer:
failed, not retried. An endpoint with no success for WEBHOOK_DISABLE_AFTER_SECONDS is
disabled, and the workspace's owners and admins are emailed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.config import Settings
from botplatform.email import templates
from botplatform.email.service import queue_email
from botplatform.kit import clock
from botplatform.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, Workspace
from botplatform.webhook import repository, schedule
from botplatform.worker.jobs import enqueue


@dataclass(frozen=True)
class Outcome:
    latency_ms: int
    status_code: int | None = None
    body: str | None = None
    retry_after: str | None = None
    error: str | None = None
    retry: bool = False

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def retryable(self) -> bool:
        if self.status_code is None:
            return self.retry
        return schedule.is_retryable(self.status_code)


async def record_outcome(
    db: AsyncSession,
    settings: Settings,
    ws: uuid.UUID,
    delivery_id: uuid.UUID,
    number: int,
    outcome: Outcome,
) -> None:
    now = clock.utcnow()
    delivery = await db.get(WebhookDelivery, delivery_id, populate_existing=True)
    if delivery is None:
        return
    endpoint = await repository.get_endpoint(db, ws, delivery.endpoint_id, lock=True)
    db.add(
        WebhookAttempt(
            workspace_id=ws,
            delivery_id=delivery.id,
            number=number,
            started_at=now,
            status_code=outcome.status_code,
            latency_ms=outcome.latency_ms,
            response_body=outcome.body,
            error=outcome.error,
            succeeded=outcome.succeeded,
        )
    )
    delivery.lease_until = None
    delivery.last_status_code = outcome.status_code
    delivery.last_error = outcome.error
    if outcome.succeeded:
        delivery.status, delivery.delivered_at, delivery.next_attempt_at = "succeeded", now, None
        endpoint.failing_since = None
        return
    endpoint.failing_since = endpoint.failing_since or now
    if outcome.status_code == 410:
        delivery.status, delivery.next_attempt_at = "failed", None
        await disable(db, settings, endpoint, "it answered 410 Gone")
        return
    _schedule_next(db, delivery, number, outcome, now)
    sustained = now - endpoint.failing_since
    if endpoint.enabled and sustained.total_seconds() >= settings.webhook_disable_after_seconds:
        hours = int(sustained.total_seconds() // 3600)
        await disable(db, settings, endpoint, f"every delivery failed for {hours} hours")


def _schedule_next(
    db: AsyncSession, delivery: WebhookDelivery, number: int, outcome: Outcome, now: datetime
) -> None:
    delay = None
    if outcome.retryable:
        retry_after = schedule.retry_after_seconds(outcome.retry_after, now)
        delay = schedule.next_delay(number, retry_after)
    if delay is None:
        delivery.status, delivery.next_attempt_at = "failed", None
        return
    delivery.next_attempt_at = now + delay
    enqueue(
        db,
        "deliver_webhook",
        str(delivery.workspace_id),
        str(delivery.id),
        delay_ms=int(delay.total_seconds() * 1000),
    )


async def disable(
    db: AsyncSession, settings: Settings, endpoint: WebhookEndpoint, reason: str
) -> None:
    """Stops sending to the endpoint and tells the workspace's owners and admins."""
    if not endpoint.enabled:
        return
    endpoint.enabled = False
    endpoint.disabled_at = clock.utcnow()
    endpoint.disabled_reason = reason[:200]
    workspace = await db.get(Workspace, endpoint.workspace_id)
    name = workspace.name if workspace else "your workspace"
    link = f"{settings.app_url.rstrip('/')}/app/{endpoint.workspace_id}/webhooks/{endpoint.id}"
    subject, text, html = templates.webhook_endpoint_disabled(name, endpoint.url, reason, link)
    for address in await repository.admin_emails(db, endpoint.workspace_id):
        await queue_email(
            db, kind="webhook_endpoint_disabled", to=address, subject=subject, text=text, html=html
        )
