"""Delivering one event to one endpoint: claim the delivery, sign, POST through the SSRF-safe
client, record the attempt, and schedule the next try or finish.

The row decides everything: a copy of the job, or one that arrives before the delivery is
due, does nothing; the sweeper re-sends the job of a due delivery whose job was lost.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

import httpx
from sqlalchemy import and_, or_, update

from botplatform.events.payloads import envelope
from botplatform.kit import clock
from botplatform.kit.logging import get_logger
from botplatform.kit.safe_http import BlockedDestination, safe_request
from botplatform.kit.scoping import enter_workspace
from botplatform.models import Event, WebhookDelivery, WebhookEndpoint
from botplatform.runtime import Runtime
from botplatform.webhook import signing
from botplatform.webhook.outcome import Outcome, record_outcome
from botplatform.worker.jobs import JobContext, job
from botplatform.worker.sweeper import SweepTarget, sweep_target

log = get_logger("botplatform.webhooks")
DELIVER_JOB = "deliver_webhook"
RESPONSE_KEPT = 4096  # characters of the customer's answer kept on the attempt


def is_due() -> object:
    now = clock.utcnow()
    return and_(
        WebhookDelivery.status == "pending",
        WebhookDelivery.next_attempt_at <= now,
        or_(WebhookDelivery.lease_until.is_(None), WebhookDelivery.lease_until < now),
    )


@job(DELIVER_JOB, max_retries=3, min_backoff_ms=5_000)
async def deliver_webhook(ctx: JobContext, workspace_id: str, delivery_id: str) -> None:
    await ctx.db.commit()  # this job works in short transactions of its own
    await attempt_delivery(ctx.runtime, uuid.UUID(workspace_id), uuid.UUID(delivery_id))


@dataclass(frozen=True)
class Prepared:
    url: str
    body: bytes
    headers: dict[str, str]
    number: int


async def attempt_delivery(runtime: Runtime, ws: uuid.UUID, delivery_id: uuid.UUID) -> None:
    """One try of a due delivery (nothing if it is not due, or another worker has it)."""
    prepared = await _claim_and_prepare(runtime, ws, delivery_id)
    if prepared is None:
        return
    outcome = await _post(runtime, prepared)
    async with runtime.db.unit_of_work() as db:
        await enter_workspace(db, ws)
        await record_outcome(db, runtime.settings, ws, delivery_id, prepared.number, outcome)


async def _claim_and_prepare(
    runtime: Runtime, ws: uuid.UUID, delivery_id: uuid.UUID
) -> Prepared | None:
    now = clock.utcnow()
    lease = timedelta(seconds=runtime.settings.webhook_timeout_seconds * 3 + 30)
    async with runtime.db.unit_of_work() as db:
        await enter_workspace(db, ws)
        claimed = await db.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.workspace_id == ws, WebhookDelivery.id == delivery_id)
            .where(is_due())  # type: ignore[arg-type]
            .values(lease_until=now + lease, attempt_count=WebhookDelivery.attempt_count + 1)
        )
        if getattr(claimed, "rowcount", 0) != 1:
            return None
        delivery = await db.get(WebhookDelivery, delivery_id, populate_existing=True)
        assert delivery is not None
        endpoint = await db.get(WebhookEndpoint, delivery.endpoint_id)
        event = await db.get(Event, delivery.event_id)
        if endpoint is None or event is None or not endpoint.enabled:
            delivery.status, delivery.lease_until = "failed", None
            delivery.attempt_count -= 1  # no request was made
            delivery.last_error = "The endpoint is disabled." if endpoint else "Gone."
            return None
        payload = envelope(
            event.id, event.type, event.version, event.workspace_id, event.created_at, event.data
        )
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        keys = [endpoint.secret]
        expires = endpoint.previous_secret_expires_at
        if endpoint.previous_secret and expires is not None and expires > now:
            keys.append(endpoint.previous_secret)
        # The event id is the message id: the same on every retry and replay, so a customer
        # deduplicates on it.
        headers = signing.headers(keys, str(event.id), int(now.timestamp()), body)
        return Prepared(endpoint.url, body, headers, delivery.attempt_count)


async def _post(runtime: Runtime, prepared: Prepared) -> Outcome:
    started = time.perf_counter()
    try:
        response = await safe_request(
            runtime.http,
            "POST",
            prepared.url,
            allowlist=runtime.settings.outbound_allowlist,
            headers=prepared.headers,
            content=prepared.body,
            timeout=runtime.settings.webhook_timeout_seconds,
            max_response_bytes=RESPONSE_KEPT * 4,
        )
    except BlockedDestination as exc:
        return Outcome(_ms(started), error=f"blocked_destination: {exc.message}", retry=False)
    except httpx.TimeoutException:
        return Outcome(_ms(started), error="timeout", retry=True)
    except httpx.HTTPError as exc:
        return Outcome(_ms(started), error=f"{type(exc).__name__}: {exc}"[:500], retry=True)
    return Outcome(
        _ms(started),
        status_code=response.status_code,
        body=response.content.decode("utf-8", "replace")[:RESPONSE_KEPT],
        retry_after=response.headers.get("retry-after"),
    )


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


sweep_target(
    SweepTarget(
        name="webhook_deliveries",
        model=WebhookDelivery,
        is_pending=is_due,  # type: ignore[arg-type]
        touched_at=WebhookDelivery.updated_at,
        job=DELIVER_JOB,
        with_workspace=True,
    )
)
