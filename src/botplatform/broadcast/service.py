"""Broadcasts: the rules of their life (draft → scheduled/running ⇄ paused → completed,
cancelled, failed). Flushes, never commits; the sending is broadcast/engine.py's."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import or_, update
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.broadcast import audience, events, repository
from botplatform.broadcast.personalise import MissingVariable, render
from botplatform.broadcast.schemas import (
    BroadcastCounts,
    BroadcastCreate,
    BroadcastOut,
    QuietHours,
)
from botplatform.channel import repository as channels
from botplatform.conversation import service as conversations
from botplatform.kit.clock import utcnow
from botplatform.kit.errors import Conflict, Unprocessable
from botplatform.message.service import queue_outbound
from botplatform.models import Broadcast, BroadcastRecipient, Channel, Message, Workspace
from botplatform.template import service as templates
from botplatform.usage import service as usage
from botplatform.worker.jobs import enqueue

RUN_JOB = "run_broadcast"
#: A start or resume retries this many times while a stopping driver still holds the lease.
KICKS = 5
STATUSES = ("queued", "sending", "sent", "delivered", "read", "failed", "skipped")


def _not_now(row: Broadcast, action: str) -> Conflict:
    return Conflict(
        f"A {row.status} broadcast cannot be {action}.",
        code="broadcast_state",
        details={"status": row.status},
    )


async def create(
    db: AsyncSession, workspace_id: uuid.UUID, body: BroadcastCreate, user_id: uuid.UUID | None
) -> Broadcast:
    channel_id: uuid.UUID | None = None
    if body.channel_id is not None:  # the schema demands one unless it is an email broadcast
        channel = await channels.get(db, workspace_id, body.channel_id)
        if body.message.type == "template" and channel.provider != "whatsapp":
            raise Unprocessable(
                "Templates are sent on WhatsApp channels only.", code="template_not_supported"
            )
        await check_template(db, channel, body.message.model_dump(mode="json", exclude_none=True))
        channel_id = channel.id
    workspace = await db.get(Workspace, workspace_id)
    row = Broadcast(
        workspace_id=workspace_id,
        channel_id=channel_id,
        name=body.name,
        status="draft",
        message=body.message.model_dump(mode="json", exclude_none=True),
        audience=await audience.snapshot(db, workspace_id, body.audience),
        timezone=workspace.timezone if workspace else "UTC",
        quiet_start=body.quiet_hours.start if body.quiet_hours else None,
        quiet_end=body.quiet_hours.end if body.quiet_hours else None,
        materialised=False,
        total=0,
        throttled=0,
        created_by=user_id,
    )
    db.add(row)
    await db.flush()
    return row


async def check_template(db: AsyncSession, channel: Channel, message: dict[str, Any]) -> None:
    """A template known here must be approved and the broadcast's values must fit it (count,
    types, header media): checked with each variable's default (or a sample value) before
    anything is queued; 422 `template_not_approved` / `template_variables_invalid`."""
    if message.get("type") != "template":
        return
    samples = {
        name: {"default": source.get("default") or "sample"}
        for name, source in message.get("variables", {}).items()
    }
    body = render({**message, "variables": samples}, "", {})
    assert body.template is not None
    template = body.template
    await templates.check_send(
        db, channel, template.name, template.language, list(template.components)
    )


def _as_utc(moment: datetime, timezone: str) -> datetime:
    """A time without an offset is the workspace's local time."""
    if moment.tzinfo is not None:
        return moment.astimezone(ZoneInfo("UTC"))
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    return moment.replace(tzinfo=zone).astimezone(ZoneInfo("UTC"))


async def start(db: AsyncSession, row: Broadcast, scheduled_at: datetime | None) -> Broadcast:
    """Checks the plan (402 before anything is queued), then starts now or schedules."""
    if row.status != "draft":
        raise _not_now(row, "started")
    if row.channel_id is not None:
        channel = await channels.get(db, row.workspace_id, row.channel_id)
        await check_template(db, channel, row.message)  # it may have been paused or rejected
    recipients = await audience.count(db, row.workspace_id, row.audience)
    await usage.reserve_broadcast(db, row.workspace_id, recipients)
    when = _as_utc(scheduled_at, row.timezone) if scheduled_at else None
    if when is not None and when > utcnow():
        row.status, row.scheduled_at, row.next_run_at = "scheduled", when, when
        await db.flush()
        _wake_at(db, row, when)
        return row
    await _run_now(db, row)
    return row


def _wake_at(db: AsyncSession, row: Broadcast, when: datetime) -> None:
    """A delayed job starts it on time (the scheduler's tick is the safety net)."""
    delay_ms = max(int((when - utcnow()).total_seconds() * 1000), 0)
    enqueue(db, RUN_JOB, str(row.workspace_id), str(row.id), KICKS, delay_ms=delay_ms)


async def _run_now(db: AsyncSession, row: Broadcast) -> None:
    row.status, row.next_run_at = "running", None
    first = row.started_at is None
    row.started_at = row.started_at or utcnow()
    await db.flush()
    if first:
        await events.emit_broadcast(db, row, "broadcast.started")
    enqueue(db, RUN_JOB, str(row.workspace_id), str(row.id), KICKS)


async def start_due(db: AsyncSession, row: Broadcast) -> None:
    """The scheduler's tick: a scheduled broadcast whose time has come."""
    if row.status == "scheduled":
        await _run_now(db, row)


async def pause(db: AsyncSession, row: Broadcast) -> Broadcast:
    if row.status not in ("running", "scheduled"):
        raise _not_now(row, "paused")
    row.status = "paused"
    await db.flush()
    await events.emit_broadcast(db, row, "broadcast.paused")
    return row


async def resume(db: AsyncSession, row: Broadcast) -> Broadcast:
    if row.status != "paused":
        raise _not_now(row, "resumed")
    if row.started_at is None and row.scheduled_at and row.scheduled_at > utcnow():
        row.status, row.next_run_at = "scheduled", row.scheduled_at
        await db.flush()
        _wake_at(db, row, row.scheduled_at)
        return row
    await _run_now(db, row)
    return row


async def cancel(db: AsyncSession, row: Broadcast) -> Broadcast:
    """Stops it for good: recipients not sent yet end `skipped` / `cancelled`."""
    if row.status not in ("draft", "scheduled", "running", "paused"):
        raise _not_now(row, "cancelled")
    row.status, row.completed_at = "cancelled", utcnow()
    await db.flush()
    await db.execute(
        update(BroadcastRecipient)
        .where(
            BroadcastRecipient.workspace_id == row.workspace_id,
            BroadcastRecipient.broadcast_id == row.id,
            # Claimed but without a message yet: provably not sent, and the driver's fence
            # (status `sending`) now refuses to send them.
            or_(
                BroadcastRecipient.status == "queued",
                (BroadcastRecipient.status == "sending") & BroadcastRecipient.message_id.is_(None),
            ),
        )
        .values(status="skipped", error_code="cancelled", lease_until=None)
        .execution_options(synchronize_session=False)
    )
    return row


async def test_send(db: AsyncSession, row: Broadcast, to: str) -> Message:
    """The broadcast's message to one number, now, as that contact would get it (its
    attributes, else the defaults); a normal outbound message (quota and policy apply)."""
    if row.channel_id is None:
        raise Unprocessable(
            "An email broadcast has no test send to a number.", code="test_send_not_supported"
        )
    channel = await channels.get(db, row.workspace_id, row.channel_id)
    contact = await conversations.contact_for(db, channel, to.lstrip("+"), None)
    conversation = await conversations.conversation_for(db, channel, contact)
    try:
        body = render(row.message, contact.name, contact.attributes or {})
    except MissingVariable as exc:
        raise Unprocessable(
            f"No value for the variable {exc} for this contact, and no default.",
            code="missing_variable",
        ) from exc
    return await queue_outbound(
        db,
        channel=channel,
        contact=contact,
        conversation=conversation,
        body=body,
        idempotency_key=f"broadcast-test:{row.id}:{uuid.uuid4()}",
        sender_user_id=None,
        check_quota=True,
    )


async def counts(db: AsyncSession, row: Broadcast) -> BroadcastCounts:
    by_status = dict.fromkeys(STATUSES, 0)
    failed: dict[str, int] = {}
    skipped: dict[str, int] = {}
    for status, code, number in await repository.counts(db, row.workspace_id, row.id):
        by_status[status] = by_status.get(status, 0) + number
        if status == "failed":
            failed[code or "unknown"] = failed.get(code or "unknown", 0) + number
        elif status == "skipped":
            skipped[code or "unknown"] = skipped.get(code or "unknown", 0) + number
    return BroadcastCounts(
        total=sum(by_status.values()),
        failed_by_code=failed,
        skipped_by_reason=skipped,
        **by_status,
    )


def out(row: Broadcast, counts: BroadcastCounts | None = None) -> BroadcastOut:
    quiet = QuietHours(start=row.quiet_start, end=row.quiet_end) if row.quiet_start else None
    return BroadcastOut(
        id=row.id,
        name=row.name,
        channel_id=row.channel_id,
        status=row.status,
        message=row.message,
        audience_type=str(row.audience.get("type", "list")),
        scheduled_at=row.scheduled_at,
        timezone=row.timezone,
        quiet_hours=quiet,
        waiting_reason=row.waiting_reason,
        throttled=row.throttled or 0,
        error=row.error,
        started_at=row.started_at,
        completed_at=row.completed_at,
        created_at=row.created_at,
        counts=counts,
    )


def audit_changes(row: Broadcast) -> dict[str, Any]:
    channel = str(row.channel_id) if row.channel_id else None
    return {"name": row.name, "status": row.status, "channel_id": channel}
